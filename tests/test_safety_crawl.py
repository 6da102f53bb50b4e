"""Security cases S1–S9 (docs/faults.md) as a user meets them: real crawls on 127.0.0.1 only."""

from __future__ import annotations

import http.client
import json
import os
import pickle
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest

from crawler.exceptions import ArgumentError
from crawler.spiders.base import BaseSpider
from crawler.spiders.pages import PagesSpider
from crawler.spiders.products import ProductsSpider
from crawler.spiders.site import SiteSpider
from tests.support import CrawlResult, run_contained, run_crawl_in, scrapy_env

# (status, headers, body) of a path; a callable gets the request's path and headers;
# the route "*" answers every path (a proxy).
Answer = tuple[int, dict[str, str], str]
Route = Answer | Callable[[str, dict[str, str]], Answer]


@dataclass
class Hit:
    path: str
    headers: dict[str, str]


@dataclass
class LocalServer:
    """An HTTP server on ``host``:free port that answers from ``routes`` and records every hit."""

    routes: dict[str, Route] = field(default_factory=dict)
    host: str = "127.0.0.1"
    tls: ssl.SSLContext | None = None
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                headers = dict(self.headers.items())
                server.hits.append(Hit(self.path, headers))
                route = server.routes.get(self.path.split("?")[0]) or server.routes.get("*")
                answer = route(self.path, headers) if callable(route) else route
                status, extra, body = answer or (404, {}, "not found")
                data = body.encode()
                self.send_response(status)
                for name, value in {"Content-Type": "text/html", **extra}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((self.host, 0), Handler)
        self.httpd.daemon_threads = True
        if self.tls is not None:
            self.httpd.socket = self.tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.scheme = "https" if self.tls else "http"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "/", host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[Callable[..., LocalServer]]:
    started: list[LocalServer] = []

    def start(routes: dict[str, Route] | None = None, host: str = "127.0.0.1") -> LocalServer:
        started.append(LocalServer(routes or {}, host))
        return started[-1]

    yield start
    for server in started:
        server.close()


def page(*links: str) -> Answer:
    return 200, {}, "<html><body>" + "".join(f'<a href="{u}">x</a>' for u in links) + "</body>"


def redirect(location: str, **headers: str) -> Answer:
    return 302, {"Location": location, **headers}, ""


def run_stats(result: CrawlResult) -> dict[str, Any]:
    (row,) = result.rows("SELECT stats FROM runs")
    stats: dict[str, Any] = json.loads(row["stats"])
    return stats


# The HTTP download handlers every crawl case below runs with: Scrapy's default (Twisted: its
# connections resolve names through SafeResolver) and the fast profile's aiohttp one (through
# its PolicyResolver). Both must keep every guarantee.
HANDLERS = {
    "twisted": "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler",
    "aiohttp": "crawler.safety.aiohttp_handler.SafeAiohttpDownloadHandler",
}


def handler_settings(handler: str) -> list[str]:
    path = HANDLERS[handler]
    return ["-s", f'DOWNLOAD_HANDLERS={{"http": "{path}", "https": "{path}"}}']


def crawl(tmp_path: Path, spider: str, *args: str) -> CrawlResult:
    tmp_path.mkdir(exist_ok=True)
    result = run_crawl_in(tmp_path, spider, *args, "-s", "ROBOTSTXT_OBEY=False", timeout=90)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return result


# --- S1, S3: private targets and other schemes reached by redirects, links, sitemaps ----------


@dataclass
class RedirectCrawl:
    result: CrawlResult
    start: LocalServer  # the seeds' server, 127.0.0.1:START
    other: LocalServer  # 127.0.0.1:OTHER, never named: must see no hit
    named: LocalServer  # 127.0.0.1:NAMED, a seed of its own

    def errors(self) -> dict[str, str | None]:
        return {r["url"]: r["error"] for r in self.result.rows("SELECT url, error FROM pages")}


PRIVATE_REDIRECTS = {  # path on START -> host its redirect names on OTHER
    "/literal": "127.0.0.1",
    "/by-name": "localhost",  # a host name: the resolver's answer is checked
    "/odd": "0x7f000001",
    "/mapped": "[::ffff:127.0.0.1]",
    "/zero": "0",
}
SCHEME_REDIRECTS = {
    "/file": "file:///etc/passwd",
    "/ftp": "ftp://127.0.0.1:21/x",
    "/data": "data:text/plain,planted",
    "/s3": "s3://bucket/key",
}


