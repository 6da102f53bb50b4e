"""Load a URL file into a job's shared Redis frontier (``scrapy seed``), fast.

Each good line becomes the request the spider's start would make for it (``RequestTemplate``:
the spider's ``seed_request(url)`` when it has one, else ``Request(url, callback=<spider>.parse
or the named method, meta={SEED: True})``), as ``crawler.frontier.codec`` JSON under Scrapy's
default request fingerprint, and is written as the Redis backend's ``commit`` writes a new
request: queued only when the job has never seen its fingerprint (``seen``), so a URL given
twice, or already crawled, is counted as a duplicate. Lines are validated by ``crawler.seeds``
(the rules and line-numbered reports of the ``pages`` spider).

Speed (a million lines in well under a minute): chunks of ``BATCH`` lines are checked, encoded
and written by a pool of processes, one per core (a file under ``POOL_MIN_BYTES`` in this
process); the requests of a seed list differ only by their URL, so their JSON is the template
made once by ``codec.encode`` with the URL put in; each chunk is one Lua script call (atomic, one
round trip). The reports come back in file order.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from scrapy import Request
from scrapy.spiderloader import get_spider_loader
from scrapy.utils.request import RequestFingerprinter
from scrapy.utils.request import fingerprint as scrapy_fingerprint
from w3lib.url import canonicalize_url

from crawler.arguments import refuse_config_arguments
from crawler.exceptions import ArgumentError
from crawler.frontier.codec import Unstorable, encode
from crawler.frontier.jobs import ARGUMENTS_SETTING
from crawler.meta import SEED
from crawler.seeds import BadSeed, check_seed, seed_lines

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import redis
    from scrapy import Spider
    from scrapy.settings import BaseSettings

    from crawler.frontier.redisconn import RedisKeys

BATCH = 10_000  # lines per Lua call (and per task of the pool)
POOL_MIN_BYTES = 4_000_000  # a smaller file is read in this process (a pool costs ~0.1 s)
_PLACEHOLDERS = ("http://seed.invalid/one", "http://seed.invalid/two")

# KEYS: meta, queue, requests, seen; ARGV: priority, then fingerprint, request JSON pairs.
# The Redis backend's "new request" (crawler.frontier.redisscripts COMMIT), counting the ones
# added: HSETNX seen, and only then requests, the queue (score as the backend's) and seq.
_ADD_SCRIPT = """
local priority = tonumber(ARGV[1])
local added = 0
for i = 2, #ARGV, 2 do
  local fp = ARGV[i]
  if redis.call('HSETNX', KEYS[4], fp, 'queued') == 1 then
    local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
    redis.call('HSET', KEYS[3], fp, ARGV[i + 1])
    redis.call('ZADD', KEYS[2], string.format('%.17g', -priority * 1e12 + seq), fp)
    added = added + 1
  end
