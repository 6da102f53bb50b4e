"""AlertHooks: real crawls call a real command and a real webhook with the run summary; a hook
that fails or hangs is one warning and never changes the crawl's verdict."""

from __future__ import annotations

import json
import re
import shlex
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from scrapy.settings import Settings

from crawler.extensions.alerts import AlertConfig, mask_url

if TYPE_CHECKING:
    from collections.abc import Iterator

    from crawler.demo.server import DemoSite
    from tests.support import CrawlResult

pytestmark = pytest.mark.timeout(120)

# Writes what the hook was given (stdin JSON, environment) to the file named by its argument.
RECORDER = """\
import json, os, sys
summary = json.loads(sys.stdin.buffer.read().decode("utf-8"))
env = {k: os.environ.get(k) for k in ("CRAWL_RUN_ID", "CRAWL_EXIT_STATUS")}
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump({"summary": summary, "env": env}, out)
"""
# Starts a child of its own, writes both pids, then sleeps: the whole group must be killed.
HANGER = """\
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(sys.argv[1], "w") as out:
    out.write(f"{os.getpid()} {child.pid}")
time.sleep(60)
"""
FAILER = (
    "import sys; sys.stdin.read(); print('boom: no route to pager', file=sys.stderr); sys.exit(3)"
)


def script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def command(*parts: str | Path) -> str:
    return shlex.join([sys.executable, *(str(p) for p in parts)])


def recorder(tmp_path: Path) -> tuple[str, Path]:
    out = tmp_path / "alert.json"
    return command(script(tmp_path, "record.py", RECORDER), out), out


def alert_lines(result: CrawlResult) -> list[str]:
    return [line for line in result.stderr.splitlines() if "alert " in line]


