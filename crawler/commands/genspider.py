"""``scrapy genspider NAME DOMAIN``: a spider from the project's templates (``TEMPLATES_DIR``).

The project's ``basic`` template (``crawler/templates/spiders/basic.tmpl``) makes a plain
``scrapy.Spider`` that runs and stores items as it is. Templates the project does not have
(``-t crawl``, ``csvfeed``, ``xmlfeed``) are Scrapy's own, and ``--list`` shows both.
``allowed_domains`` gets the host without its port (Scrapy's offsite filter ignores an entry
with a port, and would then let the spider wander off).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import scrapy
from scrapy.commands.genspider import Command as ScrapyGenspiderCommand

if TYPE_CHECKING:
    import os

SCRAPY_TEMPLATES = Path(scrapy.__path__[0], "templates", "spiders")


class Command(ScrapyGenspiderCommand):
    def _generate_template_variables(
        self, module: str, name: str, url: str, template_name: str
    ) -> dict[str, Any]:
        values = super()._generate_template_variables(module, name, url, template_name)
        values["domain"] = urlsplit(url).hostname or values["domain"]
        return values

    def _find_template(self, template: str) -> Path | None:
        filename = template if template.endswith(".tmpl") else f"{template}.tmpl"
        for path in (Path(filename), Path(self.templates_dir, filename)):
            if path.exists():
                return path
        if (SCRAPY_TEMPLATES / filename).exists():
            return SCRAPY_TEMPLATES / filename
        return super()._find_template(template)  # prints Scrapy's "Unable to find template"

    def _list_templates(self) -> None:
        names = {p.stem for d in (Path(self.templates_dir), SCRAPY_TEMPLATES) for p in _tmpl(d)}
        print("Available templates:")
        for name in sorted(names):
            print(f"  {name}")


def _tmpl(directory: str | os.PathLike[str]) -> list[Path]:
    path = Path(directory)
    return sorted(path.glob("*.tmpl")) if path.is_dir() else []
