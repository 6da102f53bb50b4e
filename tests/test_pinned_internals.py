"""The private Scrapy and scrapy-playwright names our code relies on still exist, unchanged.

Our components override or call internals that Scrapy and scrapy-playwright may change in any
release. pyproject.toml pins the minor versions checked (``CHECKED``); upgrading one of them is
this file turning red, not a crawl silently changing behaviour. On a red test: read the new
version of the name, fix our code that uses it, then update the row, ``CHECKED`` and the pin.

No crawl, no browser: imports, ``inspect`` and the source text of the libraries.
"""

from __future__ import annotations

import importlib
import inspect
import re
import tomllib
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.support import ROOT

# distribution -> the release whose internals the table below was checked against
CHECKED = {"scrapy": "2.19.0", "scrapy-playwright": "0.0.48"}
DISTRIBUTIONS = {"scrapy": "scrapy", "scrapy_playwright": "scrapy-playwright"}

HANDLER = "scrapy_playwright.handler:ScrapyPlaywrightDownloadHandler"
SP_CONFIG = "scrapy_playwright.handler:Config"
SP_CONTEXT = "scrapy_playwright.handler:BrowserContextWrapper"
COMPRESSION = "scrapy.downloadermiddlewares.httpcompression:HttpCompressionMiddleware"
DOWNLOADER = "scrapy.core.downloader:Downloader"
SLOT = "scrapy.core.downloader:Slot"
ROBOTS = "scrapy.downloadermiddlewares.robotstxt:RobotsTxtMiddleware"
RUN_COMMAND = "scrapy.commands:BaseRunSpiderCommand"

OUR_HANDLER = "crawler/rendering/handler.py"
OUR_COMPRESSION = "crawler/middlewares/compression.py"
OUR_ROBOTS = "crawler/middlewares/robots.py"
OUR_PAUSES = "crawler/middlewares/slotpause.py"
OUR_CIRCUIT = "crawler/middlewares/circuitbreaker.py"
OUR_AIOHTTP = "crawler/safety/aiohttp_handler.py"
OUR_FRONTIER = "crawler/frontier/scheduler.py"
ENGINE = "scrapy.core.engine:ExecutionEngine"
ENGINE_SLOT = "scrapy.core.engine:_Slot"
AIOHTTP_HANDLER = "scrapy.core.downloader.handlers._aiohttp:AiohttpDownloadHandler"
STREAMING = "scrapy.core.downloader.handlers._base_streaming:BaseStreamingDownloadHandler"


@dataclass(frozen=True)
class Internal:
    """A private (or undocumented) name: where it lives, and who relies on it how."""

    owner: str  # "package.module" or "package.module:Class"
    name: str
    used_by: str  # finishes "…, which <used_by>"
    params: tuple[str, ...] | None = None  # parameter names our calls/overrides rely on
    kind: str = "member"  # member | attribute (set on instances) | staticmethod | module


