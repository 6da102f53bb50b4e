"""The demo shop's pages: what each path answers (status, headers, body), with no HTTP code.

``route(path, query, host, slow_seconds, revisions)`` is the whole site;
``crawler/demo/server.py`` serves it (and adds ETag / Last-Modified and 304 answers).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING

from crawler.demo.catalog import (
    DISCONTINUED,
    FEATURED_IDS,
    LEGACY_ID,
    MESSY_ID,
    PAGE_SIZE,
    PRODUCT_COUNT,
    REDIRECTED_ID,
    SLOW_ID,
    Category,
    Product,
    build_catalog,
    format_price,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

HTML = "text/html; charset=utf-8"
# Last-Modified of every page at version 0; each revision of a product adds a day.
BASE_MODIFIED = datetime(2024, 11, 1, 9, 0, tzinfo=UTC)
NO_REVISIONS: Mapping[int, int] = {}
LEGACY_META = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">'
# A 1x1 grey baseline JPEG: JFIF header, flat quantisation table, one-code Huffman tables.
JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300" + "01" * 64
    + "ffc0000b080001000101011100ffc4001400" + "01" + "00" * 15 + "00"
    + "ffc4001410" + "01" + "00" * 15 + "00" + "ffda0008010100003f003fffd9"
)  # fmt: skip
_DISCONTINUED_CARDS = dict(
    zip(
        DISCONTINUED,
        [("Brass Banker Lamp", "$89.00"), ("Paper Lantern Pendant", "$24.50"),
         ("Neon Bar Light", "$1,150.00")],
        strict=True,
    )
)  # fmt: skip
_MESSY_NAME = "\n   Salt  &amp;\t Pepper&nbsp;Mill \r\n"
_MESSY_DESCRIPTION = (
    "\n  A classic   Salt &amp; Pepper&nbsp;Mill with a ceramic\tgrinder.\n\n\t"
    "It&#8217;s easy to refill\x0b and adjusts from fine to   coarse.  \r\n"
    "    Hand-finished&nbsp;beech wood.   \n"
)


@dataclass
class Page:
    """One response: status, body and headers beyond Content-Type/Content-Length."""

    body: bytes = b""
    status: int = 200
    content_type: str = HTML
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    last_modified: datetime = BASE_MODIFIED

    @property
    def etag(self) -> str:
        """A strong ETag: the body's hash, so it changes exactly when the body does."""
        return f'"{hashlib.sha256(self.body).hexdigest()[:32]}"'

    @property
    def is_html(self) -> bool:
        return self.content_type.startswith("text/html")


def html_page(title: str, body: str, head: str = "", status: int = 200) -> Page:
    text = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"{head}</head><body>{body}</body></html>"
    )
    return Page(text.encode("utf-8"), status)


def not_found() -> Page:
    return html_page("Not found", "<h1>Not found</h1><p>No such page.</p>", status=404)


def redirect(location: str) -> Page:
    return Page(b"", 301, headers={"Location": location})


def cp1252_page(text: str) -> Page:
    return Page(text.encode("cp1252", errors="xmlcharrefreplace"), content_type="text/html")


def home() -> Page:
    catalog = build_catalog()
    categories = "".join(
        f'<li><a href="/catalog/{c.slug}/">{escape(c.name)}</a></li>' for c in catalog.categories
    )
    featured = "".join(
        f'<li><a href="/products/{i}?ref=featured">{escape(catalog.products[i - 1].name)}</a></li>'
        for i in FEATURED_IDS
    )
    extras = (
        ("/about", "About us"), ("/legacy", "Legacy page"), ("/slow", "Slow page"),
        ("/old-catalog", "Old catalog"), ("/private/secret", "Staff only"),
        ("/missing-page", "Gift cards"),
    )  # fmt: skip
    footer = "".join(f'<a href="{href}">{text}</a> ' for href, text in extras)
    body = (
        "<h1>Demo Shop</h1><p>Furniture, lighting and small things for the home, "
        "made by independent workshops and shipped from our own warehouse.</p>"
        f'<nav class="categories"><ul>{categories}</ul></nav>'
        f'<section class="featured"><h2>Featured</h2><ul>{featured}</ul></section>'
        f"<footer>{footer}</footer>"
    )
    meta = '<meta name="description" content="A demo shop of home goods for crawling tests.">'
    return html_page("Demo Shop", body, meta)