@pytest.fixture(scope="module", params=sorted(HANDLERS))
def redirect_crawl(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedirectCrawl]:
    """One `pages` crawl (per handler) whose seeds redirect to private targets and other schemes."""
    workdir = tmp_path_factory.mktemp("redirects")
    other, named, start = LocalServer({"/": page()}), LocalServer({"/": page()}), LocalServer()
    start.routes.update(
        {path: redirect(other.url(path, host=host)) for path, host in PRIVATE_REDIRECTS.items()}
    )
    start.routes.update({path: redirect(target) for path, target in SCHEME_REDIRECTS.items()})
    start.routes["/same-origin"] = redirect(start.url("/ok"))
    start.routes["/ok"] = page()
    start.routes["/to-named"] = redirect(named.url("/"))
    # seeds in a URL file skip argument checks: disguised ones are still not named
    urls = workdir / "urls.txt"
    urls.write_text("".join(f"{other.url('/file', host=h)}\n" for h in ("127.1", "2130706433")))
    paths = ["/same-origin", "/to-named", *PRIVATE_REDIRECTS, *SCHEME_REDIRECTS]
    seeds = [start.url(path) for path in paths] + [named.url("/named")]
    args = [a for url in seeds for a in ("-a", f"url={url}")]
    result = crawl(workdir, "pages", *args, "-a", f"urls={urls}", *handler_settings(request.param))
    yield RedirectCrawl(result, start, other, named)
    for server in (other, named, start):
        server.close()


@pytest.mark.timeout(150)
def test_s1_redirects_to_unnamed_private_targets_never_connect(
    redirect_crawl: RedirectCrawl,
) -> None:
    c = redirect_crawl
    assert c.other.hits == []
    assert run_stats(c.result)["safety/blocked_private"] == len(PRIVATE_REDIRECTS) + 2
    errors = c.errors()
    for path in PRIVATE_REDIRECTS:
        assert str(errors[c.start.url(path)]).startswith("BlockedTarget: "), errors
    for host in ("127.1", "2130706433"):
        assert str(errors[c.other.url("/file", host=host)]).startswith("BlockedTarget: ")
    assert "set SAFETY_ALLOW_PRIVATE_TARGETS=True to allow" in c.result.stderr


@pytest.mark.timeout(150)
def test_s1_s2_plainly_named_targets_are_reached(redirect_crawl: RedirectCrawl) -> None:
    c = redirect_crawl
    errors = c.errors()
    # a seed on 127.0.0.1 is named, and so is a redirect within its origin
    assert errors[c.start.url("/same-origin")] is None
    assert "/ok" in {h.path for h in c.start.hits}
    # a redirect to another private origin that the user named as a seed may connect too
    assert errors[c.start.url("/to-named")] is None
    assert sorted(h.path for h in c.named.hits) == ["/", "/named"]


@pytest.mark.timeout(150)
def test_s3_redirects_to_other_schemes_are_refused(
    redirect_crawl: RedirectCrawl, tmp_path_factory: pytest.TempPathFactory
) -> None:
    c = redirect_crawl
    assert run_stats(c.result)["safety/blocked_scheme"] == len(SCHEME_REDIRECTS)
    rows = c.result.rows("SELECT url, status FROM pages")
    statuses = {r["url"]: r["status"] for r in rows}
    assert all(statuses[c.start.url(path)] == 302 for path in SCHEME_REDIRECTS)
    for target in SCHEME_REDIRECTS.values():
        assert f"Blocked {target}: redirect from" in c.result.stderr
    stored = b"".join(f.read_bytes() for f in c.result.db.parent.rglob("*") if f.is_file())
    assert b"root:x:0:0" not in stored and b"planted" not in stored


@pytest.mark.timeout(120)
@pytest.mark.parametrize("handler", sorted(HANDLERS))
def test_s1_links_and_sitemaps_to_other_local_ports_are_blocked(
    handler: str, tmp_path: Path, servers: Callable[..., LocalServer]
) -> None:
    other = servers({"/": page(), "/sitemap.xml": (200, {}, "")})
    start = servers()
    sitemap = other.url("/sitemap.xml")
    start.routes.update(
        {
            "/": page("/inside", other.url("/linked")),  # same host as the seed, other port
            "/inside": page(),
            "/robots.txt": (200, {"Content-Type": "text/plain"}, f"Sitemap: {sitemap}\n"),
        }
    )

    result = crawl(
        tmp_path, "site", "-a", f"start_url={start.url()}", "-a", "sitemap=true",
        *handler_settings(handler),
    )  # fmt: skip

    assert other.hits == []
    assert run_stats(result)["safety/blocked_private"] == 2  # the link and the sitemap
    assert {h.path for h in start.hits} >= {"/", "/inside", "/robots.txt"}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("handler", sorted(HANDLERS))
