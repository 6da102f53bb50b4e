"""Request meta keys that the project's spiders and components share, and who made a request.

A spider sets ``SEED`` on the requests for URLs the user named, and ``REVALIDATE`` / ``MIN_AGE``
for incremental recrawls; components set the others on requests they make or mark. Each key is
read by the component named beside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy import Request

# Set by spiders
SEED = "seed"  # True: a URL the user named; may reach a private address (PrivateTargetMiddleware)
REVALIDATE = "revalidate"  # send stored validators; a 304 becomes NotModified (conditional)
MIN_AGE = "min_age"  # seconds: skip the URL when fetched more recently (conditional)

# Set by Scrapy (StartSpiderMiddleware) on every request of a spider's start(), start_urls included:
# the user named it, as SEED (PrivateTargetMiddleware)
START_REQUEST = "is_start_request"

# Set by components
OWN_REQUEST = "crawler_own_request"  # a request a component made itself, not the spider's
ROBOTS_REQUEST = "robotstxt_request"  # our robots.txt downloads (RobotsTxtMiddleware)
PROBE = "circuit_probe"  # the one request sent to a half-open circuit (CircuitBreakerMiddleware)
# True: fetch_failed was sent for this request's failed download (FetchFailureMiddleware); the
# spider's errback does not send it again
FAILURE_SENT = "crawler_fetch_failed_sent"
# PNG bytes: a screenshot of a rendered page that answered >= 400, taken before the browser page
# is released (RenderDownloadHandler); ErrorSnapshots pops it as the response is downloaded
SCREENSHOT = "crawler_screenshot"


def is_own_request(request: Request) -> bool:
    """Did a component make ``request`` for itself (a robots.txt download), not the spider?"""
    return bool(request.meta.get(OWN_REQUEST))


def is_seed_request(request: Request) -> bool:
    """A request for a URL the user named: marked ``SEED``, or a start request of the spider
    (``start_urls``, ``start()``); a redirect from it carries its meta but is not."""
    meta = request.meta
    named = meta.get(SEED) is True or meta.get(START_REQUEST) is True
    return named and "redirect_urls" not in meta
