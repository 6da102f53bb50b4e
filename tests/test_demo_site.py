"""The demo shop as crawlers see it: routes, exact counts, odd pages, `python -m crawler.demo`."""

from __future__ import annotations

import hashlib
import html
import http.client
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from email.message import Message
from xml.etree import ElementTree

import pytest

from crawler.demo.catalog import (
    CATEGORY_COUNT,
    DISCONTINUED,
    FEATURED_IDS,
    LEGACY_ID,
    MESSY_ID,
    PAGE_SIZE,
    PRICE_ON_REQUEST_IDS,
    PRODUCT_COUNT,
    REDIRECTED_ID,
    SLOW_ID,
    build_catalog,
    format_price,
)
from crawler.demo.server import DemoSite, product_ids
from tests.support import ROOT

pytestmark = pytest.mark.timeout(30)
SLOW = 0.2


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def fetch(
    url: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, Message, bytes]:
    """Status, headers and body of one request; redirects are not followed."""
    assert url.startswith("http://127.0.0.1:")
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with OPENER.open(request, timeout=10) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    with DemoSite(slow_seconds=SLOW) as demo:
        yield demo


def test_home_links_categories_featured_and_odd_pages(site: DemoSite) -> None:
    status, headers, body = fetch(site.url)
    page = body.decode("utf-8")
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert "<title>Demo Shop</title>" in page and '<html lang="en">' in page
    assert '<meta name="description"' in page and "<h1>Demo Shop</h1>" in page
    hrefs = re.findall(r'href="([^"]+)"', page)
    categories = [f"/catalog/{c.slug}/" for c in build_catalog().categories]
    featured = [f"/products/{i}?ref=featured" for i in FEATURED_IDS]
    odd = ["/about", "/legacy", "/slow", "/old-catalog", "/private/secret", "/missing-page"]
    assert hrefs == categories + featured + odd
    assert '<section class="featured">' in page


def test_robots_txt(site: DemoSite) -> None:
    status, headers, body = fetch(f"{site.url}robots.txt")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert body.decode() == (
        f"User-agent: *\nDisallow: /private/\nSitemap: {site.url}sitemap.xml\n"
    )


def test_sitemap_lists_home_catalog_listings_and_every_product(site: DemoSite) -> None:
    status, _, body = fetch(f"{site.url}sitemap.xml")
    assert status == 200
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locs = [e.text for e in ElementTree.fromstring(body).findall("s:url/s:loc", ns)]
    products = [u for u in locs if u and u.startswith(f"{site.url}products/")]
    assert len(products) == len(set(products)) == PRODUCT_COUNT == 1000
    listings = [u for u in locs if u and re.fullmatch(rf"{site.url}catalog/[a-z-]+/", u)]
    assert len(listings) == CATEGORY_COUNT
    assert len(locs) == 1 + 1 + CATEGORY_COUNT + PRODUCT_COUNT
    assert site.url in locs and f"{site.url}catalog/" in locs


def walk_listing(site: DemoSite, slug: str) -> tuple[int, list[str]]:
    """Follow a category's Next links: (number of pages, every card href in order)."""
    url: str | None = f"{site.url}catalog/{slug}/"
    pages, hrefs = 0, []
    while url:
        status, _, body = fetch(url)
        assert status == 200, url
        page = body.decode("utf-8")
        cards = re.findall(r'<article class="product-card"><h2><a href="([^"]+)">', page)
        assert 0 < len(cards) <= PAGE_SIZE
        pages, hrefs = pages + 1, hrefs + cards
        following = re.search(r'<a class="next" rel="next" href="([^"]+)">Next</a>', page)
        assert (len(cards) == PAGE_SIZE) or following is None
        url = site.url + following[1].lstrip("/") if following else None
    return pages, hrefs


def test_pagination_lists_every_product_exactly_once(site: DemoSite) -> None:
    catalog = build_catalog()
    seen: list[str] = []
    total_pages = 0
    for category in catalog.categories:
        pages, hrefs = walk_listing(site, category.slug)
        total_pages += pages
        seen += hrefs
        assert len(catalog.in_category(category.slug)) > PAGE_SIZE
    ids = [
        int(m[1]) for h in seen if (m := re.fullmatch(r"/(?:old-)?products/(\d+)", h))
    ]  # fmt: skip
    assert sorted(ids) == list(range(1, PRODUCT_COUNT + 1))
    assert f"/old-products/{REDIRECTED_ID}" in seen and f"/products/{REDIRECTED_ID}" not in seen
    assert [h for h in seen if "discontinued" in h] == [f"/products/{s}" for s in DISCONTINUED]
    assert len(seen) == PRODUCT_COUNT + len(DISCONTINUED)
    assert total_pages == 48


