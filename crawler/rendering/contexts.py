"""Browser contexts used in turn, and their pages kept for the next navigation.

A context accumulates memory (caches, history, leaked JS heaps) for as long as it lives: after
``max_pages`` navigations it is retired, and closed once its last navigation is over. Within
a context a page is reused for the next navigation instead of being closed and opened again: a
new page costs Chromium a new renderer process.
"""

from __future__ import annotations

from collections import Counter
from typing import Generic, TypeVar

PREFIX = "render-"
P = TypeVar("P")


class ContextRotation(Generic[P]):
    """Names the context of each navigation, keeps idle pages, and says what to close when."""

    def __init__(self, max_pages: int) -> None:
        self.max_pages = max_pages
        self.generation = 0
        self.served = 0  # navigations given to the current context
        self.busy: Counter[str] = Counter()  # navigations in progress per context
        self.idle: dict[str, list[P]] = {}  # open pages waiting for a navigation
        self.retired: set[str] = set()

    @staticmethod
    def owns(name: str | None) -> bool:
        return name is None or name.startswith(PREFIX)

    @property
    def current(self) -> str:
        return f"{PREFIX}{self.generation}"

    def assign(self) -> str:
        """The context of one more navigation (busy until ``finish``)."""
        name = self.current
        self.busy[name] += 1
        self.served += 1
        if self.served >= self.max_pages:
            self.retired.add(name)
            self.generation += 1
            self.served = 0
        return name

    def take_idle(self, name: str) -> P | None:
        pages = self.idle.get(name)
        return pages.pop() if pages else None

    def finish(self, name: str, page: P | None) -> tuple[list[P], bool]:
        """A navigation in ``name`` is over; ``page`` is still open (None: it was closed).

        Returns the pages to close now and whether to close the context after them: a live
        context keeps ``page`` for its next navigation; a retired one closes it, and closes
        itself with its idle pages once no navigation uses it.
        """
        if self.busy[name] <= 0:  # forgotten (the browser went away): nothing to keep
            return ([page] if page is not None else []), False
        self.busy[name] -= 1
        if name not in self.retired:
            if page is not None:
                self.idle.setdefault(name, []).append(page)
            return [], False
        to_close = [page] if page is not None else []
        if self.busy[name] > 0:
            return to_close, False
        del self.busy[name]
        self.retired.discard(name)
        return to_close + self.idle.pop(name, []), True

    def drain(self) -> list[P]:
        """Every idle page (to close them), e.g. when the spider closes."""
        pages = [page for pages in self.idle.values() for page in pages]
        self.idle.clear()
        return pages

    def forget(self) -> None:
        """The browser is gone with all its contexts and pages: start afresh."""
        self.busy.clear()
        self.idle.clear()
        self.retired.clear()
        self.generation += 1
        self.served = 0
