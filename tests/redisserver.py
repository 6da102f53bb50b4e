"""A real ``redis-server`` for tests: 127.0.0.1, a free port, its files in a temp dir, AOF on.

``RedisServer(tmp).start()`` waits until it answers PING; ``stop()`` shuts it down cleanly
(``SHUTDOWN``, which writes the AOF) and ``kill()`` ends it with SIGKILL; ``start()`` again brings
it back on the same port with the same data directory (what a restart does). Tests skip when
``/usr/bin/redis-server`` is missing (``make test`` installs it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.support import _die_with_parent

REDIS_SERVER = Path("/usr/bin/redis-server")
MISSING = f"{REDIS_SERVER} is missing: install the redis-server package (make test does)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self, directory: Path, *, password: str | None = None) -> None:
        self.directory = directory
        self.password = password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, decode_responses=True
        )

    def start(self, timeout: float = 20) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "yes", "--dir", str(self.directory),
            "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self.proc = subprocess.Popen(  # dies with the test process, even one pytest-timeout ends
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        log = self.directory / "redis.log"
                        text = log.read_text()[-2000:] if log.exists() else ""
                        self.kill()
                        raise RuntimeError(f"redis-server did not start: {text}") from None
                    time.sleep(0.05)

    def stop(self) -> None:
        """A clean stop: SIGTERM (redis-server flushes the AOF and exits)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
        self.proc = None

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None
