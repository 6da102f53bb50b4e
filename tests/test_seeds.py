from __future__ import annotations

from pathlib import Path

import pytest

from crawler.seeds import (
    BadSeed,
    InvalidURL,
    Seed,
    Shard,
    read_seed_file,
    readable_file,
    shard,
    validate_url,
)  # fmt: skip


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://example.test/a b", None),
        ("https://example.test/caf\u00e9", "https://example.test/caf%C3%A9"),
        ("  http://example.test/  ", "http://example.test/"),
        ("HTTP://Example.test/x", "http://example.test/x"),
        ("http://127.0.0.1:8080/p?q=1", "http://127.0.0.1:8080/p?q=1"),
    ],
)
def test_validate_url_normalises(url: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidURL, match="whitespace"):
            validate_url(url)
    else:
        assert validate_url(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("example.test/page", "no scheme"),
        ("ftp://example.test/", "scheme 'ftp' not allowed"),
        ("data:text/html,hi", "scheme 'data' not allowed"),
        ("file:///etc/passwd", "scheme 'file' not allowed"),
        ("http:///path", "no host"),
        ("http://exa mple.test/", "whitespace"),
        ("http://example.test:99999/", "Port out of range"),
        ("http://-bad-.test/", "invalid host"),
        ("http://example.test/" + "a" * 3000, "longer than 2083"),
    ],
)
def test_validate_url_rejects_with_reason(url: str, reason: str) -> None:
    with pytest.raises(InvalidURL, match=reason):
        validate_url(url)


def test_text_file_with_bad_lines_reports_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_text(
        "# my list\nhttp://a.test/\n\nnot a url\nftp://b.test/\nhttps://c.test/x\n",
        encoding="utf-8",
    )
    seeds = list(read_seed_file(str(path)))
    assert seeds == [
        Seed("http://a.test/", f"{path}:2"),
        BadSeed("not a url", f"{path}:4", "contains whitespace or control characters"),
        BadSeed("ftp://b.test/", f"{path}:5", "scheme 'ftp' not allowed (only http and https)"),
        Seed("https://c.test/x", f"{path}:6"),
    ]


def test_csv_file_reads_the_url_column(tmp_path: Path) -> None:
    path = tmp_path / "urls.csv"
    path.write_text(
        'name,URL,notes\nA,http://a.test/,"x, y"\nB,,empty\nC,http://c.test/?a=1,\n',
        encoding="utf-8-sig",
    )
    seeds = list(read_seed_file(str(path)))
    assert seeds == [
        Seed("http://a.test/", f"{path}:2"),
        Seed("http://c.test/?a=1", f"{path}:4"),
    ]


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="No such file"):
        readable_file(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="Is a directory"):
        readable_file(str(tmp_path))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2", "must be K/N"),
        ("a/b", "must be K/N"),
        ("-1/4", "must be K/N"),
        ("4/4", "K must be below N"),
        ("0/0", "N must be between 1"),
        ("0/10001", "N must be between 1"),
    ],
)
def test_shard_argument_is_checked(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        shard(text)


def test_shards_split_the_urls_exactly_and_evenly() -> None:
    urls = [f"http://example.test/p/{n}" for n in range(10_000)]
    parts = [shard(f"{k}/4") for k in range(4)]
    assert parts[3] == Shard(3, 4) and str(parts[3]) == "3/4"
    owners = [[part for part in parts if part.takes(url)] for url in urls]
    assert all(len(found) == 1 for found in owners)  # every URL in exactly one part
    sizes = [sum(1 for found in owners if found[0] is part) for part in parts]
    assert min(sizes) > 2_000 and max(sizes) < 3_000, sizes  # and the parts are balanced
    assert all(shard("0/1").takes(url) for url in urls)