end
return added
"""


class SeedError(Exception):
    """Seeding cannot start or go on; the message is one line."""


def job_spider(settings: BaseSettings, name: str, spargs: dict[str, Any]) -> Spider:
    """The spider as a crawl with these ``-a`` arguments builds it: its name and arguments name
    the job (``job_arguments``); ``ArgumentError`` for an unknown spider or a bad argument."""
    try:
        spidercls = get_spider_loader(settings).load(name)
    except KeyError:
        raise ArgumentError(f"no spider named {name!r} (see `scrapy list`)") from None
    spidercls.update_settings(settings)
    if getattr(spidercls, "parse_arguments", None) is None:
        refuse_config_arguments(spargs)
        settings.set(ARGUMENTS_SETTING, dict(spargs), priority="command")
    spider: Spider = spidercls(**spargs)
    settle = getattr(spidercls, "settle_arguments", None)
    if settle is not None:
        settle(spargs, getattr(spider, "arguments", {}), settings)
    return spider


@dataclass(frozen=True)
class RequestTemplate:
    """How a seed URL becomes its request's JSON and fingerprint.

    The request is the spider's ``seed_request(url)`` when it has one and no callback is named
    (the request its start() makes for a seed, e.g. ``pages``), else ``Request(url,
    callback=<callback, default parse>, meta={SEED: True})``. Fast path: ``parts`` is
    ``codec.encode``'s JSON of one URL's request cut where the URL is, checked against a
    second URL; a request whose JSON is not the URL put in is built and encoded for each URL.
    """

    spider: Spider
    build: Callable[[str], Request]
    priority: int
    parts: tuple[str, ...]  # empty: encode each request
    plain: bool  # the fingerprint is Scrapy's default one of Request(url): no request needed

    @classmethod
    def for_spider(cls, spider: Spider, callback: str | None) -> RequestTemplate:
        build = _builder(spider, callback)
        one, two = (build(url) for url in _PLACEHOLDERS)
        parts = tuple(_encoded(one, spider).split(json.dumps(_PLACEHOLDERS[0])))
        template = cls(spider, build, one.priority, parts if len(parts) > 1 else (), False)
        if template.parts and template.json(_PLACEHOLDERS[1]) != _encoded(two, spider):
            template = replace(template, parts=())
        plain = all(
            url_fingerprint(r.url) == scrapy_fingerprint(r).hex() and r.url == url
            for url, r in zip(_PLACEHOLDERS, (one, two), strict=True)
        )
        return replace(template, plain=plain)

    def json(self, url: str) -> str:
        """The request's JSON, from the template (``parts`` must be set)."""
        return json.dumps(url, ensure_ascii=False).join(self.parts)

    def row(self, url: str) -> tuple[str, str]:
        """The fingerprint and JSON of the request for ``url``."""
        if self.parts and self.plain:
            return url_fingerprint(url), self.json(url)
        request = self.build(url)
        fingerprint = url_fingerprint(url) if self.plain else scrapy_fingerprint(request).hex()
        return fingerprint, self.json(url) if self.parts else _encoded(request, self.spider)


def _builder(spider: Spider, callback: str | None) -> Callable[[str], Request]:
    hook = getattr(spider, "seed_request", None)
    if callback is None and callable(hook):
        return cast("Callable[[str], Request]", hook)
    name = callback or "parse"
    method = getattr(spider, name, None)
    if not callable(method):
        raise SeedError(f"spider {spider.name!r} has no method {name!r} to call back")
    wanted = _required_arguments(method)
    if wanted:
        raise SeedError(
            f"{spider.name}.{name} needs {', '.join(wanted)} besides the response, which a"
            " seeded request cannot give: name another method with -c"
        )
    return lambda url: Request(url, callback=method, meta={SEED: True})


def _encoded(request: Request, spider: Spider) -> str:
    try:
        return encode(request, spider)[0]
    except Unstorable as exc:
        raise SeedError(f"the seed requests cannot be stored: {exc}") from None


def _required_arguments(method: Any) -> list[str]:
    """The parameters of a bound callback, past the response, that have no default."""
    try:
        parameters = list(inspect.signature(method).parameters.values())[1:]
    except (TypeError, ValueError):  # no signature to read: let the crawl tell
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in kinds and p.default is p.empty]


def url_fingerprint(url: str) -> str:
    """Scrapy's default fingerprint (``RequestFingerprinter``) of ``Request(url)``, hex."""
    data = {"method": "GET", "url": canonicalize_url(url), "body": "", "headers": {}}
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()


def check_fingerprinter(fingerprinter_class: object) -> None:
    """Only Scrapy's default fingerprinter is computed here; another one would make every seeded
    request look new to the workers (their fingerprints would differ)."""
    if fingerprinter_class is not RequestFingerprinter:
        raise SeedError(
            "scrapy seed computes Scrapy's default request fingerprints only, and"
            f" REQUEST_FINGERPRINTER_CLASS is {fingerprinter_class!r}"
        )


@dataclass(frozen=True)
class Target:
    """Where and how a chunk's requests are written: what a pool process needs (inherited by
    fork: the client reconnects in the child, redis-py does so after a fork)."""

    client: redis.Redis
    keys: RedisKeys
    template: RequestTemplate


@dataclass
class Chunk:
    """What became of a run of lines: how many were queued, how many were known, the bad ones."""

    added: int = 0
    known: int = 0
    bad: list[BadSeed] = field(default_factory=list)