def test_discontinued_cards_close_the_first_category(site: DemoSite) -> None:
    first = build_catalog().categories[0]
    _, hrefs = walk_listing(site, first.slug)
    assert hrefs[-3:] == [f"/products/{s}" for s in DISCONTINUED]
    for slug in DISCONTINUED:
        assert fetch(f"{site.url}products/{slug}")[0] == 404


@pytest.mark.parametrize(
    "path",
    ["catalog/lighting/?page=7", "catalog/lighting/?page=0", "catalog/lighting/?page=x",
     "catalog/lighting/?page=01", "catalog/nope/", "products/0", "products/1001",
     "products/7/", "old-products/1001", "missing-page", "images/1-1.png"],
)  # fmt: skip
def test_not_found(site: DemoSite, path: str) -> None:
    status, headers, _ = fetch(site.url + path)
    assert (status, headers["Content-Type"]) == (404, "text/html; charset=utf-8")


def test_product_page(site: DemoSite) -> None:
    product = build_catalog().products[0]
    status, _, body = fetch(f"{site.url}products/1?ref=featured")
    page = body.decode("utf-8")
    assert status == 200
    assert f"<title>{product.name} | Demo Shop</title>" in page
    assert f'<link rel="canonical" href="{site.url}products/1">' in page
    assert f'<a href="/catalog/{product.category.slug}/">{product.category.name}</a></nav>' in page
    assert f'<span class="sku-value">{product.sku}</span>' in page
    price = f'<p class="price" data-currency="{product.currency}">{format_price(product)}</p>'
    assert price in page
    assert page.count('<li><img src="/images/1-') == product.image_count
    assert len(re.findall(r'<section class="related">.*</section>', page)) == 1
    assert f'data-rating="{product.rating:.1f}"' in page


def test_price_on_request(site: DemoSite) -> None:
    for pid in PRICE_ON_REQUEST_IDS:
        page = fetch(f"{site.url}products/{pid}")[2].decode("utf-8")
        assert '<p class="price">Price on request</p>' in page


def test_images_are_jpeg(site: DemoSite) -> None:
    status, headers, body = fetch(f"{site.url}images/1-1.jpg")
    assert (status, headers["Content-Type"]) == (200, "image/jpeg")
    assert body[:3] == b"\xff\xd8\xff" and body[-2:] == b"\xff\xd9"


@pytest.mark.parametrize(
    ("path", "title"),
    [(f"products/{LEGACY_ID}", "Café Crème – Deluxe Grinder | Demo Shop"),
     ("legacy", "Crème brûlée – the legacy page")],
)  # fmt: skip
def test_cp1252_pages_declare_it_only_in_meta(site: DemoSite, path: str, title: str) -> None:
    status, headers, body = fetch(site.url + path)
    assert (status, headers["Content-Type"]) == (200, "text/html")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    page = body.decode("cp1252")
    assert f"<title>{title}</title>" in page
    assert '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">' in page
    assert "<meta charset" not in page


def test_redirects(site: DemoSite) -> None:
    status, headers, _ = fetch(f"{site.url}old-products/{REDIRECTED_ID}")
    assert (status, headers["Location"]) == (301, f"/products/{REDIRECTED_ID}")
    status, headers, _ = fetch(f"{site.url}old-catalog")
    assert (status, headers["Location"]) == (301, "/catalog/")


def test_messy_product_page(site: DemoSite) -> None:
    page = fetch(f"{site.url}products/{MESSY_ID}")[2].decode("utf-8")
    assert '<h1 class="product-name">\n   Salt  &amp;\t Pepper&nbsp;Mill \r\n</h1>' in page
    (description,) = re.findall(r'<div class="description"><p>(.*?)</p></div>', page, re.S)
    for mess in ("&nbsp;", "&#8217;", "\x0b", "  ", "\n", "\t"):
        assert mess in description
    # Unescaped and with whitespace collapsed it is the catalog's text.
    clean = " ".join(html.unescape(description).replace("\x0b", "").split())
    assert clean == build_catalog().products[MESSY_ID - 1].description


def test_messy_about_page(site: DemoSite) -> None:
    page = fetch(f"{site.url}about")[2].decode("utf-8")
    assert "<title>  About&nbsp;us  \n</title>" in page and '<html lang="en">' in page


@pytest.mark.parametrize("path", ["slow", f"products/{SLOW_ID}"])
def test_slow_pages(site: DemoSite, path: str) -> None:
    started = time.monotonic()
    status, _, body = fetch(site.url + path)
    assert status == 200 and time.monotonic() - started >= SLOW
    if path == "slow":
        assert b"<title>Slow page</title>" in body


