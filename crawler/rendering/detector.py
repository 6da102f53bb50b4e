"""Does a page fetched over plain HTTP need a browser? Cheap checks on the HTML alone.

Signals, strongest first: a required selector (the spider's "content is here" mark) is missing;
a framework shell (an empty ``#root``/``#app``/``#__next`` mount node, or framework data such as
``__NEXT_DATA__`` with no visible text); a ``<noscript>`` asking for JavaScript; visible text
nearly empty. A page without any ``<script>`` never needs a browser: nothing could change it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from scrapy.http import HtmlResponse

if TYPE_CHECKING:
    from parsel import Selector
    from scrapy.http import Response

REQUIRED_MISSING = "required_selector"
SHELL = "framework_shell"
NOSCRIPT = "noscript"
EMPTY = "empty_text"

_MOUNT_IDS = ("root", "app", "__next", "__nuxt", "___gatsby", "svelte", "main-app")
_EMPTY_MOUNT = (
    "//body//*[("
    + " or ".join(f"@id='{i}'" for i in _MOUNT_IDS)
    + ") and not(*) and normalize-space()=''] | //app-root[not(*)]"
)
_FRAMEWORK_DATA = (
    "//script[@id='__NEXT_DATA__' or contains(., '__NUXT__')"
    " or contains(., '__APOLLO_STATE__') or contains(., '__INITIAL_STATE__')]"
)
_VISIBLE_TEXT = (
    "//body//text()[not(ancestor::script or ancestor::style or ancestor::noscript"
    " or ancestor::template)]"
)
_NEEDS_JS = re.compile(r"\b(enable|requires?|needs?|turn on)\b.{0,40}\bjavascript\b", re.I | re.S)


def visible_words(sel: Selector) -> int:
    return sum(len(text.split()) for text in sel.xpath(_VISIBLE_TEXT).getall())


def needs_browser(response: Response, required: str | None, min_words: int) -> str | None:
    """Why ``response`` needs rendering (one of the reason constants), or None."""
    if not isinstance(response, HtmlResponse) or response.status != 200:
        return None
    sel = response.selector
    if not sel.xpath("//script"):
        return None
    if required:
        return None if sel.css(required) else REQUIRED_MISSING
    words = visible_words(sel)
    if words < 4 * min_words and sel.xpath(_EMPTY_MOUNT):
        return SHELL
    if words < min_words and sel.xpath(_FRAMEWORK_DATA):
        return SHELL
    if any(_NEEDS_JS.search(text) for text in sel.xpath("//noscript//text()").getall()):
        return NOSCRIPT
    if words < min_words:
        return EMPTY
    return None


def rendering_helped(rendered: Response, required: str | None, http_words: int) -> bool:
    """Did the browser add what plain HTTP lacked: the required selector, or visible text?"""
    if not isinstance(rendered, HtmlResponse):
        return False
    if required:
        return bool(rendered.css(required))
    return visible_words(rendered.selector) > http_words
