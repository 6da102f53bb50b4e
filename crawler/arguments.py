"""Typed, validated spider arguments (``-a name=value``).

A spider declares its arguments as ``Arg`` objects; ``parse_arguments`` turns the raw strings
into typed values or raises ``ArgumentError`` with one line a user can act on. Anything not
declared is refused, so ``-a allowed_domains=…`` or ``-a custom_settings=…`` can never override
a spider attribute.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crawler.exceptions import ArgumentError
from crawler.storage.schema import to_json

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping

# Scrapyd passes these to every spider it runs.
SCRAPYD_ARGUMENTS = frozenset({"_job", "_version"})

# `-a url=…` may be given several times; the crawl command joins repeats with this.
REPEAT_SEPARATOR = "\n"
_URL_LIST_SPLIT = re.compile(r"\s*\n\s*|\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*:)")


@dataclass(frozen=True)
class Arg:
    """One spider argument: how to parse it, its default and one line of help."""

    parse: Callable[[str], Any]
    default: Any = None
    help: str = ""
    # "urls": split repeats and commas that start a new URL; "lines": split repeats only.
    multiple: str | None = None
    # Shown by `scrapy args` and its schema; the spider's check_arguments refuses its absence.
    required: bool = False


def positive_int(text: str) -> int:
    value = int(text.strip())
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def non_negative_int(text: str) -> int:
    value = int(text.strip())
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return text


def _split(raw: str, mode: str) -> list[str]:
    parts = raw.split(REPEAT_SEPARATOR) if mode == "lines" else _URL_LIST_SPLIT.split(raw)
    return [part.strip() for part in parts if part.strip()]


# Spider attributes that configure the crawl, the store or the checks: Scrapy's default
# ``Spider.__init__`` would set a plain spider's ``-a NAME=VALUE`` as an attribute (S4).
CONFIG_ATTRIBUTES = frozenset({
    "name", "allowed_domains", "custom_settings", "crawler", "settings", "start_urls",
    "item_schema", "item_table", "item_tables", "item_keys", "arguments", "arguments_spec",
})  # fmt: skip


def refuse_config_arguments(raw: Mapping[str, Any]) -> None:
    """``ArgumentError`` for a ``-a`` that would overwrite a spider's configuration attribute."""
    taken = sorted(set(raw) & CONFIG_ATTRIBUTES)
    if taken:
        raise ArgumentError(
            f"-a {taken[0]}=… would replace the spider's own {taken[0]!r}: not an argument"
        )


def parse_arguments(declared: Mapping[str, Arg], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Typed values for every declared argument (defaults filled in)."""
    unknown = sorted(set(raw) - set(declared) - SCRAPYD_ARGUMENTS)
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise ArgumentError(f"unknown argument {unknown[0]!r} (this spider takes: {known})")
    values: dict[str, Any] = {}
    for name, arg in declared.items():
        if name not in raw:
            values[name] = arg.default
            continue
        text = str(raw[name])
        try:
            if arg.multiple:
                values[name] = [arg.parse(part) for part in _split(text, arg.multiple)]
            else:
                values[name] = arg.parse(text)
        except (ValueError, TypeError) as exc:
            raise ArgumentError(f"invalid argument {name}={text!r}: {exc}") from None
    values.update({k: str(v) for k, v in raw.items() if k in SCRAPYD_ARGUMENTS})
    return values


# How `scrapy args` shows an argument's type (by its parse function's name): a short label and
# the JSON Schema of one value. A parse function not listed here is shown as text.
ARG_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "seed_url": ("url", {"type": "string", "format": "uri"}),
    "readable_file": ("file", {"type": "string", "format": "path"}),
    "regex": ("regex", {"type": "string", "format": "regex"}),
    "positive_int": ("integer>0", {"type": "integer", "exclusiveMinimum": 0}),
    "non_negative_int": ("integer>=0", {"type": "integer", "minimum": 0}),
    "boolean": ("boolean", {"type": "boolean"}),
    "duration": ("duration", {"type": "string"}),
    "render_mode": ("never|always|auto", {"enum": ["never", "always", "auto"]}),
    "shard": ("K/N", {"type": "string", "pattern": "^[0-9]+/[0-9]+$"}),
}


def arg_type(arg: Arg) -> tuple[str, dict[str, Any]]:
    """The label and JSON Schema of ``arg``'s values (an array of them when repeatable)."""
    label, schema = ARG_TYPES.get(getattr(arg.parse, "__name__", ""), ("text", {"type": "string"}))
    if arg.multiple:
        return f"{label}, repeatable", {"type": "array", "items": dict(schema)}
    return label, dict(schema)


def param_schema(declared: Mapping[str, Arg]) -> dict[str, Any]:
    """``declared`` as a JSON Schema object, in the shape of scrapy-spider-metadata's
    ``param_schema`` (title, description, type, default per property; required names)."""
    properties: dict[str, Any] = {}
    for name, arg in declared.items():
        _, schema = arg_type(arg)
        description = {"description": arg.help} if arg.help else {}
        properties[name] = {"title": name.replace("_", " ").title(), **schema, **description}
        if arg.default is not None:
            properties[name]["default"] = arg.default
    required = [name for name, arg in declared.items() if arg.required]
    return {"type": "object", "properties": properties, "required": required}


def join_repeated(pairs: list[str]) -> list[str]:
    """``["url=a", "url=b"]`` -> ``["url=a\\nb"]``; order kept, malformed pairs left as they are."""
    merged: dict[str, list[str]] = {}
    malformed: list[str] = []
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            malformed.append(pair)
            continue
        merged.setdefault(name, []).append(value)
    return [f"{k}={REPEAT_SEPARATOR.join(v)}" for k, v in merged.items()] + malformed


def add_spider_arguments_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``-a NAME=VALUE`` (repeatable) for a command that names a spider's crawl by its
    arguments (``scrapy seed``, ``scrapy ingest``); read back with ``spider_arguments``."""
    parser.add_argument(
        "-a", dest="spargs", action="append", default=[], metavar="NAME=VALUE", help=help_text
    )


def spider_arguments(given: list[str]) -> dict[str, str]:
    """The ``-a`` options as a dict (repeated names joined); ``UsageError`` for a malformed one."""
    from scrapy.exceptions import UsageError
    from scrapy.utils.conf import arglist_to_dict

    try:
        return arglist_to_dict(join_repeated(given))
    except ValueError:
        raise UsageError("invalid -a value, use -a NAME=VALUE", print_help=False) from None


def comparable(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as stored (JSON), without the per-run ones Scrapyd adds: what makes two runs
    runs of the same crawl (the checks across runs, the report's previous runs)."""
    values = json.loads(to_json(arguments))
    return {k: v for k, v in values.items() if k not in SCRAPYD_ARGUMENTS}
