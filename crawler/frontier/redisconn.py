"""The one way this project connects to Redis, and the names of a job's keys there.

``connect(settings)`` builds the client the way scrapy-redis does
(``scrapy_redis.connection.get_redis``): ``REDIS_URL`` (``redis://``, ``rediss://`` for TLS, a
password as ``redis://:secret@host:6379/0``) and ``REDIS_PARAMS`` (extra client arguments, as in
scrapy-redis), with short socket timeouts so a Redis that stops answering cannot stall the crawl
for long, and text (not bytes) answers. ``check(settings)`` pings the server and raises
``RedisUnavailable`` with one line (the URL's password masked) when it cannot be used.

``RedisKeys`` names every key of one job, ``<REDIS_KEY_PREFIX>:<spider>:<jobkey>:…`` (jobkey:
``crawler.frontier.jobs.job_key``), for the frontier backend, the items pipeline, ``scrapy ingest``
and ``scrapy seed`` alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis
from scrapy_redis import connection
from scrapy_redis import defaults as scrapy_redis_defaults

from crawler import defaults
from crawler.frontier.jobs import job_key
from crawler.safety.secrets import mask_url_credentials

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scrapy.settings import BaseSettings

# Socket timeouts (seconds) unless REDIS_PARAMS sets them: scrapy-redis's 30 s would freeze the
# crawl's only thread that long when Redis hangs.
CLIENT_PARAMS: dict[str, Any] = {"socket_timeout": 10, "socket_connect_timeout": 5}
# What a lost or refused connection raises (redis-py's own retries are off: the backend retries).
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


class RedisUnavailable(Exception):
    """Redis cannot be reached or refuses us; the message is one line, without the password."""


@dataclass(frozen=True)
class RedisKeys:
    """The keys of one job (see design: ``P`` is ``base``)."""

    prefix: str
    spider: str
    jobkey: str

    @classmethod
    def for_job(
        cls, settings: BaseSettings, spider: str, arguments: Mapping[str, Any] | None
    ) -> RedisKeys:
        """The keys of the crawl of ``spider`` with these arguments (``job_arguments``)."""
        prefix = str(settings.get("REDIS_KEY_PREFIX", defaults.REDIS_KEY_PREFIX) or "")
        return cls(prefix.strip() or defaults.REDIS_KEY_PREFIX, spider, job_key(spider, arguments))

    @property
    def base(self) -> str:
        return f"{self.prefix}:{self.spider}:{self.jobkey}"

    def _key(self, name: str) -> str:
        return f"{self.base}:{name}"

    @property
    def meta(self) -> str:  # HASH state, created_at, seeded_at, finished_at, seq
        return self._key("meta")

    @property
    def queue(self) -> str:  # ZSET fingerprint -> -priority * 1e12 + seq
        return self._key("queue")

    @property
    def requests(self) -> str:  # HASH fingerprint -> request JSON, while queued or leased
        return self._key("requests")

    @property
    def seen(self) -> str:  # HASH fingerprint -> queued|leased|done|failed (the dupefilter)
        return self._key("seen")

    @property
    def inflight(self) -> str:  # ZSET fingerprint -> lease deadline (unix seconds)
        return self._key("inflight")

    @property
    def owners(self) -> str:  # HASH fingerprint -> owner of the lease
        return self._key("owners")

    @property
    def attempts(self) -> str:  # HASH fingerprint -> leases taken
        return self._key("attempts")

    @property
    def errors(self) -> str:  # HASH fingerprint -> why it failed
        return self._key("errors")

    @property
    def seeds(self) -> str:  # SET "host port" origins the seeds named (private targets allowed)
        return self._key("seeds")

    @property
    def workers(self) -> str:  # HASH owner -> JSON {host, pid, heartbeat, pages, items}
        return self._key("workers")

    @property
    def items(self) -> str:  # STREAM the items of all workers (scrapy ingest reads it)
        return self._key("items")

    def frontier_keys(self) -> list[str]:
        """The keys the frontier's scripts touch, in the order they take them (KEYS[1..9])."""
        return [
            self.meta, self.queue, self.requests, self.seen,
            self.inflight, self.owners, self.attempts, self.errors, self.seeds,
        ]  # fmt: skip


def redis_url(settings: BaseSettings) -> str:
    return str(settings.get("REDIS_URL") or defaults.REDIS_URL)


def shown_url(url: str) -> str:
    """The URL as logs and errors show it: its credentials masked."""
    return mask_url_credentials(url)


def connect(settings: BaseSettings) -> redis.Redis:
    """A client for ``REDIS_URL`` with ``REDIS_PARAMS`` (module docstring); no I/O yet."""
    params: dict[str, Any] = dict(scrapy_redis_defaults.REDIS_PARAMS)
    params.update(CLIENT_PARAMS)
    params.update(settings.getdict("REDIS_PARAMS"))
    params["url"] = redis_url(settings)
    params["decode_responses"] = True  # text answers: what every user of this client expects
    try:
        client = connection.get_redis(**params)
    except ValueError as exc:  # a malformed URL
        raise RedisUnavailable(f"REDIS_URL {shown_url(params['url'])}: {exc}") from None
    if not isinstance(client, redis.Redis):
        raise RedisUnavailable(f"REDIS_PARAMS redis_cls must be a redis.Redis, not {client!r}")
    return client


def describe(exc: BaseException, url: str) -> str:
    """One line for a failed connection to ``url`` (its password masked)."""
    text = shown_url(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    refused = ("NOAUTH", "WRONGPASS", "invalid password", "invalid username-password")
    if isinstance(exc, redis.AuthenticationError) or any(text in str(exc) for text in refused):
        return f"Redis at {shown_url(url)} refused the credentials: {text}"
    return f"Redis at {shown_url(url)} unreachable: {text}"


def check(settings: BaseSettings) -> redis.Redis:
    """A client that has answered PING; ``RedisUnavailable`` (one line) otherwise."""
    client = connect(settings)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        client.close()
        raise RedisUnavailable(describe(exc, redis_url(settings))) from None
    return client