def catalog_index() -> Page:
    links = "".join(
        f'<li><a href="/catalog/{c.slug}/">{escape(c.name)}</a></li>'
        for c in build_catalog().categories
    )
    return html_page("Catalog | Demo Shop", f"<h1>Catalog</h1><ul>{links}</ul>")


def revised(p: Product, revision: int) -> Product:
    """``p`` after ``revision`` changes (``DemoSite.change_products``): 5% dearer per revision,
    and a note at the end of its description. Deterministic, so tests know the new values."""
    if revision <= 0:
        return p
    price = p.price
    if price is not None:
        price = (price * (100 + 5 * revision) / 100).quantize(Decimal("0.01"))
    return replace(p, price=price, description=f"{p.description} Revised edition {revision}.")


def modified(revision: int) -> datetime:
    """The Last-Modified of a page whose newest product is at ``revision``."""
    return BASE_MODIFIED + timedelta(days=revision)


def listing_cards(category: Category, revisions: Mapping[int, int] = NO_REVISIONS) -> list[str]:
    """The product cards of a category, in listing order (discontinued ones last)."""
    catalog = build_catalog()
    cards = []
    for original in catalog.in_category(category.slug):
        p = revised(original, revisions.get(original.id, 0))
        href = f"/old-products/{p.id}" if p.id == REDIRECTED_ID else f"/products/{p.id}"
        cards.append(card(href, p.name, format_price(p)))
    if category == catalog.categories[0]:
        cards += [card(f"/products/{s}", n, price) for s, (n, price) in _DISCONTINUED_CARDS.items()]
    return cards


def card(href: str, name: str, price: str) -> str:
    return (
        f'<article class="product-card"><h2><a href="{href}">{escape(name)}</a></h2>'
        f'<span class="price">{price}</span></article>'
    )


def listing(
    slug: str, query: dict[str, list[str]], revisions: Mapping[int, int] = NO_REVISIONS
) -> Page:
    category = next((c for c in build_catalog().categories if c.slug == slug), None)
    pages = query.get("page", ["1"])
    if category is None or len(pages) != 1 or not re.fullmatch(r"[1-9][0-9]{0,5}", pages[0]):
        return not_found()
    page, cards = int(pages[0]), listing_cards(category, revisions)
    if (page - 1) * PAGE_SIZE >= len(cards):
        return not_found()
    shown = "".join(cards[(page - 1) * PAGE_SIZE : page * PAGE_SIZE])
    more = page * PAGE_SIZE < len(cards)
    following = f"/catalog/{slug}/?page={page + 1}"
    body = (
        '<nav class="breadcrumb"><a href="/">Home</a> &rsaquo; <a href="/catalog/">Catalog</a>'
        f"</nav><h1>{escape(category.name)}</h1>"
        f'<p class="page">Page {page}</p><div class="products">{shown}</div>'
        + (f'<a class="next" rel="next" href="{following}">Next</a>' if more else "")
    )
    answer = html_page(f"{escape(category.name)} | Demo Shop", body)
    ids = [p.id for p in build_catalog().in_category(slug)]
    answer.last_modified = modified(max(revisions.get(i, 0) for i in ids))
    return answer


def product_page(
    pid: str,
    host: str,
    slow_seconds: float,
    revisions: Mapping[int, int] = NO_REVISIONS,
    broken: Iterable[str] = (),
) -> Page:
    if not re.fullmatch(r"[1-9][0-9]{0,3}", pid) or int(pid) > PRODUCT_COUNT:
        return not_found()
    revision = revisions.get(int(pid), 0)
    p = revised(build_catalog().products[int(pid) - 1], revision)
    legacy = p.id == LEGACY_ID
    text = (
        '<!DOCTYPE html><html lang="en"><head>'
        + (LEGACY_META if legacy else '<meta charset="utf-8">')
        + f"<title>{escape(p.name)} | Demo Shop</title>"
        f'<meta name="description" content="{escape(p.description.split(". ")[0])}.">'
        f'<link rel="canonical" href="http://{host}/products/{p.id}"></head><body>'
        f'<nav class="breadcrumb"><a href="/">Home</a> &rsaquo; '
        f'<a href="/catalog/{p.category.slug}/">{escape(p.category.name)}</a></nav>'
        f"{product_div(p, broken)}</body></html>"
    )
    if legacy:
        page = cp1252_page(text)
    else:
        page = Page(text.encode("utf-8"), delay=slow_seconds if p.id == SLOW_ID else 0.0)
    page.last_modified = modified(revision)
    return page