def test_s1_connections_check_their_targets_again_without_the_middleware(
    handler: str, tmp_path: Path, servers: Callable[..., LocalServer]
) -> None:
    """The last line: with PrivateTargetMiddleware off (or an answer that changed since it
    looked, DNS rebinding), the connection itself refuses a target nobody named, by IP address
    or by host name. (Scrapy's own aiohttp handler connects to both.)"""
    start = servers({"/": page()})
    off = '{"crawler.middlewares.targets.PrivateTargetMiddleware": null}'
    seeds = [start.url("/by-ip"), start.url("/by-name", host="localhost")]

    result = crawl(
        tmp_path, "pages", *(a for url in seeds for a in ("-a", f"url={url}")),
        "-s", f"DOWNLOADER_MIDDLEWARES={off}", *handler_settings(handler),
    )  # fmt: skip

    assert start.hits == []
    errors = {r["url"]: r["error"] for r in result.rows("SELECT url, error FROM pages")}
    assert sorted(errors) == sorted(seeds)
    assert all(str(e).startswith("CannotResolveHostError: ") for e in errors.values()), errors


# --- S2–S5: command-line input -----------------------------------------------------------------


def scrapy(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_contained(
        [sys.executable, "-m", "scrapy", *args], cwd=cwd, env=scrapy_env(),
        capture_output=True, text=True, timeout=80, check=False,
    )  # fmt: skip


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        # S2: a loopback address in disguise is not a target the user named plainly
        (["site", "-a", "start_url=http://0x7f000001:8080/"],
         "error: invalid argument start_url='http://0x7f000001:8080/': host '0x7f000001' is"
         " 127.0.0.1 in disguise: write 127.0.0.1"),
        # S3: schemes other than http and https
        (["pages", "-a", "url=file:///etc/passwd"],
         "error: invalid argument url='file:///etc/passwd': scheme 'file' not allowed"
         " (only http and https)"),
        # S4: arguments that would set spider attributes
        (["pages", "-a", "url=http://a.test/", "-a", "custom_settings={'JOBDIR': '/tmp/x'}"],
         "error: unknown argument 'custom_settings' (this spider takes: "),
    ],
)  # fmt: skip
def test_s2_s3_s4_bad_command_lines_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    done = scrapy(tmp_path, "crawl", *args)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(message)
    assert list(tmp_path.iterdir()) == []  # nothing was written


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "url",
    [
        "http://127.1/", "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/",
        "http://127.0.0.1./", "http://[::ffff:127.0.0.1]/", "http://[::7f00:1]/",
        "http://0/", "http://0xa9fea9fe/", "http://[2002:a00:1::]/",
    ],
)  # fmt: skip
@pytest.mark.parametrize("spider", [PagesSpider, SiteSpider, ProductsSpider])
def test_s2_every_spider_refuses_seeds_in_disguise(url: str, spider: type[BaseSpider]) -> None:
    # the check `scrapy crawl` runs before starting (exit 2, as above), for every spelling
    name = "url" if spider is PagesSpider else "start_url"
    with pytest.raises(ArgumentError, match=r"in disguise: write \d+\.\d+\.\d+\.\d+$"):
        spider.parse_arguments({name: url})


@pytest.mark.timeout(30)
@pytest.mark.parametrize("url", ["data:text/html,<a>", "s3://bucket/key", "ftp://127.0.0.1/x"])
@pytest.mark.parametrize("spider", [PagesSpider, SiteSpider, ProductsSpider])
def test_s3_every_spider_refuses_other_schemes(url: str, spider: type[BaseSpider]) -> None:
    name = "url" if spider is PagesSpider else "start_url"
    with pytest.raises(ArgumentError, match=r"scheme '\w+' not allowed \(only http and https\)"):
        spider.parse_arguments({name: url})


@pytest.mark.timeout(30)
@pytest.mark.parametrize("argument", ["allowed_domains", "custom_settings", "name", "crawler"])
@pytest.mark.parametrize("spider", [PagesSpider, SiteSpider, ProductsSpider])
def test_s4_every_spider_refuses_attribute_arguments(
    argument: str, spider: type[BaseSpider]
) -> None:
    seed = {"url" if spider is PagesSpider else "start_url": "http://a.test/"}
    with pytest.raises(ArgumentError, match=f"unknown argument '{argument}'"):
        spider.parse_arguments({**seed, argument: "x"})


