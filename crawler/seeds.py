"""Seed URLs: validation, and lazy reading of URL files (plain text or CSV with a url column).

Files are read line by line, so a list of millions of URLs is never held in memory. Every bad
line is reported with its line number and reason, then skipped.
"""

from __future__ import annotations

import csv
import functools
import io
import ipaddress
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from w3lib.url import safe_url_string

if TYPE_CHECKING:
    from collections.abc import Iterator

MAX_URL_LENGTH = 2083
# Whitespace (ASCII and Unicode), C0 controls and DEL: never part of a URL as typed in a file.
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
ALLOWED_SCHEMES = ("http", "https")


class InvalidURL(ValueError):
    pass


def validate_url(text: str) -> str:
    """A normalised absolute http(s) URL, or ``InvalidURL`` saying what is wrong with it."""
    url = text.strip()
    if not url:
        raise InvalidURL("empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidURL(f"longer than {MAX_URL_LENGTH} characters")
    if _BAD_CHARS.search(url):
        raise InvalidURL("contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidURL(str(exc)) from None
    if not parts.scheme:
        raise InvalidURL("no scheme (expected http:// or https://)")
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise InvalidURL(f"scheme {parts.scheme!r} not allowed (only http and https)")
    host = parts.hostname
    if not host:
        raise InvalidURL("no host")
    if port == 0:
        raise InvalidURL("port 0")
    if not _valid_host(host):
        raise InvalidURL(f"invalid host {host!r}")
    return safe_url_string(url)


@functools.lru_cache(maxsize=65_536)  # a long seed list names the same hosts again and again
def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.rstrip(".").split(".")
    return all(
        0 < len(label) <= 63
        and all(c.isalnum() or c in "-_" for c in label)
        and not label.startswith("-")
        for label in labels
    )


@dataclass(frozen=True)
class Seed:
    url: str
    source: str  # "file.txt:12" or "argument"


@dataclass(frozen=True)
class BadSeed:
    text: str
    source: str
    reason: str


MAX_SHARDS = 10_000


@dataclass(frozen=True)
class Shard:
    """Part ``index`` of ``count`` of a seed list: ``-a shard=0/4`` … ``-a shard=3/4``.

    A URL belongs to the part its CRC-32 says, so N processes given the same file and the parts
    0/N … N-1/N fetch every URL exactly once between them, repeats of a URL fall in one part
    (each process still drops them), and no process has to read another's share into memory.
    """

    index: int
    count: int

    def takes(self, url: str) -> bool:
        return zlib.crc32(url.encode("utf-8", "surrogatepass")) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard(text: str) -> Shard:
    """``K/N`` with 0 <= K < N: this process's part of the seeds."""
    index, slash, count = text.strip().partition("/")
    if not slash or not index.isdigit() or not count.isdigit():
        raise ValueError("must be K/N, e.g. 0/4 (part K of N, counting from 0)")
    part = Shard(int(index), int(count))
    if not 1 <= part.count <= MAX_SHARDS:
        raise ValueError(f"N must be between 1 and {MAX_SHARDS:,}")
    if part.index >= part.count:
        raise ValueError(f"K must be below N (parts are 0 to {part.count - 1})")
    return part


def readable_file(path: str) -> str:
    """``path`` if it names a file that can be read, else ``ValueError`` saying why."""
    file = Path(path).expanduser()
    try:
        with file.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ValueError(f"cannot read file: {exc.strerror or exc}") from None
    return str(file)


def _file_lines(file: Path) -> Iterator[tuple[int, str]]:
    with file.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        first = handle.readline()
        header = _url_column(first) if file.suffix.lower() == ".csv" or "," in first else None
        if header is None:
            if first:
                yield 1, first
            for number, line in enumerate(handle, start=2):
                yield number, line
            return
        reader = csv.reader(handle)
        for row in reader:
            # reader.line_num counts physical lines after the header line
            number = reader.line_num + 1
            yield number, row[header] if header < len(row) else ""


def _url_column(first_line: str) -> int | None:
    try:
        header = next(csv.reader(io.StringIO(first_line)))
    except (csv.Error, StopIteration):
        return None
    names = [h.strip().lower() for h in header]
    return names.index("url") if "url" in names else None


def read_seed_file(path: str) -> Iterator[Seed | BadSeed]:
    """Seeds of a text file (one URL per line, ``#`` comments) or of a CSV file's url column."""
    for number, text in seed_lines(path):
        yield check_seed(text, f"{Path(path)}:{number}")


def seed_lines(path: str) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every line of a seed file that holds a URL (not blank, not a
    comment), unchecked: ``check_seed`` checks it (``scrapy seed`` does so in other processes)."""
    for number, line in _file_lines(Path(path)):
        text = line.strip()
        if text and not text.startswith("#"):
            yield number, text


def check_seed(text: str, source: str) -> Seed | BadSeed:
    try:
        return Seed(validate_url(text), source)
    except InvalidURL as exc:
        return BadSeed(text, source, str(exc))
