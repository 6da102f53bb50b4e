"""Exceptions the project's components raise."""

from __future__ import annotations

from scrapy.exceptions import DropItem, IgnoreRequest


class RejectItem(DropItem):
    """An item that failed validation: recorded in the ``rejects`` table with its reason.

    Raised by ``ValidatePipeline``; the run recorder writes every ``RejectItem`` it sees through
    the ``item_dropped`` signal, so no invalid item disappears without a trace.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ItemSchemaError(ValueError):
    """A JSON Schema for items cannot be read or is not a valid schema (one line for users)."""


class ArgumentError(ValueError):
    """A spider argument is unknown, reserved or malformed; the message is one line for users."""


class IncrementalSkip(IgnoreRequest):
    """A request that ended without a page because the stored data is current."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{reason}: {url}")
        self.url = url


class NotModified(IncrementalSkip):
    """The server answered 304: the stored item rows of this URL are current and marked seen."""

    def __init__(self, url: str) -> None:
        super().__init__(url, "not modified")
