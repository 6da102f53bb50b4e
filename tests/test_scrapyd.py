"""The project deploys to a real Scrapyd (an egg without setup.py); schedule.json fills the store.

Scrapyd runs on a Python that has the dependencies but not this project, so the crawl can only
import `crawler` from the uploaded egg.
"""

from __future__ import annotations

import configparser
import json
import os
import socket
import sqlite3
import subprocess
import sys
import sysconfig
import time
import urllib.parse
import urllib.request
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crawler.demo.server import DemoSite
from tests.support import ROOT, scrapy_env

pytestmark = pytest.mark.timeout(180)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(url: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
    with urllib.request.urlopen(url, data=body, timeout=30) as response:
        return dict(json.load(response))


def clean_env(home: Path) -> dict[str, str]:
    """No PYTHONPATH or settings module from the test run; no user-level Scrapyd config."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SCRAPY_SETTINGS_MODULE")}
    return {**env, "HOME": str(home)}


@pytest.fixture
def deps_python(tmp_path: Path) -> Path:
    """A Python with this venv's packages on its path, but without the project itself."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(tmp_path / "venv")
    (site,) = (tmp_path / "venv" / "lib").glob("python*/site-packages")
    # A plain path line: the editable install's .pth in that directory is not processed.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = tmp_path / "venv" / "bin" / "python"
    check = subprocess.run([python, "-c", "import crawler"], capture_output=True, cwd=tmp_path)
    assert check.returncode != 0, "the project must not be importable without the egg"
    return python


@pytest.fixture
def scrapyd(tmp_path: Path, deps_python: Path) -> Iterator[str]:
    """Scrapyd on a free port of 127.0.0.1, its eggs, logs and databases under tmp_path."""
    home, port = tmp_path / "scrapyd", free_port()
    home.mkdir()
    (home / "scrapyd.conf").write_text(
        f"[scrapyd]\nbind_address = 127.0.0.1\nhttp_port = {port}\neggs_dir = eggs\n"
        "logs_dir = logs\ndbs_dir = dbs\nitems_dir =\njobs_dir =\npoll_interval = 0.5\n"
        "max_proc = 1\n"
    )
    with (home / "scrapyd.out").open("w") as out:
        server = subprocess.Popen(
            [deps_python, "-m", "scrapyd"], cwd=home, env=clean_env(home), stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert call(url + "daemonstatus.json")["status"] == "ok"
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((home / "scrapyd.out").read_text()[-3000:]) from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def test_deploy_and_schedule_json(tmp_path: Path, scrapyd: str, demo_site: DemoSite) -> None:
    egg = tmp_path / "dist" / "crawler.egg"
    built = subprocess.run(
        [sys.executable, "-m", "crawler.scheduling.egg", str(egg)],
        cwd=ROOT, env=scrapy_env(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert built.returncode == 0 and built.stdout.strip() == str(egg), built.stderr

    # scrapyd-deploy with the project's scrapy.cfg [deploy] section, pointed at this Scrapyd.
    config = configparser.ConfigParser()
    config.read(ROOT / "scrapy.cfg")
    config["deploy"]["url"] = scrapyd
    deploy_dir = tmp_path / "deploy"
    deploy_dir.mkdir()
    with (deploy_dir / "scrapy.cfg").open("w") as handle:
        config.write(handle)
    deployed = subprocess.run(
        [Path(sys.executable).parent / "scrapyd-deploy", "--egg", str(egg), "--version", "1"],
        cwd=deploy_dir, env=clean_env(tmp_path), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    assert json.loads(deployed.stdout)["status"] == "ok", deployed.stdout
    spiders = call(scrapyd + "listspiders.json?project=crawler")["spiders"]
    assert spiders == ["pages", "products", "site"]

    db, out = tmp_path / "store.sqlite", tmp_path / "out"
    job = call(
        scrapyd + "schedule.json",
        {
            "project": "crawler",
            "spider": "products",
            "start_url": demo_site.url,
            "max_products": "4",
            "setting": [f"SQLITE_PATH={db}", f"CSV_EXPORT_DIR={out}", "CRAWL_PROFILE=fast"],
        },
    )
    assert job["status"] == "ok", job
    deadline = time.monotonic() + 120
    while not any(j["id"] == job["jobid"] for j in call(scrapyd + "listjobs.json")["finished"]):
        assert time.monotonic() < deadline, call(scrapyd + "listjobs.json")
        time.sleep(0.5)

    log = tmp_path / "scrapyd" / "logs" / "crawler" / "products" / f"{job['jobid']}.log"
    assert "Spider closed (finished)" in log.read_text(), log.read_text()[-3000:]
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        (run,) = conn.execute("SELECT * FROM runs").fetchall()
        assert conn.execute("SELECT count(*) FROM products").fetchone()[0] == 4
    assert (run["spider"], run["finish_reason"], run["exit_status"], run["items"]) == (
        "products",
        "finished",
        0,
        4,
    )
    assert json.loads(run["arguments"])["_job"] == job["jobid"]