def test_private_pages_answer_when_asked_directly(site: DemoSite) -> None:
    assert fetch(f"{site.url}private/secret")[0] == 200


def test_hits_count_paths_without_query(site: DemoSite) -> None:
    before = site.hits["/products/3"]
    fetch(f"{site.url}products/3?ref=featured")
    fetch(f"{site.url}products/3", method="HEAD")
    assert site.hits["/products/3"] == before + 2
    assert "/products/3?ref=featured" not in site.hits


def test_head_and_keep_alive(site: DemoSite) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    try:
        connection.request("HEAD", "/about")
        head = connection.getresponse()
        assert head.read() == b"" and int(head.headers["Content-Length"]) > 0
        connection.request("GET", "/about")
        get = connection.getresponse()
        assert len(get.read()) == int(head.headers["Content-Length"])
        assert not get.will_close
    finally:
        connection.close()


def test_catalog_is_deterministic() -> None:
    assert build_catalog() == build_catalog.__wrapped__()
    products = build_catalog().products
    assert [p.id for p in products] == list(range(1, PRODUCT_COUNT + 1))
    assert len({p.sku for p in products}) == PRODUCT_COUNT
    assert products[LEGACY_ID - 1].name == "Café Crème – Deluxe Grinder"
    assert products[MESSY_ID - 1].name == "Salt & Pepper Mill"
    assert (products[0].sku, products[0].name) == ("DS-00001", "Bamboo Pendant Light")
    assert (products[1].currency, products[1].price) == ("USD", Decimal("2114.69"))
    assert format_price(products[1]) == "$2,114.69"
    assert format_price(products[5]) == "£2,490.23"
    assert format_price(products[78]) == "4.350,02 €"
    assert format_price(products[PRICE_ON_REQUEST_IDS[0] - 1]) == "Price on request"
    # Other processes, other hash seeds: the same catalog.
    digest = hashlib.sha256(repr(build_catalog()).encode()).hexdigest()
    code = (
        "import hashlib; from crawler.demo.catalog import build_catalog; "
        "print(hashlib.sha256(repr(build_catalog()).encode()).hexdigest())"
    )
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
        other = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=20,
            check=True,
        )  # fmt: skip
        assert other.stdout.strip() == digest


def test_catalog_shapes() -> None:
    catalog = build_catalog()
    assert len(catalog.categories) == CATEGORY_COUNT
    assert {p.currency for p in catalog.products} == {"USD", "GBP", "EUR"}
    for p in catalog.products:
        assert 1 <= p.image_count <= 4 and 1.0 <= p.rating <= 5.0 and p.rating * 2 % 1 == 0
        assert len(set(p.related_ids)) == 4 and p.id not in p.related_ids
        assert all(1 <= r <= PRODUCT_COUNT for r in p.related_ids)
        if p.price is not None:
            assert Decimal("1.00") <= p.price <= Decimal("4999.99")
    assert any(p.price and p.price >= 1000 for p in catalog.products)


