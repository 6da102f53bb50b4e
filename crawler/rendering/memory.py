"""What ``auto`` has learnt per host and path pattern: may its pages go straight to the browser?

``/products/123`` and ``/products/456`` are one pattern (``host/products/*``): digits and the
last segment of a path with two or more segments are wildcards. A pattern whose pages needed the
browser (at least ``learn_after`` of them, and 90%) sends later pages straight to the browser,
except every ``recheck_every``-th one, which tries HTTP again in case the site changed.

Learning only ever saves an HTTP fetch: it never keeps a page fetched over HTTP from the
detector, because one pattern (``host/*`` for ``/s12.html`` and ``/app3.html``) can mix static
pages with pages a script fills.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

SHARE = 0.9  # share of a pattern's pages that must agree before its fetcher is trusted
_DIGITS = re.compile(r"\d")


def url_pattern(url: str) -> str:
    """``http://shop.test/a/b/123?x=1`` -> ``shop.test/a/b/*``."""
    parts = urlsplit(url)
    segments = parts.path.split("/")
    named = [i for i, segment in enumerate(segments) if segment]
    leaf = named[-1] if len(named) >= 2 else None
    masked = [
        "*" if i == leaf or _DIGITS.search(segment) else segment
        for i, segment in enumerate(segments)
    ]
    return parts.netloc.rpartition("@")[2].lower() + "/".join(masked)


@dataclass
class PatternCounts:
    http_ok: int = 0  # HTTP was enough
    browser_needed: int = 0  # HTTP was not, the browser was
    browser_useless: int = 0  # neither was (counts against going straight to the browser)
    direct: int = 0  # requests sent straight to the browser

    @property
    def seen(self) -> int:
        return self.http_ok + self.browser_needed + self.browser_useless


HTTP_OK, BROWSER_NEEDED, BROWSER_USELESS = "http_ok", "browser_needed", "browser_useless"


class FetcherMemory:
    """Outcome counts per pattern and the fetcher they point to."""

    def __init__(self, learn_after: int, recheck_every: int) -> None:
        self.learn_after, self.recheck_every = learn_after, recheck_every
        self.patterns: dict[str, PatternCounts] = {}

    def _trusted(self, counts: PatternCounts, outcome: int) -> bool:
        return counts.seen >= self.learn_after and outcome >= SHARE * counts.seen

    def go_direct(self, pattern: str) -> bool:
        """Send this request straight to the browser? (Counts it when yes.)"""
        counts = self.patterns.get(pattern)
        if counts is None or not self._trusted(counts, counts.browser_needed):
            return False
        counts.direct += 1
        return not (self.recheck_every and counts.direct % self.recheck_every == 0)

    def record(self, pattern: str, outcome: str) -> None:
        counts = self.patterns.setdefault(pattern, PatternCounts())
        setattr(counts, outcome, getattr(counts, outcome) + 1)
