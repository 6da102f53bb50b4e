"""The demo shop's JavaScript section under ``/js/``: pages whose content exists only after JS runs.

* ``/js/``: an index (plain HTML) linking to the JS listings and the mixed section;
* ``/js/catalog/<slug>/``: a listing shell filled from ``/js/api/catalog/<slug>`` after load,
  ``JS_BATCH`` cards at a time behind a "Load more" button;
* ``/js/products/<id>``: a product shell filled from ``/js/api/products/<id>`` after a delay;
* ``/js/moved/<id>``: a page that redirects to ``/js/products/<id>`` with JavaScript;
* ``/js/mixed/?count=N&step=S`` and ``/js/mixed/<n>``: product pages (SKU ``MX-<n>``) of which
  every tenth needs JS (data from ``/js/api/mixed/<n>``), for the rendering benchmark;
* ``/js/hang/<anything>``: a page that never answers (for navigation timeouts).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from decimal import Decimal
from html import escape

from crawler.demo.catalog import PRODUCT_COUNT, Product, build_catalog, format_price
from crawler.demo.pages import Page, card, html_page, not_found, product_div

JS_CATEGORY_COUNT = 2  # the first categories of the catalog have a JS listing
JS_LISTING_SIZE = 6  # products per JS listing
JS_BATCH = 3  # cards per JSON answer ("Load more" fetches the next batch)
JS_DELAY_MS = 150  # the JSON request starts this long after load, like a real app's bootstrap
JS_EVERY = 10  # /js/mixed/<n> needs JavaScript when n is a multiple of this
MIXED_MAX = 100_000
HANG_SECONDS = 600.0  # "never" at test scale

_ESC = (
    'function esc(s){return String(s).replace(/[&<>"]/g,function(c){'
    'return {"&":"&amp;","<":"&lt;",">":"&gt;","\\"":"&quot;"}[c];});}'
)
_PRODUCT_JS = (
    _ESC
    + """
function render(p){
  var price = p.price === null ? '<p class="price">Price on request</p>'
    : '<p class="price" data-currency="' + esc(p.currency) + '">' + esc(p.price) + '</p>';
  var images = p.images.map(function(src, i){
    return '<li><img src="' + esc(src) + '" alt="' + esc(p.name) + ', image ' + (i + 1) + '"></li>';
  }).join("");
  return '<div class="product" data-sku="' + esc(p.sku) + '">'
    + '<h1 class="product-name">' + esc(p.name) + '</h1>'
    + '<p class="sku">SKU: <span class="sku-value">' + esc(p.sku) + '</span></p>' + price
    + '<p class="availability">' + (p.in_stock ? 'In stock' : 'Out of stock') + '</p>'
    + '<div class="rating" data-rating="' + esc(p.rating) + '">Rated ' + esc(p.rating)
    + ' out of 5</div><div class="description"><p>' + esc(p.description) + '</p></div>'
    + '<ul class="gallery">' + images + '</ul></div>';
}
setTimeout(function(){
  fetch(SRC).then(function(r){ return r.json(); }).then(function(p){
    document.getElementById("root").outerHTML = render(p);
    document.title = p.name + " | Demo Shop";
  });
}, DELAY);
"""
)
_LISTING_JS = (
    _ESC
    + """