INTERNALS = (
    # scrapy-playwright: the rendering handler builds on its download handler
    Internal(HANDLER, "_download_request_with_retry", f"{OUR_HANDLER} overrides (super() call)",
             ("self", "request", "spider")),
    Internal(HANDLER, "_apply_page_methods", f"{OUR_HANDLER} overrides (super() call)",
             ("self", "page", "request", "spider")),
    Internal(HANDLER, "_browser_disconnected_callback",
             f"{OUR_HANDLER} overrides (super() call)", ("self",)),
    Internal(HANDLER, "_close", f"{OUR_HANDLER} overrides (super() call)", ("self",)),
    Internal(HANDLER, "_download_request",
             f"{OUR_HANDLER} relies on to call _download_request_with_retry",
             ("self", "request", "spider")),
    Internal(HANDLER, "config", f"{OUR_HANDLER} reads", kind="attribute"),
    Internal(HANDLER, "stats", f"{OUR_HANDLER} reads", kind="attribute"),
    Internal(HANDLER, "context_wrappers", f"{OUR_HANDLER} reads", kind="attribute"),
    Internal(HANDLER, "abort_request", f"{OUR_HANDLER} reads and replaces", kind="attribute"),
    Internal(SP_CONFIG, "max_pages_per_context", f"{OUR_HANDLER} reads", kind="attribute"),
    Internal(SP_CONTEXT, "context", f"{OUR_HANDLER} reads", kind="attribute"),
    Internal("scrapy_playwright._utils", "_maybe_await", f"{OUR_HANDLER} imports", ("obj",)),
    # Scrapy: strict decompression
    Internal("scrapy.utils._compression", "_DecompressionMaxSizeExceeded",
             f"{OUR_COMPRESSION} imports and raises", ("decompressed_size", "max_size")),
    Internal(COMPRESSION, "_decode", f"{OUR_COMPRESSION} overrides and calls unbound",
             ("body", "encoding", "max_size"), kind="staticmethod"),
    # Scrapy: holding a downloader slot (Retry-After pauses, circuit breaker)
    Internal(DOWNLOADER, "_process_queue", f"{OUR_PAUSES} and {OUR_CIRCUIT} call",
             ("self", "slot")),
    Internal(DOWNLOADER, "_wait_for_download", f"{OUR_CIRCUIT} calls",
             ("self", "slot", "request", "queue_dfd")),
    Internal(DOWNLOADER, "slots", f"{OUR_PAUSES}, {OUR_CIRCUIT} and {OUR_ROBOTS} read",
             kind="attribute"),
    Internal(DOWNLOADER, "get_slot_key", f"{OUR_PAUSES} and {OUR_ROBOTS} call",
             ("self", "request")),
    Internal(SLOT, "latercall", f"{OUR_PAUSES} and {OUR_CIRCUIT} read and replace",
             kind="attribute"),
    Internal(SLOT, "queue", f"{OUR_CIRCUIT} reads and empties", kind="attribute"),
    Internal(SLOT, "delay", f"{OUR_ROBOTS} raises to Crawl-delay", kind="attribute"),
    Internal(SLOT, "jitter", f"{OUR_ROBOTS} sets to 0", kind="attribute"),
    # Scrapy: robots.txt with RFC 9309's error rules
    Internal(ROBOTS, "_parse_robots", f"{OUR_ROBOTS} overrides (super() call)",
             ("self", "response", "netloc", "request")),
    Internal(ROBOTS, "_robots_error", f"{OUR_ROBOTS} overrides (super() call)",
             ("self", "exc", "netloc")),
    Internal(ROBOTS, "robot_parser", f"{OUR_ROBOTS} replaces", ("self", "request")),
    Internal(ROBOTS, "process_request_2", f"{OUR_ROBOTS} overrides (super() call)",
             ("self", "rp", "request")),
    Internal(ROBOTS, "DOWNLOAD_PRIORITY", f"{OUR_ROBOTS} reads"),
    Internal(ROBOTS, "_parsers", f"{OUR_ROBOTS} reads and writes", kind="attribute"),
    Internal(ROBOTS, "_stats", f"{OUR_ROBOTS} reads", kind="attribute"),
    Internal(ROBOTS, "_default_useragent", f"{OUR_ROBOTS} reads", kind="attribute"),
    Internal(ROBOTS, "_robotstxt_useragent", f"{OUR_ROBOTS} reads", kind="attribute"),
    # Scrapy: the commands that report an exit status
    Internal(RUN_COMMAND, "_create_crawler",
             "crawler/commands/crawl.py calls and crawler/commands/runspider.py overrides",
             ("self", "spidercls")),
    Internal("scrapy.commands.runspider", "_import_file",
             "crawler/commands/runspider.py calls for WORKERS", ("filepath",)),
    # Scrapy: the engine's in-progress set tells the frontier which requests it finished (every
    # output of their callbacks handled); nextcall wakes an idle worker when others queued work
    Internal(ENGINE, "_slot", f"{OUR_FRONTIER} reads", kind="attribute"),
    Internal(ENGINE_SLOT, "inprogress", f"{OUR_FRONTIER} reads", kind="attribute"),
    Internal(ENGINE_SLOT, "nextcall", f"{OUR_FRONTIER} schedules", kind="attribute"),
    Internal(ENGINE_SLOT, "remove_request", f"{OUR_FRONTIER} relies on (called once a request's"
             " output is processed)", ("self", "request")),
    # Scrapy: `scrapy shell` with a Shell whose fetch(url) names its target (Scrapy's run, copied)
    Internal("scrapy.commands.shell:Command", "_init_with_reactor",
             "crawler/commands/shell.py calls", ("self", "crawler")),
    Internal("scrapy.commands.shell:Command", "_init_without_reactor",
             "crawler/commands/shell.py calls", ("self", "crawler")),
    Internal("scrapy.commands.shell:Command", "_get_reactorless_loop",
             "crawler/commands/shell.py calls", ("self",)),
    Internal("scrapy.crawler:Crawler", "_apply_settings", "crawler/commands/shell.py calls",
             ("self",)),
    Internal("scrapy.crawler:CrawlerProcessBase", "_create_crawler",
             "crawler/commands/shell.py calls", ("self", "spidercls")),
    # Scrapy: `scrapy genspider` with the project's templates
    Internal("scrapy.commands.genspider:Command", "_generate_template_variables",
             "crawler/commands/genspider.py overrides (super() call)",
             ("self", "module", "name", "url", "template_name")),
    Internal("scrapy.commands.genspider:Command", "_find_template",
             "crawler/commands/genspider.py overrides (super() call)", ("self", "template")),
    Internal("scrapy.commands.genspider:Command", "_list_templates",
             "crawler/commands/genspider.py replaces", ("self",)),
    # Scrapy: the aiohttp handler our SafeAiohttpDownloadHandler builds (its __init__, copied
    # with a resolver added: on a change, copy the new one)
    Internal("scrapy.core.downloader.handlers._aiohttp", "_ClientResponse", f"{OUR_AIOHTTP} uses"),
    Internal(AIOHTTP_HANDLER, "_session", f"{OUR_AIOHTTP} sets", kind="attribute"),
    Internal(AIOHTTP_HANDLER, "_ssl_context", f"{OUR_AIOHTTP} sets", kind="attribute"),
    Internal(AIOHTTP_HANDLER, "_make_request", f"{OUR_AIOHTTP} relies on to use _session",
             ("self", "request", "timeout")),
    Internal(STREAMING, "__init__", f"{OUR_AIOHTTP} calls", ("self", "crawler")),
    Internal(STREAMING, "_bind_address", f"{OUR_AIOHTTP} reads", kind="attribute"),
    Internal(STREAMING, "_pool_size_total", f"{OUR_AIOHTTP} reads", kind="attribute"),
    Internal(STREAMING, "_pool_size_per_host", f"{OUR_AIOHTTP} reads", kind="attribute"),
    Internal("scrapy.utils.ssl", "_make_ssl_context", f"{OUR_AIOHTTP} calls", ("settings",)),
    # Scrapy: the download handlers the benchmark's ablation compares
    Internal("scrapy.core.downloader.handlers._aiohttp", "AiohttpDownloadHandler",
             "bench/ablate.py loads"),
    Internal("scrapy.core.downloader.handlers._httpx", "HttpxDownloadHandler",
             "bench/ablate.py loads"),
)  # fmt: skip

