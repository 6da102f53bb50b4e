"""``RENDER_*`` settings read once into a frozen ``RenderConfig``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

NEVER, ALWAYS, AUTO = "never", "always", "auto"
MODES = (NEVER, ALWAYS, AUTO)
# Request meta set by `auto` on a page it renders because its HTTP answer looked empty: that
# answer's visible word count (the browser waits until the page shows more).
SHELL_WORDS = "render_shell_words"


def render_mode(text: str) -> str:
    """``-a render=…``: one of never, always, auto."""
    mode = text.strip().lower()
    if mode not in MODES:
        raise ValueError(f"must be one of {', '.join(MODES)}")
    return mode


@dataclass(frozen=True)
class RenderConfig:
    """How pages are rendered. ``enabled``: the browser handler is installed for this crawl."""

    mode: str = NEVER
    enabled: bool = False
    block_resources: frozenset[str] = frozenset({"image", "font", "media"})
    context_max_pages: int = 100
    wait_for: str | None = None
    wait_timeout: float = 5.0
    max_clicks: int = 20
    min_words: int = 20
    learn_after: int = 3
    recheck_every: int = 20

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> RenderConfig:
        mode = render_mode(str(settings.get("RENDER_MODE") or NEVER))
        return cls(
            mode=mode,
            enabled=mode != NEVER or settings.getbool("RENDER_ENABLED"),
            block_resources=frozenset(
                str(kind).strip().lower()
                for kind in settings.getlist("RENDER_BLOCK_RESOURCES", sorted(cls.block_resources))
            ),
            context_max_pages=max(1, settings.getint("RENDER_CONTEXT_MAX_PAGES", 100)),
            wait_for=str(settings.get("RENDER_WAIT_FOR") or "").strip() or None,
            wait_timeout=max(0.0, settings.getfloat("RENDER_WAIT_TIMEOUT", 5.0)),
            max_clicks=max(0, settings.getint("RENDER_MAX_CLICKS", 20)),
            min_words=max(0, settings.getint("RENDER_MIN_WORDS", 20)),
            learn_after=max(1, settings.getint("RENDER_LEARN_AFTER", 3)),
            recheck_every=max(0, settings.getint("RENDER_RECHECK_EVERY", 20)),
        )
