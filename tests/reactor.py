"""One Twisted reactor for the whole test session: the asyncio reactor, run in a thread of its own.

``scrapy crawl`` uses the asyncio reactor (``TWISTED_REACTOR``); a reactor cannot be started
twice in one process, so the tests install it once (``install``, from ``conftest.py``) and run it
in a daemon thread from the first use on. Test code stays synchronous: ``call(f, …)`` runs
``f`` in the reactor thread and waits for its result, following a returned ``Deferred``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import TYPE_CHECKING, Any, TypeVar

from scrapy.utils.defer import deferred_from_coro
from twisted.internet.threads import blockingCallFromThread

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

T = TypeVar("T")
_started = threading.Event()
_lock = threading.Lock()
_loop: list[asyncio.AbstractEventLoop] = []  # the reactor's event loop, once installed


def install() -> None:
    """Install the asyncio reactor (not running yet) with an event loop of its own."""
    from twisted.internet import asyncioreactor
    from twisted.internet.error import ReactorAlreadyInstalledError

    loop = asyncio.new_event_loop()
    try:
        asyncioreactor.install(eventloop=loop)
    except ReactorAlreadyInstalledError:
        return
    _loop.append(loop)
    asyncio.set_event_loop(loop)


def restore_main_loop() -> None:
    """Make the reactor's loop the main thread's current one again.

    ``asyncio.run()`` in a test leaves the main thread without a current loop; components built
    in the main thread (Scrapy's ``deferred_from_coro``) then find none.
    """
    if _loop and threading.current_thread() is threading.main_thread():
        asyncio.set_event_loop(_loop[0])


def _run(loop: asyncio.AbstractEventLoop) -> None:
    from twisted.internet import reactor

    asyncio.set_event_loop(loop)
    reactor.callWhenRunning(_started.set)
    reactor.run(installSignalHandlers=False)  # type: ignore[attr-defined]


def _ensure_running() -> None:
    with _lock:
        if _started.is_set():
            return
        from twisted.internet import reactor

        loop = reactor._asyncioEventloop  # type: ignore[attr-defined]
        threading.Thread(target=_run, args=(loop,), name="reactor", daemon=True).start()
        if not _started.wait(30):
            raise RuntimeError("the test reactor did not start within 30 s")


def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` in the reactor thread; its result (a ``Deferred`` awaited)."""
    from twisted.internet import reactor

    _ensure_running()
    return blockingCallFromThread(reactor, function, *args, **kwargs)


def run(coroutine_function: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``coroutine_function()`` in the reactor thread (Scrapy's coroutine support) and wait."""
    return call(lambda: deferred_from_coro(coroutine_function()))  # type: ignore[no-any-return]


def in_reactor(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Decorate an ``async def`` test: it runs in the reactor thread, pytest waits for it."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        run(lambda: test(*args, **kwargs))

    wrapper.in_reactor = True  # type: ignore[attr-defined]
    return wrapper
