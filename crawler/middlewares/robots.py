"""``RobotsTxtMiddleware``: Scrapy's, with RFC 9309's error rules, a size cap and ``Crawl-delay``.

Settings: ``ROBOTSTXT_OBEY`` (the switch), ``ROBOTSTXT_MAX_SIZE``, ``ROBOTSTXT_UNREACHABLE_RETRY``,
``ROBOTSTXT_MAX_CRAWL_DELAY``.

* 2xx: the rules apply; only the first ``MAX_SIZE`` bytes are read (the download stops there).
* 3xx: followed by Scrapy's redirect middleware; a redirect limit reached means "no rules".
* 4xx (but 429): no rules, everything is allowed.
* 429, 5xx, timeouts and connection errors: the robots.txt is unreachable, so the whole host is
  disallowed (RFC 9309 §2.3.1.4); it is asked again after ``UNREACHABLE_RETRY`` seconds. Requests
  refused meanwhile fail with ``RobotsTxtUnreachable`` (an ``IgnoreRequest``) naming the cause.
* ``Crawl-delay``: the host's downloader slot waits at least that long between requests (capped at
  ``MAX_CRAWL_DELAY``, without jitter below it), whatever AutoThrottle computes.

Stats (besides Scrapy's ``robotstxt/…``): ``robots/unreachable``, ``robots/unreachable_forbidden``,
``robots/no_rules_4xx``, ``robots/truncated``, ``robots/crawl_delay`` (largest applied), and for the
health monitor (``crawler.stats.fetched_nothing``) ``robots/hosts`` (hosts asked),
``robots/hosts_unreachable`` (of those, unreachable when last asked) and
``robots/unreachable_reason`` (``host: why`` of the latest).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from scrapy import signals
from scrapy.downloadermiddlewares.robotstxt import (
    RobotsTxtMiddleware as ScrapyRobotsTxtMiddleware,
)
from scrapy.exceptions import IgnoreRequest, StopDownload
from scrapy.http import Request
from scrapy.http.request import NO_CALLBACK
from scrapy.robotstxt import RobotParser
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred

from crawler import defaults
from crawler import stats as keys
from crawler.meta import OWN_REQUEST, ROBOTS_REQUEST

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)


class RobotsTxtUnreachable(IgnoreRequest):
    """A request refused because its host's robots.txt could not be fetched (RFC 9309)."""


@dataclass(frozen=True)
class RobotsConfig:
    max_size: int
    unreachable_retry: float
    max_crawl_delay: float

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RobotsConfig:
        return cls(
            max_size=settings.getint("ROBOTSTXT_MAX_SIZE", defaults.ROBOTSTXT_MAX_SIZE),
            unreachable_retry=settings.getfloat(
                "ROBOTSTXT_UNREACHABLE_RETRY", defaults.ROBOTSTXT_UNREACHABLE_RETRY
            ),
            max_crawl_delay=settings.getfloat(
                "ROBOTSTXT_MAX_CRAWL_DELAY", defaults.ROBOTSTXT_MAX_CRAWL_DELAY
            ),
        )


class Unreachable(RobotParser):
    """The rules of a host whose robots.txt could not be fetched: nothing is allowed."""

    def __init__(self, reason: str, retry_at: float) -> None:
        self.reason = reason
        self.retry_at = retry_at

    @classmethod
    def from_crawler(cls, crawler: Crawler, robotstxt_body: bytes) -> Unreachable:
        raise NotImplementedError("built by RobotsTxtMiddleware only")

    def allowed(self, url: str | bytes, user_agent: str | bytes) -> bool:
        return False


def cut_to_size(body: bytes, max_size: int) -> bytes:
    """The first ``max_size`` bytes of a robots.txt, ending at a line break."""
    if len(body) <= max_size:
        return body
    head = body[:max_size]
    return head[: head.rfind(b"\n") + 1]


