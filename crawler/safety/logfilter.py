"""``SecretLogFilter``: secret setting values and URL credentials never reach a log line.

Scrapy logs "Overridden settings" with their values when a crawl starts; this extension is built
just before that line and puts a ``logging.Filter`` on the root log handlers that masks, in every
record and its traceback, the values of secret-named settings (see ``crawler.safety.secrets``),
credentials in URLs and in the proxy environment variables, and the values of secret-named
spider arguments (``-a api_key=…``). No setting: it is always on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy import signals

from crawler.safety.secrets import Redactor, arguments_secrets, settings_secrets

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

_formatter = logging.Formatter()


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and traceback (the record is changed in place)."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the formatter to report
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


class SecretLogFilter:
    """Installs a ``RedactingFilter`` with this crawl's secrets on every root log handler."""

    def __init__(self, log_filter: RedactingFilter) -> None:
        self.log_filter = log_filter
        self.handlers = list(logging.root.handlers)
        for handler in self.handlers:
            handler.addFilter(log_filter)

    def engine_stopped(self) -> None:
        """The crawl is over: its filter leaves the handlers (a process may run many crawls)."""
        for handler in self.handlers:
            handler.removeFilter(self.log_filter)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SecretLogFilter:
        secrets = settings_secrets(crawler.settings)
        # Scrapy creates the spider before the extensions: its parsed arguments are known here
        secrets |= arguments_secrets(getattr(crawler.spider, "arguments", None) or {})
        ext = cls(RedactingFilter(Redactor(secrets)))
        crawler.signals.connect(ext.engine_stopped, signal=signals.engine_stopped)
        return ext
