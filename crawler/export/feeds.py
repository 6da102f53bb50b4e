"""Scrapy feed exporters (``-o``/``-O``/``FEEDS``) that write every item the store writes.

Scrapy's JSON encoder fails on a ``bytes`` value and the feed loses that item (one ERROR, the
store has it). These exporters write bytes as base64 text, as the CSV files and ``scrapy export``
do, and anything else JSON cannot hold as its text; they are installed for ``json``,
``jsonlines`` and ``jsonl`` by ``FEED_EXPORTERS`` in ``crawler.defaults``.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from scrapy.exporters import JsonItemExporter, JsonLinesItemExporter
from scrapy.utils.serialize import ScrapyJSONEncoder

if TYPE_CHECKING:
    from io import BytesIO


class FeedJSONEncoder(ScrapyJSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, bytes | bytearray | memoryview):
            return base64.b64encode(bytes(o)).decode("ascii")
        try:
            return super().default(o)
        except TypeError:
            return str(o)


class JsonFeedExporter(JsonItemExporter):
    def __init__(self, file: BytesIO, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.encoder = FeedJSONEncoder(**self._kwargs)


class JsonLinesFeedExporter(JsonLinesItemExporter):
    def __init__(self, file: BytesIO, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.encoder = FeedJSONEncoder(**self._kwargs)