class RobotsTxtMiddleware(ScrapyRobotsTxtMiddleware):
    """Obeys robots.txt; unreachable ones disallow their host; ``Crawl-delay`` per host."""

    def __init__(
        self, crawler: Crawler, config: RobotsConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(crawler)  # NotConfigured unless ROBOTSTXT_OBEY
        self.config = config
        self.clock = clock
        self.crawl_delays: dict[str, float] = {}  # downloader slot key -> seconds
        self._received: WeakKeyDictionary[Request, int] = WeakKeyDictionary()
        self._hosts: set[str] = set()  # every netloc whose robots.txt was asked for
        self._unreachable_hosts: set[str] = set()  # of those, unreachable when last asked
        # Per-response signals, connected only while they can matter, so pages pay no dispatch
        # for them: bytes_received while a robots.txt downloads, response_downloaded from the
        # first Crawl-delay on.
        self._robots_in_flight = 0
        self._flooring = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RobotsTxtMiddleware:
        return cls(crawler, RobotsConfig.from_settings(crawler.settings))

    def process_request_2(self, rp: RobotParser | None, request: Request) -> None:
        if isinstance(rp, Unreachable):
            self._stats.inc_value("robots/unreachable_forbidden")
            host = urlparse_cached(request).netloc
            raise RobotsTxtUnreachable(
                f"robots.txt of {host} unreachable ({rp.reason}): "
                "host disallowed until it answers (RFC 9309)"
            )
        super().process_request_2(rp, request)

    async def robot_parser(self, request: Request) -> RobotParser | None:
        url = urlparse_cached(request)
        netloc = url.netloc
        known = self._parsers.get(netloc)
        if isinstance(known, Unreachable) and self.clock() >= known.retry_at:
            del self._parsers[netloc]  # ask again
        if netloc not in self._parsers:
            self._parsers[netloc] = Deferred()
            robots = Request(
                f"{url.scheme}://{netloc}/robots.txt",
                priority=self.DOWNLOAD_PRIORITY,
                meta={"dont_obey_robotstxt": True, ROBOTS_REQUEST: True, OWN_REQUEST: True},
                callback=NO_CALLBACK,
            )
            assert self.crawler.engine is not None
            self._count_bytes(+1)
            try:
                response = await self.crawler.engine.download_async(robots)
            except Exception as exc:
                self._robots_error(exc, netloc)
            else:
                await self._parse_robots(response, netloc, request)
            finally:
                self._count_bytes(-1)
            self._stats.inc_value("robotstxt/request_count")
            self._count_host(netloc)
        parser = self._parsers[netloc]
        if isinstance(parser, Deferred):
            return await maybe_deferred_to_future(parser)
        return parser

    def _count_bytes(self, step: int) -> None:
        """One more (+1) or one fewer (-1) robots.txt download in flight: ``bytes_received``
        is connected while there is one."""
        before, self._robots_in_flight = self._robots_in_flight, self._robots_in_flight + step
        signal = signals.bytes_received
        if before == 0 and self._robots_in_flight > 0:
            self.crawler.signals.connect(self.bytes_received, signal=signal)
        elif before > 0 and self._robots_in_flight == 0:
            self.crawler.signals.disconnect(self.bytes_received, signal=signal)

    def _count_host(self, netloc: str) -> None:
        """Keep the ``robots/hosts…`` stats: a run where every host is unreachable failed."""
        self._hosts.add(netloc)
        parser = self._parsers.get(netloc)
        if isinstance(parser, Unreachable):
            self._unreachable_hosts.add(netloc)
            self._stats.set_value(keys.ROBOTS_UNREACHABLE_REASON, f"{netloc}: {parser.reason}")
        else:
            self._unreachable_hosts.discard(netloc)
        self._stats.set_value(keys.ROBOTS_HOSTS, len(self._hosts))
        self._stats.set_value(keys.ROBOTS_HOSTS_UNREACHABLE, len(self._unreachable_hosts))

    async def _parse_robots(self, response: Response, netloc: str, request: Request) -> None:
        status = response.status
        if status >= 500 or status == 429:
            self._stats.inc_value("robotstxt/response_count")
            self._stats.inc_value(f"robotstxt/response_status_count/{status}")
            self._unreachable(netloc, f"HTTP {status}")
            return
        body = response.body
        if status >= 400:
            body = b""
            self._stats.inc_value("robots/no_rules_4xx")
        elif len(body) > self.config.max_size or "download_stopped" in response.flags:
            body = cut_to_size(body, self.config.max_size)
            self._stats.inc_value("robots/truncated")
            logger.warning(f"robots.txt of {netloc}: only the first {len(body)} bytes are read")
        await super()._parse_robots(response.replace(body=body), netloc, request)
        parser = self._parsers[netloc]
        if isinstance(parser, RobotParser):
            self._apply_crawl_delay(parser, request)

    def _robots_error(self, exc: Exception, netloc: str) -> None:
        if isinstance(exc, IgnoreRequest):
            super()._robots_error(exc, netloc)  # redirect limit, offsite…: no rules
            return
        self._stats.inc_value(f"robotstxt/exception_count/{type(exc)}")
        self._unreachable(netloc, f"{type(exc).__name__}: {exc}".strip().rstrip(":"))

    def _unreachable(self, netloc: str, reason: str) -> None:
        self._stats.inc_value("robots/unreachable")
        retry = self.config.unreachable_retry
        logger.warning(
            f"robots.txt of {netloc} unreachable ({reason}): host disallowed, asking again in"
            f" {retry:.0f} s"
        )
        waiting = self._parsers.get(netloc)
        parser = Unreachable(reason, self.clock() + retry)
        self._parsers[netloc] = parser
        if isinstance(waiting, Deferred):
            waiting.callback(parser)

    def _apply_crawl_delay(self, parser: RobotParser, request: Request) -> None:
        agent = self._robotstxt_useragent or request.headers.get(
            b"User-Agent", self._default_useragent
        )
        delay = parser.crawl_delay(agent or "")
        if not delay or delay <= 0:
            return
        delay = min(delay, self.config.max_crawl_delay)
        assert self.crawler.engine is not None
        key = self.crawler.engine.downloader.get_slot_key(request)
        self.crawl_delays[key] = max(self.crawl_delays.get(key, 0.0), delay)
        if not self._flooring:  # after AutoThrottle's handler, connected when it was built
            self._flooring = True
            signal = signals.response_downloaded
            self.crawler.signals.connect(self.response_downloaded, signal=signal)
        self._stats.max_value("robots/crawl_delay", delay)
        logger.info(f"robots.txt asks for {delay:g} s between requests to {key}")
        self._floor_delay(key)

    def _floor_delay(self, key: str) -> None:
        assert self.crawler.engine is not None
        slot = self.crawler.engine.downloader.slots.get(key)
        if slot is not None:
            slot.delay = max(slot.delay, self.crawl_delays[key])
            slot.jitter = 0.0  # jitter would make some intervals shorter than Crawl-delay

    def response_downloaded(self, response: Response, request: Request, spider: Spider) -> None:
        # After AutoThrottle's own handler (connected earlier): never below Crawl-delay.
        key = request.meta.get("download_slot")
        if key in self.crawl_delays:
            self._floor_delay(key)

    def bytes_received(self, data: bytes, request: Request, spider: Spider) -> None:
        if not request.meta.get(ROBOTS_REQUEST):
            return
        received = self._received.get(request, 0) + len(data)
        self._received[request] = received  # by request object: a retry copies meta
        if received > self.config.max_size:
            raise StopDownload(fail=False)  # keep what came: the rules at the top apply
