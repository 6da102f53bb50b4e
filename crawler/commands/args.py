"""``scrapy args SPIDER [--json]``: the arguments a spider takes (``-a NAME=VALUE``).

One row per declared argument (``arguments_spec``, ``crawler.arguments.Arg``): its name, type,
default (``required`` when the spider refuses to run without it) and help. ``--json`` prints the
spider's metadata in the shape of scrapy-spider-metadata's ``get_spider_metadata``: ``name``,
``description`` and ``param_schema`` (a JSON Schema object), for tools that start crawls.
A spider without ``arguments_spec`` (a plain ``scrapy.Spider``) lists none.
"""

from __future__ import annotations

import inspect
import json
import sys
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.commands import ScrapyCommand
from scrapy.exceptions import UsageError
from scrapy.spiderloader import get_spider_loader

from crawler.arguments import arg_type, param_schema
from crawler.exitcodes import EXIT_USAGE

if TYPE_CHECKING:
    import argparse

    from crawler.arguments import Arg


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    default_settings: ClassVar[dict[str, Any]] = {"LOG_ENABLED": False}

    def syntax(self) -> str:
        return "[--json] <spider>"

    def short_desc(self) -> str:
        return "List the arguments (-a NAME=VALUE) a spider takes"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument(
            "--json", action="store_true", help="print a JSON param_schema for other tools"
        )

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError("give one spider name; `scrapy list` shows them")
        assert self.settings is not None
        try:
            spidercls = get_spider_loader(self.settings).load(args[0])
        except KeyError:
            print(f"error: no spider named {args[0]!r} (see `scrapy list`)", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        spec: dict[str, Arg] = getattr(spidercls, "arguments_spec", {})
        description = _description(spidercls)
        if opts.json:
            metadata = {
                "name": spidercls.name,
                "description": description,
                "param_schema": param_schema(spec),
            }
            print(json.dumps(metadata, indent=2, default=str))
        else:
            print(_table(spidercls.name, description, spec))


def _description(spidercls: type[Any]) -> str:
    doc = inspect.getdoc(spidercls) or ""
    return doc.split("\n\n", 1)[0].replace("\n", " ")


def _default(arg: Arg) -> str:
    if arg.required:
        return "required"
    if arg.default is None:
        return "-"
    if isinstance(arg.default, bool):
        return str(arg.default).lower()
    return str(arg.default)


def _table(name: str, description: str, spec: dict[str, Arg]) -> str:
    lines = [f"{name}: {description}" if description else name, ""]
    if not spec:
        lines.append("(no declared arguments)")
        return "\n".join(lines)
    rows = [("NAME", "TYPE", "DEFAULT", "HELP")]
    rows += [(n, arg_type(a)[0], _default(a), a.help) for n, a in spec.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        lines.append("  ".join([*cells, row[3]]).rstrip())
    lines += ["", f"scrapy crawl {name} -a NAME=VALUE …"]
    return "\n".join(lines)
