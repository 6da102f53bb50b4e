"""Wait until a rendered page's content is there: a selector, or network idle; "load more"."""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING

from playwright.async_api import TimeoutError as PlaywrightTimeoutError

if TYPE_CHECKING:
    from playwright.async_api import Page

# Clicks the first visible, enabled match of `selector` (waiting while a visible match is disabled,
# as a button is while its previous batch loads), then resolves true once the DOM has changed and
# stayed still for `quiet` ms with no visible match disabled any more, or false when nothing could
# be clicked or nothing changed in `limit` ms.
_CLICK_AND_SETTLE = """([selector, quiet, limit]) => new Promise((resolve) => {
  const shown = () => [...document.querySelectorAll(selector)].filter(
    (el) => el.getClientRects().length > 0);
  const busy = () => shown().some((el) => el.disabled);
  const started = Date.now();
  let timer = null, changed = false, observer = null, cap = null;
  const done = () => {
    if (observer) observer.disconnect();
    clearTimeout(cap); clearTimeout(timer); resolve(changed);
  };
  const settle = () => { if (busy()) { timer = setTimeout(settle, quiet); } else { done(); } };
  const click = () => {
    const button = shown().find((el) => !el.disabled);
    if (!button) {
      if (busy() && Date.now() - started < limit) { setTimeout(click, 50); return; }
      resolve(false); return;
    }
    observer = new MutationObserver(() => {
      changed = true; clearTimeout(timer); timer = setTimeout(settle, quiet);
    });
    observer.observe(document, {subtree: true, childList: true, attributes: true,
                                characterData: true});
    cap = setTimeout(done, Math.max(0, limit - (Date.now() - started)));
    button.click();
  };
  click();
})"""
QUIET_MS = 300
# True once the page has more visible words than `words` and no empty framework mount node.
_FILLED = """(words) => {
  const mounts = document.querySelectorAll(
    "#root, #app, #__next, #__nuxt, #___gatsby, #svelte, #main-app, app-root");
  if ([...mounts].some((m) => !m.firstElementChild && !m.textContent.trim())) return false;
  const text = document.body ? document.body.innerText : "";
  return text.split(/\\s+/).filter(Boolean).length > words;
}"""


async def settle_page(
    page: Page,
    wait_for: str | None,
    click: str | None,
    timeout: float,
    max_clicks: int,
    shell_words: int | None = None,
) -> None:
    """After ``load``, wait until the content is there, the first that applies:

    * ``wait_for``: until that selector matches;
    * ``shell_words`` (``auto`` rendering a page whose HTTP answer was a shell): until the page
      shows more visible words than that answer had and no empty framework mount node;
    * a page with scripts: until the network is idle (500 ms without requests).

    Then click ``click`` ("load more") while it is visible and clicking changes the page. A wait
    that times out is no error: the page is taken as it is and the spider judges it.
    """
    ms = timeout * 1000
    with suppress(PlaywrightTimeoutError):
        if wait_for:
            await page.wait_for_selector(wait_for, state="attached", timeout=ms)
        elif shell_words is not None:
            await page.wait_for_function(_FILLED, arg=shell_words, timeout=ms)
        elif await page.evaluate("document.scripts.length"):
            # Content filled from a JSON request after load arrives before the network is idle.
            await page.wait_for_load_state("networkidle", timeout=ms)
    if not click:
        return
    for _ in range(max_clicks):
        if not await page.evaluate(_CLICK_AND_SETTLE, [click, QUIET_MS, ms]):
            return