# Our subclasses, and the private names they add: a base that starts using one is a collision.
SUBCLASSES = (
    ("crawler.rendering.handler:RenderDownloadHandler", OUR_HANDLER),
    ("crawler.safety.aiohttp_handler:SafeAiohttpDownloadHandler", OUR_AIOHTTP),
    ("crawler.middlewares.compression:StrictHttpCompressionMiddleware", OUR_COMPRESSION),
    ("crawler.middlewares.robots:RobotsTxtMiddleware", OUR_ROBOTS),
    ("crawler.commands.crawl:Command", "crawler/commands/crawl.py"),
    ("crawler.commands.runspider:Command", "crawler/commands/runspider.py"),
    ("crawler.commands.shell:Command", "crawler/commands/shell.py"),
    ("crawler.commands.genspider:Command", "crawler/commands/genspider.py"),
    ("crawler.commands.check:Command", "crawler/commands/check.py"),
    ("crawler.commands.parse:Command", "crawler/commands/parse.py"),
)


def load(owner: str) -> Any:
    module, _, qualname = owner.partition(":")
    found: Any = importlib.import_module(module)
    for part in filter(None, qualname.split(".")):
        found = getattr(found, part)
    return found


def release(owner: str) -> str:
    dist = DISTRIBUTIONS[owner.split(".")[0]]
    return f"{dist} {version(dist)}"


def source_of(cls: type) -> str:
    """The source of ``cls`` and of its bases (where they have one)."""
    texts = []
    for klass in cls.__mro__:
        try:
            texts.append(inspect.getsource(klass))
        except (OSError, TypeError):  # builtins
            continue
    return "\n".join(texts)