(function(){
  var root = document.getElementById("root"), more = document.querySelector("button.load-more");
  var next = 0;
  function card(c){
    return '<article class="product-card"><h2><a href="' + esc(c.href) + '">' + esc(c.name)
      + '</a></h2><span class="price">' + esc(c.price) + '</span></article>';
  }
  function load(){
    more.disabled = true;
    fetch(SRC + "?offset=" + next).then(function(r){ return r.json(); }).then(function(d){
      root.insertAdjacentHTML("beforeend", d.cards.map(card).join(""));
      if (d.next === null) { more.remove(); }
      else { next = d.next; more.hidden = false; more.disabled = false; }
    });
  }
  more.addEventListener("click", load);
  setTimeout(load, DELAY);
})();
"""
)
_NOSCRIPT = "<noscript>This shop needs JavaScript: please enable it.</noscript>"


def _json(data: object) -> Page:
    return Page(json.dumps(data).encode("utf-8"), content_type="application/json")


def _scripts(src: str, code: str) -> str:
    config = f"var SRC = {json.dumps(src)}, DELAY = {JS_DELAY_MS};".replace("</", "<\\/")
    return f"<script>{config}</script><script>{code}</script>"


def _product(pid: str) -> Product | None:
    if not re.fullmatch(r"[1-9][0-9]{0,3}", pid) or int(pid) > PRODUCT_COUNT:
        return None
    return build_catalog().products[int(pid) - 1]


def listing_products(slug: str) -> tuple[Product, ...]:
    """The products a JS listing shows, in order (empty: no JS listing for ``slug``)."""
    categories = build_catalog().categories[:JS_CATEGORY_COUNT]
    if slug not in {c.slug for c in categories}:
        return ()
    return build_catalog().in_category(slug)[:JS_LISTING_SIZE]


def moved_id() -> int:
    """The product whose card in the first JS listing points to its JS-redirecting URL."""
    return listing_products(build_catalog().categories[0].slug)[0].id


def index() -> Page:
    categories = build_catalog().categories[:JS_CATEGORY_COUNT]
    links = "".join(
        f'<li><a href="/js/catalog/{c.slug}/">{escape(c.name)}</a></li>' for c in categories
    )
    body = (
        "<h1>Demo Shop, the JavaScript edition</h1><p>The same shop, but its listings and product "
        "pages are filled in by JavaScript from a JSON API after the page has loaded.</p>"
        f'<nav class="categories"><ul>{links}</ul></nav><a href="/js/mixed/">Mixed section</a>'
    )
    return html_page("Demo Shop (JavaScript)", body)


def listing(slug: str) -> Page:
    products = listing_products(slug)
    if not products:
        return not_found()
    category = products[0].category
    body = (
        '<nav class="breadcrumb"><a href="/js/">Home</a></nav>'
        f'<h1>{escape(category.name)}</h1><div class="products" id="root"></div>'
        '<button class="load-more" type="button" hidden>Load more</button>'
        f"{_NOSCRIPT}{_scripts(f'/js/api/catalog/{slug}', _LISTING_JS)}"
    )
    return html_page(f"{escape(category.name)} | Demo Shop", body)


def listing_api(slug: str, query: dict[str, list[str]]) -> Page:
    products = listing_products(slug)
    offsets = query.get("offset", ["0"])
    if not products or len(offsets) != 1 or not offsets[0].isdigit():
        return not_found()
    start = int(offsets[0])
    moved = moved_id()
    cards = [
        {
            "href": f"/js/moved/{p.id}" if p.id == moved else f"/js/products/{p.id}",
            "name": p.name,
            "price": format_price(p),
        }
        for p in products[start : start + JS_BATCH]
    ]
    following = start + JS_BATCH if start + JS_BATCH < len(products) else None
    return _json({"cards": cards, "next": following})


def product_shell(p: Product, canonical: str, home: str, api: str) -> Page:
    """A product page with nothing but a breadcrumb until its JSON (from ``api``) arrives."""
    head = f'<link rel="canonical" href="{canonical}">'
    body = (
        f'<nav class="breadcrumb"><a href="{home}">Home</a> &rsaquo; '
        f'<a href="/js/catalog/{p.category.slug}/">{escape(p.category.name)}</a></nav>'
        f'<div id="root"></div>{_NOSCRIPT}{_scripts(api, _PRODUCT_JS)}'
    )
    return html_page("Loading… | Demo Shop", body, head)


def product_api(p: Product) -> Page:
    return _json(
        {
            "sku": p.sku,
            "name": p.name,
            "price": None if p.price is None else format_price(p),
            "currency": p.currency,
            "in_stock": p.in_stock,
            "rating": f"{p.rating:.1f}",
            "description": p.description,
            "images": [f"/images/{p.id}-{n}.jpg" for n in range(1, p.image_count + 1)],
        }
    )


def moved(p: Product) -> Page:
    target = json.dumps(f"/js/products/{p.id}")
    body = f"<p>Moved.</p><script>location.replace({target});</script>"
    return html_page("Moved | Demo Shop", body)


def _positive(query: dict[str, list[str]], name: str, default: int) -> int | None:
    values = query.get(name, [str(default)])
    if len(values) != 1 or not re.fullmatch(r"[1-9][0-9]{0,5}", values[0]):
        return None
    return int(values[0])


def mixed_index(query: dict[str, list[str]]) -> Page:
    """Links to ``/js/mixed/<n>`` for n = step, 2 step, … count × step (``?count=&step=``)."""
    count, step = _positive(query, "count", 100), _positive(query, "step", 1)
    if count is None or step is None:
        return not_found()
    numbers = range(step, min(count * step, MIXED_MAX) + 1, step)
    cards = "".join(card(f"/js/mixed/{n}", f"Item {n}", "") for n in numbers)
    body = f'<h1>Mixed section</h1><div class="products">{cards}</div>'
    return html_page("Mixed section | Demo Shop", body)


def mixed_product(n: str) -> Product | None:
    """Page n of the mixed section: a catalog product with its own SKU, always with a price."""
    if not re.fullmatch(r"[1-9][0-9]{0,5}", n) or int(n) > MIXED_MAX:
        return None
    p = build_catalog().products[(int(n) - 1) % PRODUCT_COUNT]
    return replace(p, sku=f"MX-{int(n):06d}", price=p.price or Decimal("9.99"))


def mixed_page(n: str, host: str) -> Page:
    """Mixed page n as plain HTML, or as a JS shell when n is a multiple of ``JS_EVERY``."""
    p = mixed_product(n)
    if p is None:
        return not_found()
    canonical = f"http://{host}/js/mixed/{n}"
    if int(n) % JS_EVERY == 0:
        return product_shell(p, canonical, "/js/mixed/", f"/js/api/mixed/{n}")
    head = f'<link rel="canonical" href="{canonical}">'
    body = (
        '<nav class="breadcrumb"><a href="/js/mixed/">Home</a> &rsaquo; '
        f'<a href="/js/catalog/{p.category.slug}/">{escape(p.category.name)}</a></nav>'
        f"{product_div(p)}"
    )
    return html_page(f"{escape(p.name)} | Demo Shop", body, head)


def js_route(path: str, query: dict[str, list[str]], host: str) -> Page:
    """The page for a path under ``/js/``."""
    if path == "/js/":
        return index()
    if path == "/js/mixed/":
        return mixed_index(query)
    if match := re.fullmatch(r"/js/catalog/([a-z-]+)/", path):
        return listing(match[1])
    if match := re.fullmatch(r"/js/api/catalog/([a-z-]+)", path):
        return listing_api(match[1], query)
    if match := re.fullmatch(r"/js/mixed/([^/]+)", path):
        return mixed_page(match[1], host)
    if match := re.fullmatch(r"/js/api/mixed/([^/]+)", path):
        product = mixed_product(match[1])
        return not_found() if product is None else product_api(product)
    if path.startswith("/js/hang/"):
        return Page(b"", delay=HANG_SECONDS)
    if match := re.fullmatch(r"/js/(products|api/products|moved)/([^/]+)", path):
        kind, p = match[1], _product(match[2])
        if p is None:
            return not_found()
        if kind == "api/products":
            return product_api(p)
        if kind == "moved":
            return moved(p)
        canonical = f"http://{host}/js/products/{p.id}"
        return product_shell(p, canonical, "/js/", f"/js/api/products/{p.id}")
    return not_found()
