"""The bench's HTTP servers on 127.0.0.1: nginx for static files, and aiohttp ones in Python.

* ``StaticServer``: Debian's nginx with a config of the bench's own (one worker, no access log,
  keep-alive without a request limit); when nginx is missing, the Python server below with no
  delay, and ``kind`` says so.
* ``python -m bench.servers ROOT PORT DELAY``: an aiohttp server answering every request from
  memory after ``DELAY`` seconds (an ``asyncio.sleep``, so 100 waiting requests cost nothing).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

NGINX_CONF = """\
worker_processes 1;
worker_rlimit_nofile 16384;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/html;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 10000000;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(base: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base}/robots.txt", timeout=2) as response:
                response.read()
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class _Process:
    """A server subprocess, stopped (terminate, then kill) on exit."""

    kind = ""
    proc: subprocess.Popen[bytes] | None = None
    port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class LatencyServer(_Process):
    """The aiohttp server of this module in its own process (delay 0: the nginx fallback)."""

    def __init__(self, root: Path, delay: float) -> None:
        self.root, self.delay = root, delay
        self.kind = f"aiohttp, {delay * 1000:.0f} ms per request"

    def __enter__(self) -> LatencyServer:
        self.port = free_port()
        args = [sys.executable, "-m", "bench.servers", str(self.root), str(self.port)]
        self.proc = subprocess.Popen([*args, str(self.delay)])
        wait_until_up(self.base)
        return self


class StaticServer(_Process):
    """nginx serving ``root``; the Python server when nginx is not installed."""

    def __init__(self, root: Path, workdir: Path) -> None:
        self.root, self.workdir = root, workdir
        self.fallback: LatencyServer | None = None

    def errors(self) -> int:
        """Lines nginx logged at error level or worse (refused files, sockets): 0 when healthy."""
        log = self.workdir / "nginx" / "error.log"
        if not log.exists():
            return 0
        levels = ("[error]", "[crit]", "[alert]", "[emerg]")
        return sum(
            1
            for line in log.read_text(errors="replace").splitlines()
            if any(level in line for level in levels)
        )

    def __enter__(self) -> StaticServer:
        nginx = shutil.which("nginx") or next(
            (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None
        )
        if nginx is None:
            self.fallback = LatencyServer(self.root, 0.0).__enter__()
            self.port, self.proc = self.fallback.port, self.fallback.proc
            self.kind = "Python aiohttp server (nginx not installed: the server may be the limit)"
            return self
        prefix = self.workdir / "nginx"
        prefix.mkdir(exist_ok=True)
        # nginx workers run as 'nobody' when started by root: they must be able to read the site
        for path in (self.workdir, prefix, self.root):
            path.chmod(0o755)
        self.port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=self.port, root=self.root))
        command = [nginx, "-e", str(prefix / "error.log"), "-p", str(prefix), "-c", str(conf)]
        self.proc = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        wait_until_up(self.base)
        version = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
        self.kind = f"{version.stderr.strip().removeprefix('nginx version: ')}, 1 worker"
        return self


async def serve(root: Path, port: int, delay: float) -> None:
    """Answer ``GET path`` with the file ``root/path`` (all held in memory) after ``delay`` s."""
    from aiohttp import web

    files = {
        "/" + str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }

    async def answer(request: web.Request) -> web.Response:
        if delay:
            await asyncio.sleep(delay)
        body = files.get(request.path)
        if body is None:
            return web.Response(status=404, text="not found")
        kind = "text/plain" if request.path.endswith(".txt") else "text/html"
        return web.Response(body=body, content_type=kind)

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=120)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])))
