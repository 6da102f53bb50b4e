"""Run one contestant as a subprocess and measure it: wall time, CPU seconds, summed peak RSS.

CPU is the ``wait4`` resource usage of the contestant, which includes every descendant it
waited for (a ``Pool``'s workers); RSS is the sum over the whole process tree, sampled with
psutil every ``interval`` seconds (the peak of those sums is reported).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from pathlib import Path


@dataclass
class Measurement:
    wall: float  # seconds, process start to exit
    cpu: float  # user + system seconds of the process and its waited-for descendants
    peak_rss: int  # bytes, the largest sum of RSS over the process tree
    returncode: int
    result: dict[str, Any] = field(default_factory=dict)  # the contestant's JSON line
    log: str = ""  # the last lines of stderr


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        processes = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for member in processes:
        with contextlib.suppress(psutil.Error):  # exited between listing and reading
            total += member.memory_info().rss
    return total


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return {}


def measure(
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    logdir: Path,
    timeout: float = 600.0,
    interval: float = 0.05,
) -> Measurement:
    out, err = logdir / "stdout.txt", logdir / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        started = time.perf_counter()
        popen = subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr)
        proc = psutil.Process(popen.pid)
        peak = 0
        deadline = started + timeout
        try:
            while True:
                pid, status, usage = os.wait4(popen.pid, os.WNOHANG)
                if pid:
                    wall = time.perf_counter() - started
                    break
                peak = max(peak, _tree_rss(proc))
                if time.perf_counter() > deadline:
                    popen.kill()
                time.sleep(interval)
        except BaseException:  # interrupted: take the contestant (and its children) down too
            for member in [*proc.children(recursive=True), proc]:
                with contextlib.suppress(psutil.Error):
                    member.kill()
            popen.wait()
            raise
    popen.returncode = os.waitstatus_to_exitcode(status)  # reaped above: keep Popen quiet
    tail = err.read_text(errors="replace").splitlines()[-15:]
    return Measurement(
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_rss=peak,
        returncode=popen.returncode,
        result=_last_json(out.read_text(errors="replace")),
        log="\n".join(tail),
    )