def assigned_on_self(cls: type) -> set[str]:
    """Instance attributes of ``cls`` (or a base): ``self.x = …``, ``self.x: T = …``, fields."""
    declared = {name for klass in cls.__mro__ for name in getattr(klass, "__annotations__", {})}
    return declared | set(re.findall(r"self\.(\w+)\s*(?::[^=\n]+)?=(?!=)", source_of(cls)))


def problem(item: Internal) -> str | None:
    """What changed about ``item`` in the installed release, or None."""
    try:
        owner = load(item.owner)
    except (ImportError, AttributeError):
        return f"no longer has {item.owner.replace(':', '.')}"
    qualified = f"{item.owner.split(':')[-1]}.{item.name}"
    if item.kind == "attribute":
        found = hasattr(owner, item.name) or item.name in assigned_on_self(owner)
        return None if found else f"no longer sets {qualified}"
    if not hasattr(owner, item.name):
        return f"no longer has {qualified}"
    if item.kind == "staticmethod" and not isinstance(
        inspect.getattr_static(owner, item.name), staticmethod
    ):
        return f"made {qualified} no longer a staticmethod"
    if item.params is not None:
        params = tuple(inspect.signature(getattr(owner, item.name)).parameters)
        if params != item.params:
            return f"changed {qualified}{params} (checked: {item.params})"
    return None


def message(item: Internal, what: str) -> str:
    return (
        f"{release(item.owner)} {what}, which {item.used_by}: check our code against the new "
        "version, then update tests/test_pinned_internals.py and the pin in pyproject.toml"
    )


@pytest.mark.parametrize("item", INTERNALS, ids=lambda i: f"{i.owner.split(':')[-1]}.{i.name}")
def test_private_name_is_still_there(item: Internal) -> None:
    what = problem(item)
    assert what is None, message(item, what or "")


@pytest.mark.parametrize(("ours", "path"), SUBCLASSES, ids=lambda v: str(v).rsplit(":")[-1])
def test_our_private_names_do_not_collide_with_the_base(ours: str, path: str) -> None:
    cls = load(ours)
    base = cls.__mro__[1]
    own = {n for n in vars(cls) if n.startswith("_") and not n.startswith(("__", "_abc_"))}
    own |= {n for n in re.findall(r"self\.(_\w+)\s*(?::[^=\n]+)?=(?!=)", inspect.getsource(cls))}
    relied_on = {item.name for item in INTERNALS}
    base_names = set(dir(base)) | assigned_on_self(base)
    clashes = sorted((own & base_names) - relied_on)
    assert not clashes, (
        f"{release(base.__module__)} now defines {', '.join(clashes)} on {base.__qualname__}, "
        f"names {path} uses for its own: rename ours, then update the pin in pyproject.toml"
    )


def test_a_changed_name_fails_with_what_to_do() -> None:
    gone = Internal(HANDLER, "_no_such_method", f"{OUR_HANDLER} overrides")
    what = problem(gone)
    assert what is not None
    assert message(gone, what) == (
        f"scrapy-playwright {version('scrapy-playwright')} no longer has "
        f"ScrapyPlaywrightDownloadHandler._no_such_method, which {OUR_HANDLER} overrides: check "
        "our code against the new version, then update tests/test_pinned_internals.py and the "
        "pin in pyproject.toml"
    )
    renamed = Internal(ROBOTS, "_robots_error", OUR_ROBOTS, ("self", "failure", "netloc"))
    assert "changed RobotsTxtMiddleware._robots_error('self', 'exc', 'netloc')" in str(
        problem(renamed)
    )


def next_release(checked: str) -> Version:
    """The release after the checked minor: 2.19.0 -> 2.20, 0.0.48 -> 0.0.49."""
    parts = Version(checked).release
    if parts[0] == 0 and parts[1] == 0:
        return Version(f"0.0.{parts[2] + 1}")
    return Version(f"{parts[0]}.{parts[1] + 1}")


@pytest.mark.parametrize("dist", sorted(CHECKED))
def test_pyproject_pins_the_checked_release(dist: str) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    (spec,) = [r.specifier for r in requirements if r.name.lower() == dist]
    checked, after = Version(CHECKED[dist]), next_release(CHECKED[dist])
    assert spec.contains(checked), f"pyproject.toml's {dist}{spec} excludes the checked {checked}"
    assert not spec.contains(after), (
        f"pyproject.toml's {dist}{spec} lets {after} in, whose internals nobody checked: "
        f"pin {dist}<{after}"
    )
    assert spec.contains(version(dist)), f"installed {dist} {version(dist)} is outside {spec}"
