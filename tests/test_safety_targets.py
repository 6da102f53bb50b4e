"""The safety components on their own: the address policy, the middleware and resolver checks,
secret masking, the JOBDIR guard and the Redis serializer. Nothing here opens a connection: the
non-loopback addresses below are only ever validated."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import sys
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from pathlib import Path

import pytest
from scrapy import Request
from scrapy.http import Response
from scrapy.resolver import dnscache
from scrapy.settings import Settings
from scrapy.utils.request import request_from_dict
from scrapy.utils.test import get_crawler

from crawler.middlewares.targets import BLOCKED_PRIVATE, BLOCKED_SCHEME, PrivateTargetMiddleware
from crawler.safety import json_serializer
from crawler.safety.aiohttp_handler import PolicyResolver, SafeAiohttpDownloadHandler
from crawler.safety.browser import abort_private_request
from crawler.safety.jobdir import UntrustedJobDir, check_jobdir
from crawler.safety.logfilter import RedactingFilter
from crawler.safety.named import NamedTargets
from crawler.safety.resolver import BlockedLookup, SafeResolver
from crawler.safety.secrets import Redactor, settings_secrets
from crawler.safety.targets import (
    BlockedTarget,
    disguise,
    non_public_reason,
    parse_ip,
    seed_url,
)
from crawler.seeds import InvalidURL
from tests.reactor import in_reactor

pytestmark = pytest.mark.timeout(30)

LOOPBACK = IPv4Address("127.0.0.1")


# --- parsing IP literals the way resolvers and browsers do -----------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f000001", "0X7F000001", "0x7f.1",
        "0177.0.0.1", "0177.0000.0000.0001", "017700000001", "127.0.0.1.", "0x7f.0.0.0x1",
        "%31%32%37.0.0.1", "１２７．０．０．１", "127。0。0。1",
    ],
)  # fmt: skip
def test_every_spelling_of_loopback_is_read_as_127_0_0_1(host: str) -> None:
    assert parse_ip(host) == LOOPBACK
    assert non_public_reason(LOOPBACK) == "loopback"


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ("[::FFFF:7F00:1]", "::ffff:127.0.0.1"),
        ("::1", "::1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("169.254.169.254", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
    ],
)
def test_other_literals(host: str, address: str) -> None:
    assert parse_ip(host) == ip_address(address)


@pytest.mark.parametrize(
    "host",
    ["example.com", "localhost", "1.2.3.4.5", "08.0.0.1", "0x1g.0.0.1", "256.0.0.1", "127..1",
     "4294967296", "", "[::g]", "١٢٧.0.0.1"],
)  # fmt: skip
def test_host_names_and_invalid_numbers_are_not_addresses(host: str) -> None:
    assert parse_ip(host) is None


# --- which addresses are public ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0.0.0.0", "unspecified"),
        ("10.1.2.3", "private"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("127.255.255.254", "loopback"),
        ("169.254.169.254", "link-local"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.0.0.8", "IETF protocol assignments"),
        ("192.0.2.1", "documentation"),
        ("192.168.1.1", "private"),
        ("198.18.0.1", "benchmarking"),
        ("224.0.0.251", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fd00::1", "unique local (private)"),
        ("fc00::1", "unique local (private)"),
        ("fe80::1", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("100::1", "discard-only"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("4000::1", "reserved"),
        ("::ffff:127.0.0.1", "loopback: 127.0.0.1 inside an IPv6 address"),
        ("::ffff:10.0.0.1", "private: 10.0.0.1 inside an IPv6 address"),
        ("::ffff:0:169.254.169.254", "link-local: 169.254.169.254 inside an IPv6 address"),
        ("::127.0.0.1", "loopback: 127.0.0.1 inside an IPv6 address"),
        ("64:ff9b::10.0.0.1", "private: 10.0.0.1 inside an IPv6 address"),
        ("2002:c0a8:101::1", "private: 192.168.1.1 inside an IPv6 address"),  # 6to4
        ("2002:7f00:1::", "loopback: 127.0.0.1 inside an IPv6 address"),
        # Teredo: the client address is the last 32 bits, inverted
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback: 127.0.0.1 inside an IPv6 address"),
        ("::8.8.8.8", "reserved (deprecated IPv4-compatible address)"),
    ],
)
def test_non_public_addresses(address: str, reason: str) -> None:
    assert non_public_reason(ip_address(address)) == reason


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700::1111",
     "2a00:1450:4001:80b::200e", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1"],
)  # fmt: skip
def test_public_addresses(address: str) -> None:
    assert non_public_reason(ip_address(address)) is None


# --- seeds: plain spellings only -------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "hidden"),
    [
        ("127.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"), ("127.0.0.1.", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"), ("::7f00:1", "127.0.0.1"),
        ("2002:a9fe:a9fe::", "169.254.169.254"), ("134744072", "8.8.8.8"),
        ("%31%32%37.0.0.1", "127.0.0.1"),
    ],
)  # fmt: skip
def test_disguised_addresses(host: str, hidden: str) -> None:
    assert disguise(host) == IPv4Address(hidden)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "10.0.0.1", "::1", "[fd00::1]", "::ffff:8.8.8.8", "localhost", "a.test"]
)
def test_plain_hosts_are_not_disguised(host: str) -> None:
    assert disguise(host) is None


def test_seed_url_refuses_disguises_with_the_plain_spelling() -> None:
    assert seed_url("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080/x"
    assert seed_url("http://[::1]:8080/") == "http://[::1]:8080/"
    with pytest.raises(InvalidURL, match=r"^host '127\.1' is 127\.0\.0\.1 in disguise: write"):
        seed_url("http://127.1:8080/")
    with pytest.raises(InvalidURL, match="scheme 'gopher' not allowed"):
        seed_url("gopher://127.0.0.1/")


# --- named targets ------------------------------------------------------------------------------


def test_named_targets_cover_the_origin_and_its_http_https_twin() -> None:
    named = NamedTargets()
    named.name("Intranet.Example.", 80)
    named.name("127.0.0.1", 8080)
    assert named.origin_named("intranet.example", 80)
    assert named.origin_named("intranet.example", 443)
    assert not named.origin_named("intranet.example", 8443)
    assert named.host_named("INTRANET.example")
    assert named.origin_named("127.0.0.1", 8080)
    assert not named.origin_named("127.0.0.1", 8081)


# --- the middleware: literals, seeds, schemes (process_request never connects for these) ------


def middleware(allow_private: bool = False) -> PrivateTargetMiddleware:
    crawler = get_crawler(settings_dict={"SAFETY_ALLOW_PRIVATE_TARGETS": allow_private})
    return PrivateTargetMiddleware(crawler, NamedTargets(), allow_private)


def process(mw: PrivateTargetMiddleware, request: Request) -> None:
    asyncio.run(mw.process_request(request))


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://0xa9fea9fe/",
     "http://[fd00::1]/", "http://[::ffff:10.0.0.1]:8080/", "https://192.168.0.1/",
     "http://100.64.1.1/", "http://0/", "http://[::]/"],
)  # fmt: skip
def test_followed_requests_to_private_literals_are_blocked(url: str) -> None:
    mw = middleware()
    with pytest.raises(BlockedTarget, match="not a named target"):
        process(mw, Request(url))
    assert mw.crawler.stats.get_value(BLOCKED_PRIVATE) == 1


def test_a_seed_names_its_origin_but_not_what_it_redirects_to() -> None:
    mw = middleware()
    process(mw, Request("http://10.0.0.1:8080/", meta={"seed": True}))
    process(mw, Request("http://10.0.0.1:8080/page"))  # a link within the named origin
    redirected = Request(
        "http://10.0.0.2/", meta={"seed": True, "redirect_urls": ["http://10.0.0.1:8080/"]}
    )
    with pytest.raises(BlockedTarget):
        process(mw, redirected)
    with pytest.raises(BlockedTarget):
        process(mw, Request("http://10.0.0.1:9090/"))  # same host, another port
    with pytest.raises(BlockedTarget):  # a disguised seed names nothing
        process(mw, Request("http://0x0a000003/", meta={"seed": True}))


def test_public_literals_and_allowed_private_targets_pass() -> None:
    process(middleware(), Request("http://8.8.8.8/"))
    process(middleware(), Request("http://[2606:4700::1111]/"))
    process(middleware(allow_private=True), Request("http://169.254.169.254/"))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "data:,x", "ftp://a.test/", "s3://b/k"])
def test_other_schemes_are_blocked_even_when_private_targets_are_allowed(url: str) -> None:
    mw = middleware(allow_private=True)
    with pytest.raises(BlockedTarget, match="is not crawled"):
        process(mw, Request(url))
    assert mw.crawler.stats.get_value(BLOCKED_SCHEME) == 1


def test_redirects_to_other_schemes_are_counted() -> None:
    mw = middleware()
    request = Request("http://a.test/x")
    response = Response(request.url, status=302, headers={"Location": "file:///etc/passwd"})
    assert mw.process_response(request, response) is response
    ok = Response(request.url, status=302, headers={"Location": "/y"})
    mw.process_response(request, ok)
    assert mw.crawler.stats.get_value(BLOCKED_SCHEME) == 1


# --- the resolver: every answer is checked, cached ones too (DNS rebinding) ---------------------


def test_resolver_refuses_private_answers_for_unnamed_hosts() -> None:
    named = NamedTargets()
    resolver = SafeResolver(None, 100, 5.0, targets=named)  # type: ignore[arg-type]
    assert resolver.check("93.184.216.34", "public.test") == "93.184.216.34"
    with pytest.raises(BlockedLookup, match=r"rebind\.test resolves to 10\.0\.0\.1 \(private\)"):
        resolver.check("10.0.0.1", "rebind.test")
    named.name("intranet.test", 80)
    assert resolver.check("10.0.0.1", "intranet.test") == "10.0.0.1"
    allowing = SafeResolver(None, 100, 5.0, targets=NamedTargets(), allow_private=True)  # type: ignore[arg-type]
    assert allowing.check("169.254.169.254", "metadata.test") == "169.254.169.254"


def test_resolver_checks_cached_answers() -> None:
    resolver = SafeResolver(None, 100, 5.0, targets=NamedTargets())  # type: ignore[arg-type]
    dnscache["rebind.test"] = "127.0.0.1"  # the answer changed after a public first lookup
    try:
        failures: list[object] = []
        resolver.getHostByName("rebind.test").addErrback(failures.append)
        assert len(failures) == 1 and isinstance(failures[0].value, BlockedLookup)  # type: ignore[attr-defined]
    finally:
        del dnscache["rebind.test"]


# --- the aiohttp handler's resolver: the same policy, per crawler -------------------------------


def test_policy_resolver_refuses_private_answers_its_crawler_did_not_name() -> None:
    named = NamedTargets()
    resolver = PolicyResolver(named)
    assert resolver.check("93.184.216.34", "public.test") == "93.184.216.34"
    with pytest.raises(BlockedLookup, match=r"rebind\.test resolves to 10\.0\.0\.1 \(private\)"):
        resolver.check("10.0.0.1", "rebind.test")
    with pytest.raises(BlockedLookup, match=r"loopback: 127\.0\.0\.1 inside an IPv6 address"):
        resolver.check("::ffff:127.0.0.1", "mapped.test")
    named.name("intranet.test", 80)
    named.approve("approved.test", "10.0.0.7")
    assert resolver.check("10.0.0.1", "intranet.test") == "10.0.0.1"
    assert resolver.check("10.0.0.7", "approved.test") == "10.0.0.7"
    with pytest.raises(BlockedLookup):  # an approval is for that exact answer only
        resolver.check("10.0.0.8", "approved.test")
    allowing = PolicyResolver(NamedTargets(allow_private=True))
    assert allowing.check("169.254.169.254", "metadata.test") == "169.254.169.254"


@in_reactor
async def test_policy_resolver_uses_its_own_crawlers_policy_only() -> None:
    allowing = get_crawler(settings_dict={"SAFETY_ALLOW_PRIVATE_TARGETS": True})
    strict = get_crawler()
    PrivateTargetMiddleware.from_crawler(allowing)._name("http://10.0.0.5:8080/")
    PrivateTargetMiddleware.from_crawler(strict)
    strict_handler = SafeAiohttpDownloadHandler(strict)
    allowing_handler = SafeAiohttpDownloadHandler(allowing)
    try:
        for host, address in (("named.test", "10.0.0.5"), ("10.0.0.5", "10.0.0.5")):
            with pytest.raises(BlockedLookup):  # the other crawler's permission and names
                strict_handler.resolver.check(address, host)
            assert allowing_handler.resolver.check(address, host) == address
    finally:
        for handler in (strict_handler, allowing_handler):
            await handler.close()


@in_reactor
async def test_policy_resolver_answers_as_the_process_resolver_does() -> None:
    """``localhost`` is 127.0.0.1 (/etc/hosts): refused until named, then the connection gets
    that address, and aiohttp reports the refusal as an OSError saying why."""
    named = NamedTargets()
    resolver = PolicyResolver(named)
    with pytest.raises(OSError, match=r"localhost resolves to 127\.0\.0\.1 \(loopback\)"):
        await resolver.resolve("localhost", 8080)
    named.name("localhost", 8080)
    (answer,) = await resolver.resolve("localhost", 8080)
    assert (answer["host"], answer["port"], answer["hostname"]) == ("127.0.0.1", 8080, "localhost")


@pytest.mark.parametrize(
    ("url", "proxy", "refused"),
    [("http://10.0.0.1/", None, True), ("http://0x7f000002:8080/", None, True),
     ("http://10.0.0.5:8080/", "http://u:p@10.0.0.9:3128", True),
     ("http://10.0.0.1/", "http://127.0.0.1:{port}", False),
     ("http://127.0.0.1:{port}/", None, False)],
)  # fmt: skip
@in_reactor
async def test_the_aiohttp_handler_judges_ip_literals_it_connects_to(
    url: str, proxy: str | None, refused: bool, refused_url: str
) -> None:
    """aiohttp connects to a literal without a lookup: the handler judges the one it will
    connect to (the proxy's when there is one) before downloading. 127.0.0.1:PORT is named
    (a closed port: what is let through is refused by the system, not by the policy)."""
    from scrapy.exceptions import CannotResolveHostError, DownloadConnectionRefusedError

    port = refused_url.split(":")[2].split("/")[0]
    url, proxy = url.format(port=port), proxy and proxy.format(port=port)
    crawler = get_crawler()
    PrivateTargetMiddleware.from_crawler(crawler)._name(f"http://127.0.0.1:{port}/")
    handler = SafeAiohttpDownloadHandler(crawler)
    request = Request(url, meta={"proxy": proxy} if proxy else {})
    expected = CannotResolveHostError if refused else DownloadConnectionRefusedError
    try:
        with pytest.raises(expected) as raised:
            await handler.download_request(request)
        if refused:
            assert "(private)" in str(raised.value) or "(loopback)" in str(raised.value)
    finally:
        await handler.close()


# --- secrets ------------------------------------------------------------------------------------


def test_secret_values_of_settings_and_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://user:env-proxy-pw@proxy.test:3128")
    settings = Settings(
        {
            "DB_PASSWORD": "hunter2-db",
            "API_TOKEN": "tok-123456",
            "DEFAULT_REQUEST_HEADERS": {"Authorization": "Bearer abc-def"},
            "UPSTREAM": "http://bob:url-pw-42@example.test/",
            "HTTPAUTH_DOMAIN": "example.test",  # named like a secret, but not one
            "PASSWORD_SHORT": "abc",
        },
        priority="cmdline",
    )
    secrets = settings_secrets(settings)
    assert {"hunter2-db", "tok-123456", "Bearer abc-def", "url-pw-42", "env-proxy-pw"} <= secrets
    assert "example.test" not in secrets and "abc" not in secrets
    assert "latin-1" not in secrets  # Scrapy's own defaults are no secrets


def test_redactor_masks_values_and_url_credentials() -> None:
    redact = Redactor(["hunter2-db"])
    assert redact("{'DB_PASSWORD': 'hunter2-db'}") == "{'DB_PASSWORD': '***'}"
    assert redact("GET http://u:p4ss@host.test/x") == "GET http://***@host.test/x"


def test_log_filter_masks_message_arguments_and_tracebacks() -> None:
    log_filter = RedactingFilter(Redactor(["hunter2-db"]))
    try:
        raise ValueError("connect failed with hunter2-db")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "settings: %s", ({"pw": "hunter2-db"},), exc_info
    )
    assert log_filter.filter(record)
    assert record.getMessage() == "settings: {'pw': '***'}"
    assert record.exc_text is not None and "hunter2-db" not in record.exc_text
    assert "connect failed with ***" in logging.Formatter().format(record)


# --- JOBDIR -------------------------------------------------------------------------------------


def test_missing_jobdir_is_created_private(tmp_path: Path) -> None:
    check_jobdir(tmp_path / "job")
    assert (tmp_path / "job").stat().st_mode & 0o777 == 0o700


def test_jobdir_of_the_user_is_trusted(tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / "requests.queue").mkdir(parents=True)
    (job / "spider.state").write_bytes(pickle.dumps({}))
    check_jobdir(job)


@pytest.mark.parametrize("target", [".", "spider.state", "requests.queue", "requests.queue/p0"])
def test_world_writable_jobdir_or_content_is_refused(tmp_path: Path, target: str) -> None:
    job = tmp_path / "job"
    (job / "requests.queue").mkdir(parents=True)
    (job / "spider.state").write_bytes(b"")
    (job / "requests.queue" / "p0").write_bytes(b"")
    (job / target).chmod(0o777 if (job / target).is_dir() else 0o666)
    with pytest.raises(UntrustedJobDir, match="is writable by every user"):
        check_jobdir(job)


def test_jobdir_in_a_world_writable_directory_without_sticky_bit_is_refused(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UntrustedJobDir, match="the directory holding JOBDIR"):
        check_jobdir(shared / "job")
    shared.chmod(0o1777)  # like /tmp: others cannot replace our entries
    check_jobdir(shared / "job")


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_jobdir_content_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    planted = tmp_path / "planted.state"
    planted.write_bytes(b"")
    os.chown(planted, 65534, 65534)
    (job / "spider.state").symlink_to(planted)  # a link is judged by what it points to
    with pytest.raises(UntrustedJobDir, match="belongs to another user"):
        check_jobdir(job)


# --- scrapy-redis serializer: JSON, never pickle --------------------------------------------------


def test_json_serializer_round_trips_a_request() -> None:
    request = Request(
        "http://a.test/x", method="POST", body=b"\x00\xffbody", headers={"X-A": "1"},
        meta={"depth": 2, "seed": True}, cb_kwargs={"hops": 1},
    )  # fmt: skip
    data = json_serializer.dumps(request.to_dict())
    assert isinstance(data, str)
    copy = request_from_dict(json_serializer.loads(data.encode()))
    assert (copy.url, copy.method, copy.body, copy.meta) == (
        request.url, request.method, request.body, request.meta,
    )  # fmt: skip
    assert copy.headers.get("X-A") == b"1" and copy.cb_kwargs == {"hops": 1}


def test_json_serializer_refuses_objects_instead_of_pickling() -> None:
    with pytest.raises(TypeError):
        json_serializer.dumps({"meta": {"obj": object()}})


# --- what a rendered page loads in Chromium (PLAYWRIGHT_ABORT_REQUEST) ----------------------------


@dataclass
class BrowserRequest:
    url: str
    resource_type: str = "xhr"


@pytest.mark.parametrize(
    ("url", "aborted"),
    [
        ("http://169.254.169.254/latest/meta-data/", True),
        ("http://0x7f000001:8080/", True),
        ("https://[fd00::1]/api", True),
        ("ws://10.0.0.1/socket", True),
        ("file:///etc/passwd", True),
        ("chrome://settings", True),
        ("http://93.184.216.34/x.js", False),
        ("data:image/png;base64,AAAA", False),
        ("blob:http://a.test/1234", False),
    ],
)
def test_browser_requests_to_private_targets_are_aborted(url: str, aborted: bool) -> None:
    assert asyncio.run(abort_private_request(BrowserRequest(url))) is aborted  # type: ignore[arg-type]