def only_run(result: CrawlResult) -> dict[str, Any]:
    (run,) = result.rows("SELECT * FROM runs")
    return dict(run)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (PID 1 of a container may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Webhook:
    """A real HTTP server on 127.0.0.1 that records each POST and answers with ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.received.append((self.path, dict(self.headers), body))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with Webhook() as hook:
        yield hook


@pytest.fixture
def failing_webhook() -> Iterator[Webhook]:
    with Webhook(status=500) as hook:
        yield hook


# --- the summary reaches the hooks ----------------------------------------------------------------
def test_a_failed_run_calls_the_command_with_its_summary(
    refused_url: str, run_crawl: Any, tmp_path: Path
) -> None:
    line, out = recorder(tmp_path)
    url = refused_url.replace("http://", "http://bob:hunter22@")  # credentials: masked
    result = run_crawl("pages", "-a", f"url={url}", "-s", f"ALERT_COMMAND={line}")
    assert result.returncode == 1, result.stderr[-3000:]
    assert alert_lines(result) == []  # the hook worked: nothing to say
    raw = out.read_text(encoding="utf-8")
    assert "hunter22" not in raw
    given = json.loads(raw)
    summary, run = given["summary"], only_run(result)
    assert summary["run_id"] == run["id"]
    assert given["env"] == {"CRAWL_RUN_ID": str(run["id"]), "CRAWL_EXIT_STATUS": "1"}
    assert (summary["spider"], summary["exit_status"]) == ("pages", 1)
    assert summary["finish_reason"] == run["finish_reason"] == "finished"
    assert summary["failures"] == run["failure"].split("; ")
    assert summary["failures"][0].startswith("errors: 1 of 1 requests failed")
    assert summary["arguments"]["url"] == [url.replace("bob:hunter22@", "***@")]
    assert summary["counts"] == {
        "pages": 0, "items": run["items"], "rejects": 0, "duplicates": 0, "errors": 1
    }  # fmt: skip
    assert summary["store"] == str(result.db)
    assert summary["checks"] == [] and summary["report"] is None
    assert summary["started"] < summary["finished"]
    assert summary["started"].startswith(run["started_at"][:19])


def test_alert_on_failure_skips_a_good_run_and_always_calls_for_it(
    demo_site: DemoSite, run_crawl: Any, tmp_path: Path
) -> None:
    line, out = recorder(tmp_path)
    args = ["pages", "-a", f"url={demo_site.url}", "-s", f"ALERT_COMMAND={line}"]
    good = run_crawl(*args)
    assert good.returncode == 0, good.stderr[-3000:]
    assert not out.exists()  # ALERT_ON=failure (the default): a good run calls nothing
    again = run_crawl(*args, "-s", "ALERT_ON=always")
    assert again.returncode == 0, again.stderr[-3000:]
    given = json.loads(out.read_text(encoding="utf-8"))
    assert given["env"]["CRAWL_EXIT_STATUS"] == "0"
    assert (given["summary"]["exit_status"], given["summary"]["failures"]) == (0, [])
    counts, run = given["summary"]["counts"], dict(again.rows("SELECT * FROM runs")[-1])
    assert (counts["pages"], counts["items"]) == (run["pages"], run["items"]) == (1, 0)  # a 304


def test_the_webhook_gets_the_summary_as_json(
    refused_url: str, run_crawl: Any, webhook: Webhook
) -> None:
    result = run_crawl(
        "pages", "-a", f"url={refused_url}", "-s", f"ALERT_WEBHOOK={webhook.url('/hook?t=1')}"
    )
    assert result.returncode == 1, result.stderr[-3000:]
    ((path, headers, body),) = webhook.received
    assert path == "/hook?t=1"
    assert headers["Content-Type"] == "application/json"
    summary = json.loads(body)
    assert (summary["run_id"], summary["exit_status"]) == (only_run(result)["id"], 1)
    assert summary["failures"][0].startswith("errors: 1 of 1 requests failed")


# --- hooks that fail or hang change nothing -------------------------------------------------------
def test_a_hanging_command_is_killed_and_the_run_stays_good(
    demo_site: DemoSite, run_crawl: Any, tmp_path: Path
) -> None:
    pids = tmp_path / "pids"
    line = command(script(tmp_path, "hang.py", HANGER), pids)
    result = run_crawl(
        "pages", "-a", f"url={demo_site.url}",
        "-s", f"ALERT_COMMAND={line}", "-s", "ALERT_ON=always", "-s", "ALERT_TIMEOUT=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (warning,) = alert_lines(result)
    assert "WARNING: alert command" in warning
    assert warning.endswith("killed: still running after 1 s")
    run = only_run(result)
    assert (run["exit_status"], run["failure"]) == (0, None)
    assert json.loads(run["stats"])["health/exit_status"] == 0
    hook, child = (int(pid) for pid in pids.read_text().split())
    deadline = time.monotonic() + 10  # SIGKILL is sent; give the kernel a moment
    while (alive(hook) or alive(child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(hook) and not alive(child)  # its process group went with it


def test_failing_hooks_are_one_warning_each_and_the_verdict_stays(
    demo_site: DemoSite, refused_url: str, run_crawl: Any, tmp_path: Path
) -> None:
    line = command("-c", FAILER)
    webhook = refused_url.replace("/refused", "/services/T0/B0/s3cr3tT0ken?code=zz9")
    result = run_crawl(
        "pages", "-a", f"url={demo_site.url}", "-s", "ALERT_ON=always",
        "-s", f"ALERT_COMMAND={line}", "-s", f"ALERT_WEBHOOK={webhook}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    port = refused_url.split(":")[2].split("/")[0]
    assert sorted(line.split("WARNING: ", 1)[1] for line in alert_lines(result)) == [
        f"alert command {sys.executable!r} failed with exit status 3: boom: no route to pager",
        f"alert webhook http://127.0.0.1:{port}/… failed: Connection refused",
    ]
    assert "s3cr3tT0ken" not in result.stderr and "zz9" not in result.stderr
    assert "s3cr3tT0ken" not in only_run(result)["settings"]
    run = only_run(result)
    assert (run["exit_status"], run["failure"], run["items"]) == (0, None, 1)


def test_a_webhook_answering_500_is_a_warning_and_a_failed_run_stays_failed(
    refused_url: str, run_crawl: Any, failing_webhook: Webhook
) -> None:
    url = failing_webhook.url("/hook/s3cr3tT0ken")
    result = run_crawl("pages", "-a", f"url={refused_url}", "-s", f"ALERT_WEBHOOK={url}")
    assert result.returncode == 1, result.stderr[-3000:]
    assert len(failing_webhook.received) == 1
    (warning,) = alert_lines(result)
    assert warning.endswith(f"alert webhook {mask_url(url)} failed: HTTP 500 Internal Server Error")
    assert "s3cr3tT0ken" not in result.stderr
    run = only_run(result)
    assert run["exit_status"] == 1 and run["failure"].startswith("errors: 1 of 1 requests failed")


def test_a_command_that_is_not_found_is_one_warning(
    refused_url: str, run_crawl: Any, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-alert"
    result = run_crawl("pages", "-a", f"url={refused_url}", "-s", f"ALERT_COMMAND={missing} --now")
    assert result.returncode == 1, result.stderr[-3000:]
    (warning,) = alert_lines(result)
    assert warning.endswith(f"alert command {str(missing)!r} not run: No such file or directory")


# --- settings -------------------------------------------------------------------------------------
@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ALERT_ON": "sometimes"}, "ALERT_ON must be one of failure, always, not 'sometimes'"),
        ({"ALERT_TIMEOUT": "0"}, "ALERT_TIMEOUT must be a number of seconds above 0, not '0'"),
        ({"ALERT_TIMEOUT": "soon"},
         "ALERT_TIMEOUT must be a number of seconds above 0, not 'soon'"),
        ({"ALERT_COMMAND": "notify 'unclosed"}, "ALERT_COMMAND: No closing quotation"),
        ({"ALERT_WEBHOOK": "file:///etc/passwd"},
         "ALERT_WEBHOOK must be an http or https URL, not ***"),
    ],
)  # fmt: skip
def test_bad_settings_are_one_line(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        AlertConfig.from_settings(Settings(settings))


@pytest.mark.timeout(10)
def test_settings_and_masked_urls() -> None:
    config = AlertConfig.from_settings(
        Settings({"ALERT_COMMAND": "notify --to 'ops team'", "ALERT_ON": "Always"})
    )
    assert config == AlertConfig(("notify", "--to", "ops team"), "", "always", 10.0)
    assert config.wanted(0) and not AlertConfig().wanted(0) and AlertConfig().wanted(1)
    assert mask_url("https://u:p@hooks.example:8443/services/T/B/x?k=1") == (
        "https://hooks.example:8443/…"
    )
    assert mask_url("http://hooks.example") == "http://hooks.example/"