@pytest.mark.timeout(120)
def test_s5_output_names_never_leave_the_output_root(
    tmp_path: Path, servers: Callable[..., LocalServer]
) -> None:
    site = servers({"/": page()})
    work = tmp_path / "work"
    work.mkdir()
    before = set(tmp_path.rglob("*"))

    result = run_crawl_in(
        work, "pages", "-a", f"url={site.url()}", "-s", "CSV_FILENAME=../../{spider}-escape.csv"
    )

    assert result.returncode == 1
    assert "CSV: CSV_FILENAME '../../{spider}-escape.csv'" in result.stderr
    written = set(tmp_path.rglob("*")) - before
    assert all(path.is_relative_to(work) for path in written), written
    assert not list(tmp_path.parent.glob("*escape*"))


# --- S6, S7: credentials across redirects, secrets in outputs ----------------------------------

CANARY = "canary-7f3a9c"


def self_signed(tmp: Path, ip: str) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


def forward(path: str, headers: dict[str, str]) -> Answer:
    """A plain HTTP proxy: fetch the absolute URL, dropping its own hop-by-hop headers."""
    url = path.split("://", 1)[1]
    netloc, _, rest = url.partition("/")
    host, _, port = netloc.partition(":")
    hop = {"proxy-authorization", "proxy-connection", "connection", "host"}
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=10)
    conn.request(
        "GET", "/" + rest, headers={k: v for k, v in headers.items() if k.lower() not in hop}
    )
    answer = conn.getresponse()
    keep = {k: v for k, v in answer.getheaders() if k.lower() in {"location", "set-cookie"}}
    body = answer.read().decode()
    conn.close()
    return answer.status, keep, body


@dataclass
class CredentialCrawl:
    result: CrawlResult
    origin: LocalServer  # http://127.0.0.1, reached through the proxy
    echo: LocalServer  # https://127.0.0.2, reached directly after a cross-origin redirect
    proxy: LocalServer
    workdir: Path


@pytest.fixture(scope="module", params=sorted(HANDLERS))
def credential_crawl(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CredentialCrawl]:
    """One crawl (per handler) with a password setting, HTTP auth, a cookie and a proxy with
    credentials."""
    workdir = tmp_path_factory.mktemp("credentials")
    echo = LocalServer({"/echo": page()}, host="127.0.0.2", tls=self_signed(workdir, "127.0.0.2"))
    origin = LocalServer()
    origin.routes.update(
        {
            "/login": redirect("/redirect", **{"Set-Cookie": f"session={CANARY}-cookie; Path=/"}),
            "/redirect": redirect(echo.url("/echo")),
        }
    )
    proxy = LocalServer({"*": forward})
    env = dict(
        scrapy_env(),
        http_proxy=f"http://user:{CANARY}-proxy@127.0.0.1:{proxy.port}",
        no_proxy="",
    )
    command = [
        sys.executable, "-m", "scrapy", "crawl", "pages", "-a", f"url={origin.url('/login')}",
        "-s", f"SQLITE_PATH={workdir / 'crawler.sqlite'}",
        "-s", f"CSV_EXPORT_DIR={workdir / 'out'}",
        "-s", "CRAWL_PROFILE=fast", "-s", "ROBOTSTXT_OBEY=False", "-s", "LOG_LEVEL=DEBUG",
        "-s", "SAFETY_ALLOW_PRIVATE_TARGETS=True",  # 127.0.0.2 is private and not a seed
        "-s", "HTTPAUTH_USER=crawler", "-s", f"HTTPAUTH_PASS={CANARY}-auth",
        "-s", f"HTTPAUTH_DOMAIN=127.0.0.1:{origin.port}",  # Scrapy compares host:port
        "-s", f"STORE_PASSWORD={CANARY}-setting",
        "-s", f"UPSTREAM=http://bob:{CANARY}-url@127.0.0.1:9/",
        *handler_settings(request.param),
    ]  # fmt: skip
    done = run_contained(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=100, check=False
    )
    result = CrawlResult(
        done.returncode, done.stdout, done.stderr, workdir / "crawler.sqlite", workdir / "out"
    )
    yield CredentialCrawl(result, origin, echo, proxy, workdir)
    for server in (echo, origin, proxy):
        server.close()


@pytest.mark.timeout(150)
def test_s6_credentials_do_not_follow_a_cross_origin_redirect(
    credential_crawl: CredentialCrawl,
) -> None:
    c = credential_crawl
    assert c.result.returncode == 0, c.result.stderr[-3000:]
    (redirect_hit,) = [h for h in c.origin.hits if h.path == "/redirect"]
    assert "Authorization" in redirect_hit.headers  # the named origin gets them: the test works
    assert CANARY in redirect_hit.headers["Cookie"]
    assert any("Proxy-Authorization" in h.headers for h in c.proxy.hits)
    # 127.0.0.2 is private and not a seed: reached only because private targets are allowed
    (echo_hit,) = c.echo.hits
    sent = {name.lower() for name in echo_hit.headers}
    assert sent.isdisjoint({"authorization", "cookie", "proxy-authorization"}), echo_hit.headers


