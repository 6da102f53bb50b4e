"""The demo shop: ``serve`` it until Ctrl-C (or SIGTERM), or ``crawl`` it (``make crawl``)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from crawler.demo.crawl import run_demo_crawl
from crawler.demo.pages import BREAKABLE_FIELDS
from crawler.demo.server import product_ids, serve_forever

if TYPE_CHECKING:
    from collections.abc import Sequence


def add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="serve the demo shop until Ctrl-C")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port to bind (default 0: a free one)")
    serve.add_argument(
        "--slow-seconds", type=float, default=1.0, help="delay of /slow and the slow product"
    )
    serve.add_argument(
        "--change",
        type=product_ids,
        default=[],
        metavar="IDS",
        help="serve these products changed (e.g. 5,17,99): new price, description, ETag",
    )
    serve.add_argument(
        "--break-field",
        action="append",
        default=[],
        choices=sorted(BREAKABLE_FIELDS),
        metavar="FIELD",
        help="serve this product field with changed markup, so the products spider finds"
        f" nothing for it (repeatable; one of {', '.join(sorted(BREAKABLE_FIELDS))})",
    )
    serve.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    serve_forever(args.host, args.port, args.slow_seconds, args.change, args.break_field)
    return 0


def add_crawl_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    crawl = commands.add_parser(
        "crawl",
        help="serve the demo shop and crawl it (what `make crawl` runs)",
        description="Options not listed here (-a, -s, …) are passed to `scrapy crawl`.",
    )
    crawl.add_argument(
        "--spider", default="products", choices=("products", "site", "pages"), help="spider"
    )
    crawl.set_defaults(run=run_crawl, passthrough=True)


def run_crawl(args: argparse.Namespace) -> int:
    return run_demo_crawl(args.spider, args.extra)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.demo", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve_command(commands)
    add_crawl_command(commands)
    # A subcommand that hands unknown options on (to ``scrapy crawl``) sets passthrough=True.
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
