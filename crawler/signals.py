"""Signals our own components send (Scrapy's own are in ``scrapy.signals``).

A component connects to one with ``crawler.signals.connect(handler, signal=fetch_failed)``.
"""

from __future__ import annotations

# A request of the spider finally failed without a response (retries done: timeout, DNS error,
# refused, reset...); an HTTP error status is not sent here (response_received saw it).
# Arguments: request, failure. Sent by BaseSpider.count_fetch_error, where the
# crawl/fetch_errors stat is counted: Scrapy itself has no signal for a failed download.
fetch_failed = object()