@pytest.mark.timeout(150)
def test_s7_secrets_appear_in_no_log_store_or_export(credential_crawl: CredentialCrawl) -> None:
    c = credential_crawl
    assert c.result.returncode == 0, c.result.stderr[-3000:]
    assert "'HTTPAUTH_PASS': '***'" in c.result.stderr  # Scrapy's "Overridden settings" line
    secrets = [f"{CANARY}-{kind}" for kind in ("proxy", "auth", "setting", "url")]
    for text in (c.result.stdout, c.result.stderr):
        assert not [s for s in secrets if s in text]
    files = [f for f in c.workdir.rglob("*") if f.is_file() and f.suffix != ".pem"]
    assert any(f.suffix == ".csv" for f in files) and any(f.suffix == ".sqlite" for f in files)
    for file in files:
        data = file.read_bytes()
        assert not [s for s in secrets if s.encode() in data], file


# --- S8: no listening sockets ------------------------------------------------------------------


def listening_ports_while_crawling(tmp_path: Path, url: str, *settings: str) -> list[int]:
    """Ports the crawl process listens on once it is busy fetching ``url`` (which never answers)."""
    port = int(url.split("/")[2].rsplit(":", 1)[1])
    command = [
        sys.executable, "-m", "scrapy", "crawl", "pages", "-a", f"url={url}",
        "-s", f"SQLITE_PATH={tmp_path / 'crawler.sqlite'}", "-s", f"CSV_EXPORT_DIR={tmp_path}",
        "-s", "ROBOTSTXT_OBEY=False", "-s", "DOWNLOAD_TIMEOUT=60", *settings,
    ]  # fmt: skip
    log = tmp_path / f"crawl-{len(list(tmp_path.glob('crawl-*.log')))}.log"
    with log.open("w") as stderr:
        crawl_process = subprocess.Popen(
            command, cwd=tmp_path, env=scrapy_env(), stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        process = psutil.Process(crawl_process.pid)
        deadline = time.monotonic() + 60
        while not any(
            c.raddr and c.raddr.port == port for c in process.net_connections(kind="inet")
        ):
            assert crawl_process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.1)
        connections = [
            conn
            for proc in (process, *process.children(recursive=True))
            for conn in proc.net_connections(kind="inet")
        ]
        return [c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN]
    finally:
        crawl_process.send_signal(signal.SIGKILL)
        crawl_process.wait(timeout=30)


@pytest.mark.timeout(150)
def test_s8_a_running_crawl_listens_on_no_port(tmp_path: Path, silent_url: str) -> None:
    assert listening_ports_while_crawling(tmp_path, silent_url) == []
    # the same probe sees Scrapy's telnet console when it is switched on: the probe works
    telnet = listening_ports_while_crawling(
        tmp_path, silent_url, "-s", "TELNETCONSOLE_ENABLED=True", "-s", "TELNETCONSOLE_PORT=0"
    )
    assert len(telnet) == 1


# --- S9: planted pickles -----------------------------------------------------------------------


class Planted:
    """Unpickling this creates the directory ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.timeout(150)
def test_s9_a_jobdir_others_can_write_is_refused_before_unpickling(
    tmp_path: Path, servers: Callable[..., LocalServer]
) -> None:
    site = servers({"/": page()})
    marker = tmp_path / "MARKER"
    jobdir = tmp_path / "jobdir"
    jobdir.mkdir()
    (jobdir / "spider.state").write_bytes(pickle.dumps(Planted(marker)))
    jobdir.chmod(0o777)

    refused = run_crawl_in(tmp_path, "pages", "-a", f"url={site.url()}", "-s", f"JOBDIR={jobdir}")

    # refused by `scrapy crawl` before the crawl starts: one line, exit status 2
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith("error: ")
    assert f"JOBDIR: {jobdir} is writable by every user" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not marker.exists() and site.hits == []

    # the same pickle in a JOBDIR of the user's own is loaded (Scrapy's resume): the test works
    jobdir.chmod(0o700)
    resumed = run_crawl_in(tmp_path, "pages", "-a", f"url={site.url()}", "-s", f"JOBDIR={jobdir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert marker.exists()