def write_chunk(target: Target, file: str, lines: list[tuple[int, str]]) -> Chunk:
    """Check, encode and queue one run of ``(line number, text)`` (one Lua call)."""
    chunk = Chunk()
    template = target.template
    argv: list[Any] = [template.priority]
    for number, text in lines:
        seed = check_seed(text, f"{file}:{number}")
        if isinstance(seed, BadSeed):
            chunk.bad.append(seed)
        else:
            argv += template.row(seed.url)
    if len(argv) > 1:
        keys = target.keys
        script = target.client.register_script(_ADD_SCRIPT)
        chunk.added = int(script(keys=[keys.meta, keys.queue, keys.requests, keys.seen], args=argv))
        chunk.known = (len(argv) - 1) // 2 - chunk.added
    return chunk


_TARGET: Target | None = None  # a pool process's target, set before the fork


def _write_in_pool(file: str, lines: list[tuple[int, str]]) -> Chunk:
    assert _TARGET is not None
    return write_chunk(_TARGET, file, lines)


def _line_chunks(path: str, size: int) -> Iterator[list[tuple[int, str]]]:
    lines = seed_lines(path)
    while chunk := list(islice(lines, size)):
        yield chunk


@dataclass
class SeedReport:
    queued: int = 0
    duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        rate = (self.queued + self.duplicates) / self.seconds if self.seconds else 0.0
        return (
            f"seeded: {self.queued:,} queued, {self.duplicates:,} duplicates,"
            f" {self.rejected:,} rejected lines in {self.seconds:.1f} s ({rate:,.0f} URLs/s)"
        )


class Seeder:
    """Writes the requests of a URL file into one job's keys (module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: RedisKeys,
        template: RequestTemplate,
        *,
        processes: int | None = None,
        on_bad: Callable[[BadSeed], None] | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.template = template
        self.processes = processes if processes is not None else (os.cpu_count() or 1)
        self.on_bad = on_bad

    def open_job(self) -> None:
        """The job's meta as the backend keeps it (open, its creation time); a finished job is
        not reopened behind the workers' backs."""
        state: Any = self.client.hget(self.keys.meta, "state")
        if state is not None and state != "open":
            raise SeedError(
                f"the job at {self.keys.base} is {state}: seed a new crawl"
                " (other arguments or REDIS_KEY_PREFIX) or remove its keys"
            )
        pipe = self.client.pipeline(transaction=True)
        pipe.hsetnx(self.keys.meta, "state", "open")
        pipe.hsetnx(self.keys.meta, "created_at", datetime.now(UTC).isoformat())
        pipe.execute()

    def seed(self, path: str) -> SeedReport:
        started = time.monotonic()
        report = SeedReport()
        self.open_job()
        for chunk in self._chunks(path):
            report.queued += chunk.added
            report.duplicates += chunk.known
            for bad in chunk.bad:
                report.rejected += 1
                if self.on_bad is not None:
                    self.on_bad(bad)
        self.client.hsetnx(self.keys.meta, "seeded_at", datetime.now(UTC).isoformat())
        report.seconds = time.monotonic() - started
        return report

    def _chunks(self, path: str) -> Iterator[Chunk]:
        """The file's chunks written, their reports in file order; a few chunks in hand at a
        time, never the whole file."""
        global _TARGET  # what the forked pool processes inherit
        target = Target(self.client, self.keys, self.template)
        chunks = _line_chunks(path, BATCH)
        if self.processes <= 1 or Path(path).stat().st_size < POOL_MIN_BYTES:
            yield from (write_chunk(target, path, lines) for lines in chunks)
            return
        _TARGET = target
        context = multiprocessing.get_context("fork")
        try:
            with ProcessPoolExecutor(self.processes, mp_context=context) as pool:
                ahead: deque[Future[Chunk]] = deque()
                for lines in chunks:
                    ahead.append(pool.submit(_write_in_pool, path, lines))
                    if len(ahead) > 2 * self.processes:
                        yield ahead.popleft().result()
                while ahead:
                    yield ahead.popleft().result()
        finally:
            _TARGET = None
