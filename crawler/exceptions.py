"""Exceptions the project's components raise."""

from __future__ import annotations

from scrapy.exceptions import DropItem


class RejectItem(DropItem):
    """An item that failed validation: recorded in the ``rejects`` table with its reason.

    Raised by ``ValidatePipeline``; the run recorder writes every ``RejectItem`` it sees through
    the ``item_dropped`` signal, so no invalid item disappears without a trace.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ArgumentError(ValueError):
    """A spider argument is unknown, reserved or malformed; the message is one line for users."""