# Fields whose markup `broken` changes as a redesign would (class and attribute renamed), so that
# a spider's selectors find nothing for them; none is required, so items are still stored.
BREAKABLE_FIELDS: dict[str, tuple[str, str]] = {
    "rating": ('<div class="rating" data-rating=', '<div class="score" data-score='),
    "description": ('<div class="description">', '<div class="summary">'),
    "in_stock": ('<p class="availability">', '<p class="stock-state">'),
}


def break_fields(html: str, broken: Iterable[str]) -> str:
    """``html`` with the markup of the ``broken`` fields renamed (see ``BREAKABLE_FIELDS``)."""
    for name in broken:
        old, new = BREAKABLE_FIELDS[name]
        html = html.replace(old, new)
    return html


def product_div(p: Product, broken: Iterable[str] = ()) -> str:
    messy = p.id == MESSY_ID
    if p.price is None:
        price = '<p class="price">Price on request</p>'
    else:
        price = f'<p class="price" data-currency="{p.currency}">{format_price(p)}</p>'
    catalog = build_catalog()
    images = "".join(
        f'<li><img src="/images/{p.id}-{n}.jpg" alt="{escape(p.name)}, image {n}"></li>'
        for n in range(1, p.image_count + 1)
    )
    related = "".join(
        f'<a href="/products/{r}">{escape(catalog.products[r - 1].name)}</a>' for r in p.related_ids
    )
    return break_fields(
        f'<div class="product" data-sku="{p.sku}">'
        f'<h1 class="product-name">{_MESSY_NAME if messy else escape(p.name)}</h1>'
        f'<p class="sku">SKU: <span class="sku-value">{p.sku}</span></p>{price}'
        f'<p class="availability">{"In stock" if p.in_stock else "Out of stock"}</p>'
        f'<div class="rating" data-rating="{p.rating:.1f}">Rated {p.rating:.1f} out of 5</div>'
        f'<div class="description"><p>{_MESSY_DESCRIPTION if messy else escape(p.description)}'
        f'</p></div><ul class="gallery">{images}</ul>'
        f'<section class="related"><h2>Related</h2>{related}</section></div>',
        broken,
    )


def sitemap(host: str) -> Page:
    catalog = build_catalog()
    paths = ["", "catalog/"] + [f"catalog/{c.slug}/" for c in catalog.categories]
    paths += [f"products/{p.id}" for p in catalog.products]
    urls = "".join(f"<url><loc>http://{host}/{path}</loc></url>\n" for path in paths)
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{urls}</urlset>\n'
    )
    return Page(text.encode("utf-8"), content_type="application/xml")


def about() -> Page:
    body = (
        "<h1>\n  About &nbsp; us </h1>\n<p>We are a   small\tteam&nbsp;of makers.\n\n"
        "   Our shop&#8217;s catalog is   generated, but its mess is   real &amp; intended.</p>"
    )
    text = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>  About&nbsp;us  \n</title></head><body>{body}</body></html>"
    )
    return Page(text.encode("utf-8"))


def legacy() -> Page:
    return cp1252_page(
        f'<!DOCTYPE html><html lang="en"><head>{LEGACY_META}'
        "<title>Crème brûlée – the legacy page</title></head><body>"
        "<h1>Crème brûlée – the legacy page</h1><p>This page is served in “Windows-1252”, "
        "declared only in a meta tag: 5 € per café au lait.</p></body></html>"
    )


def robots(host: str) -> Page:
    text = f"User-agent: *\nDisallow: /private/\nSitemap: http://{host}/sitemap.xml\n"
    return Page(text.encode("utf-8"), content_type="text/plain; charset=utf-8")
