"""``products``: the worked example: catalog listings → product pages → ``ProductItem``.

Written for the bundled demo shop (``python -m crawler.demo serve``); to adapt it to another
shop, change the selectors below. Prices, stock and ratings arrive as text and become typed
values in the clean pipeline; an item missing a required field is rejected with its reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import scrapy

from crawler.arguments import Arg, positive_int
from crawler.exceptions import ArgumentError, IncrementalSkip
from crawler.items import ProductItem
from crawler.meta import SEED
from crawler.pageinfo import fetched_with
from crawler.safety.targets import seed_url
from crawler.spiders.base import MIN_AGE_ARG, RENDER_ARG, BaseSpider

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from scrapy.http import Response
    from twisted.python.failure import Failure

CURRENCY_SYMBOLS = {"$": "USD", "£": "GBP", "€": "EUR", "¥": "JPY"}


class ProductsSpider(BaseSpider):
    """Walk category listings (with pagination) and extract every product page.

    Listings are always fetched in full (their links are needed); product pages are revalidated
    on a recrawl (a 304 marks the stored product seen) and ``min_age`` skips recent ones.
    """

    name = "products"
    arguments_spec: ClassVar[dict[str, Arg]] = {
        "start_url": Arg(seed_url, required=True, help="the shop's home or catalog page"),
        "max_products": Arg(positive_int, help="stop following product links after this many"),
        "min_age": MIN_AGE_ARG,
        "render": RENDER_ARG,
    }

    # Selectors of the demo shop; a subclass for another shop overrides these.
    category_links = "a[href*='/catalog/']::attr(href)"
    product_links = "article.product-card a::attr(href), section.featured a::attr(href)"
    next_page = "a[rel=next]::attr(href)"
    # With -a render=…: a product page is complete once its SKU shows (the browser waits for it,
    # `auto` renders pages without it); a listing's "load more" button is clicked until gone.
    product_ready = "div.product .sku-value"
    load_more = "button.load-more"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.product_requests = 0

    @classmethod
    def check_arguments(cls, values: dict[str, Any]) -> None:
        if not values["start_url"]:
            raise ArgumentError("products needs -a start_url=URL (the shop's home page)")

    async def start(self) -> AsyncIterator[Any]:
        # meta seed: the user named this target (PrivateTargetMiddleware)
        yield scrapy.Request(
            self.arguments["start_url"],
            errback=self.on_error,
            meta={SEED: True, "render_click": self.load_more},
        )

    def parse(self, response: Response) -> Iterator[scrapy.Request]:
        """A home, catalog or listing page: follow categories, next pages and products.

        Contracts (``scrapy check products -a start_url=…``): a listing of the demo shop links
        to its products and its next page, and yields no item.

        @path /catalog/lighting/
        @returns requests 10
        @returns items 0 0
        """
        listing = {"render_click": self.load_more}
        for href in response.css(self.category_links).getall():
            yield response.follow(href, callback=self.parse, errback=self.on_error, meta=listing)
        next_href = response.css(self.next_page).get()
        if next_href:
            yield response.follow(
                next_href, callback=self.parse, errback=self.on_error, meta=listing
            )
        limit = self.arguments["max_products"]
        for href in response.css(self.product_links).getall():
            if limit is not None and self.product_requests >= limit:
                break
            self.product_requests += 1
            meta = {**self.leaf_meta(), "render_wait_for": self.product_ready}
            yield response.follow(
                href, callback=self.parse_product, errback=self.on_error, meta=meta
            )

    def parse_product(self, response: Response) -> ProductItem:
        """Raw text per field; the clean pipeline turns it into typed values.

        @path /products/3
        @returns items 1 1
        @returns requests 0 0
        @scrapes sku name price currency in_stock category url
        """
        product = response.css("div.product")
        price = product.css("p.price")
        price_text = price.xpath("string()").get()
        canonical = response.css("link[rel=canonical]::attr(href)").get()
        raw: dict[str, Any] = {
            "sku": product.css(".sku-value::text").get() or product.attrib.get("data-sku"),
            "name": product.css("h1").xpath("string()").get(),
            "price": price_text,
            "currency": price.attrib.get("data-currency") or _currency(price_text),
            "in_stock": product.css("p.availability").xpath("string()").get(),
            "rating": product.css(".rating::attr(data-rating)").get(),
            "category": response.css("nav.breadcrumb a:last-of-type").xpath("string()").get(),
            "description": product.css("div.description").xpath("string()").get(),
            "url": response.urljoin(canonical) if canonical else response.url,
            "image_urls": [response.urljoin(u) for u in product.css("img::attr(src)").getall()],
            "fetched_with": fetched_with(response),
        }
        return ProductItem(**raw)

    def on_error(self, failure: Failure) -> None:
        if not isinstance(failure.value, IncrementalSkip):  # 304 or min_age: not an error
            self.count_fetch_error(failure)


def _currency(text: str | None) -> str | None:
    for symbol, code in CURRENCY_SYMBOLS.items():
        if text and symbol in text:
            return code
    return None
