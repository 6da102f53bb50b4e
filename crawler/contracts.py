"""Spider contracts (``scrapy check``) for spiders whose site is a spider argument.

* ``@path /products/3``: the sample URL is this path on the spider's ``start_url`` argument
  (``scrapy check products -a start_url=http://127.0.0.1:8000/``), so a contract runs against
  whichever shop the user names, the demo on its random port included. ``@url`` still works
  for a fixed URL.
* ``@scrapes sku name price``: every item has a value for each field. Scrapy's own
  ``@scrapes`` only asks that the field exists, which every field of a dataclass item does,
  filled or not; ours replaces it at the same place (``crawler.defaults.COMPONENTS``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from itemadapter import ItemAdapter, is_item
from scrapy.contracts import Contract
from scrapy.exceptions import ContractFail

if TYPE_CHECKING:
    from collections.abc import Callable


class PathContract(Contract):
    """``@path PATH``: request ``PATH`` joined to the spider's ``start_url`` argument."""

    name = "path"

    def __init__(self, method: Callable[..., Any], *args: Any) -> None:
        super().__init__(method, *args)
        self.spider = getattr(method, "__self__", None)

    def adjust_request_args(self, args: dict[str, Any]) -> dict[str, Any]:
        start = getattr(self.spider, "arguments", {}).get("start_url")
        if isinstance(start, list):
            start = start[0] if start else None
        start = start or next(iter(getattr(self.spider, "start_urls", ())), None)
        if start:  # without one, no request: `scrapy check` refuses the missing argument first
            args["url"] = urljoin(start, self.args[0])
        return args


class ScrapesContract(Contract):
    """``@scrapes FIELD…``: each item has a value (not None, not empty) for every field."""

    name = "scrapes"

    def post_process(self, output: list[Any]) -> None:
        for item in output:
            if not is_item(item):
                continue
            adapter = ItemAdapter(item)
            missing = [f for f in self.args if adapter.get(f) in (None, "", [], {})]
            if missing:
                raise ContractFail(f"Missing fields: {', '.join(missing)}")