def test_serve_command_prints_url_serves_and_stops_on_sigterm() -> None:
    command = [sys.executable, "-m", "crawler.demo", "serve", "--port", "0"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        match = re.fullmatch(r"Demo site at (http://127\.0\.0\.1:\d+/)\n", line)
        assert match, line
        status, _, body = fetch(match[1])
        assert status == 200 and b"<h1>Demo Shop</h1>" in body
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
        assert server.stdout.read() == ""
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


# --- validators, 304s and changed products (incremental recrawls) ----------------------------
BASE_LAST_MODIFIED = "Fri, 01 Nov 2024 09:00:00 GMT"


def etag_of(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def same_page(one: DemoSite, two: DemoSite, path: str) -> bool:
    """Whether two sites answer ``path`` alike (product pages name their host: ignored)."""
    first, second = fetch(one.url + path)[2], fetch(two.url + path)[2]
    return first.replace(one.netloc.encode(), b"H") == second.replace(two.netloc.encode(), b"H")


@pytest.mark.parametrize("path", ["", "products/1", f"products/{LEGACY_ID}", "catalog/bath/"])
def test_html_pages_carry_a_strong_etag_and_last_modified(site: DemoSite, path: str) -> None:
    status, headers, body = fetch(site.url + path)
    assert status == 200
    assert headers["ETag"] == etag_of(body)
    assert headers["Last-Modified"] == BASE_LAST_MODIFIED


@pytest.mark.parametrize("path", ["robots.txt", "images/1-1.jpg", "missing-page", "old-catalog"])
def test_other_answers_carry_no_validators(site: DemoSite, path: str) -> None:
    _, headers, _ = fetch(site.url + path)
    assert headers["ETag"] is None and headers["Last-Modified"] is None


@pytest.mark.parametrize(
    ("sent", "status"),
    [({"If-None-Match": "{etag}"}, 304),
     ({"If-None-Match": 'W/{etag}'}, 304),  # weak comparison for GET
     ({"If-None-Match": '"other", {etag}'}, 304),
     ({"If-None-Match": "*"}, 304),
     ({"If-None-Match": '"other"'}, 200),
     ({"If-Modified-Since": BASE_LAST_MODIFIED}, 304),
     ({"If-Modified-Since": "Sat, 02 Nov 2024 00:00:00 GMT"}, 304),
     ({"If-Modified-Since": "Thu, 31 Oct 2024 23:59:59 GMT"}, 200),
     ({"If-Modified-Since": "not a date"}, 200),
     # If-None-Match decides when both are sent
     ({"If-None-Match": '"other"', "If-Modified-Since": BASE_LAST_MODIFIED}, 200)],
)  # fmt: skip
def test_conditional_requests(site: DemoSite, sent: dict[str, str], status: int) -> None:
    url = f"{site.url}products/2"
    etag = fetch(url)[1]["ETag"]
    before = site.not_modified["/products/2"]
    sent = {name: value.format(etag=etag) for name, value in sent.items()}
    answer, headers, body = fetch(url, headers=sent)
    assert answer == status
    assert headers["ETag"] == etag and headers["Last-Modified"] == BASE_LAST_MODIFIED
    assert (body == b"") is (status == 304)
    assert site.not_modified["/products/2"] - before == (status == 304)
    assert site.request_headers["/products/2"].get("If-None-Match") == sent.get("If-None-Match")


def test_304_keeps_the_connection_usable(site: DemoSite) -> None:
    etag = fetch(f"{site.url}about")[1]["ETag"]
    connection = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    try:
        connection.request("GET", "/about", headers={"If-None-Match": etag})
        first = connection.getresponse()
        assert (first.status, first.read()) == (304, b"")
        connection.request("GET", "/about")
        second = connection.getresponse()
        assert second.status == 200 and etag_of(second.read()) == etag
    finally:
        connection.close()


def test_changed_products_get_new_price_description_and_validators() -> None:
    catalog = build_catalog()
    product, other = catalog.products[1], catalog.products[2]  # Furniture and Home Office
    with DemoSite(slow_seconds=SLOW) as plain, DemoSite(slow_seconds=SLOW) as demo:
        demo.change_products([2])
        assert demo.revisions == {2: 1}
        _, old_headers, old_body = fetch(f"{plain.url}products/2")
        status, headers, body = fetch(f"{demo.url}products/2")
        page = body.decode("utf-8")
        assert status == 200 and headers["ETag"] == etag_of(body) != old_headers["ETag"]
        assert headers["Last-Modified"] == "Sat, 02 Nov 2024 09:00:00 GMT"
        assert format_price(product) == "$2,114.69"
        assert '<p class="price" data-currency="USD">$2,220.42</p>' in page  # 5% dearer
        assert f"{html.escape(product.description)} Revised edition 1.</p>" in page
        # the old validators no longer match; the listing showing its price changed too
        assert (
            fetch(f"{demo.url}products/2", headers={"If-None-Match": old_headers["ETag"]})[0] == 200
        )
        listing = f"catalog/{product.category.slug}/"
        assert not same_page(demo, plain, listing)
        for path in (f"products/{other.id}", f"catalog/{other.category.slug}/", ""):
            assert same_page(demo, plain, path)
        demo.change_products([2])
        page = fetch(f"{demo.url}products/2")[2].decode("utf-8")
        assert "$2,326.16" in page and "Revised edition 2." in page  # 10% over the original
        with pytest.raises(ValueError, match="no product 1001"):
            demo.change_products([5, 1001])
        assert demo.revisions == {2: 2}
    assert old_body != body


def test_changed_ids_at_start_are_deterministic() -> None:
    with DemoSite(changed_ids={5, 99}) as one, DemoSite() as two:
        two.change_products([99, 5])
        for path in ("products/5", "products/99", "catalog/dining/"):
            assert same_page(one, two, path)


def test_product_ids_of_the_change_option() -> None:
    assert product_ids("5,17, 99") == [5, 17, 99]
    for text in ("5,x", "0", "1001"):
        with pytest.raises(ValueError):
            product_ids(text)
