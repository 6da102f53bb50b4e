"""The target policy: which IP addresses are public, read the way ``inet_aton`` and browsers do.

``parse_ip`` reads a URL host as an IP address in any spelling a resolver or browser accepts:
``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.0.0.1.``, ``[::ffff:127.0.0.1]``,
percent-encoded or full-width digits. ``non_public_reason`` says why an address is not on the
public internet (loopback, private, link-local, CGNAT, multicast, reserved, …, also when an
IPv6 address embeds such an IPv4 one). ``disguise`` says when a host spells an IP address in a
way other than the plain one, which seeds must not do.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from urllib.parse import unquote, urlsplit

from scrapy.exceptions import IgnoreRequest

from crawler.seeds import InvalidURL, validate_url

IPAddress = IPv4Address | IPv6Address

_IPV4_RANGES: tuple[tuple[IPv4Network, str], ...] = tuple(
    (IPv4Network(net), reason)
    for net, reason in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)
_IPV6_RANGES: tuple[tuple[IPv6Network, str], ...] = tuple(
    (IPv6Network(net), reason)
    for net, reason in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001:2::/48", "benchmarking"),
        ("2001:10::/28", "ORCHID"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
_GLOBAL_UNICAST = IPv6Network("2000::/3")
_IPV4_COMPATIBLE = IPv6Network("::/96")
_IPV4_TRANSLATED = IPv6Network("::ffff:0:0:0/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_DIGITS = {10: frozenset("0123456789"), 8: frozenset("01234567"), 16: frozenset("0123456789abcdef")}
# Dots that IDNA treats as label separators, as browsers do.
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


class BlockedTarget(IgnoreRequest):
    """A request refused before connecting; ``kind`` is ``"private"`` or ``"scheme"``."""

    def __init__(self, message: str, kind: str = "private") -> None:
        super().__init__(message)
        self.kind = kind


def normalize_host(host: str) -> str:
    """``host`` as a resolver would see it: decoded, NFKC, lower case, without brackets."""
    text = unicodedata.normalize("NFKC", unquote(host)).translate(_DOTS).strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text


@lru_cache(maxsize=4096)  # hosts repeat: a crawl asks about the same few
def parse_ip(host: str) -> IPAddress | None:
    """The IP address ``host`` spells in any form resolvers accept, or None for a host name."""
    text = normalize_host(host)
    if ":" in text:
        try:
            return IPv6Address(text.split("%", 1)[0])  # drop a zone id (fe80::1%eth0)
        except ValueError:
            return None
    return parse_ipv4(text)


def parse_ipv4(text: str) -> IPv4Address | None:
    """IPv4 as ``inet_aton`` and the WHATWG URL standard read it: 1-4 parts, hex, octal."""
    parts = text.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # one trailing dot, as in a fully qualified name
    if not 1 <= len(parts) <= 4:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    address = values[-1]
    for index, byte in enumerate(values[:-1]):
        address += byte << (8 * (3 - index))
    return IPv4Address(address)


def _ipv4_number(part: str) -> int | None:
    base = 10
    if part[:2] in ("0x", "0X"):
        part, base = part[2:], 16
        if not part:
            return 0
    elif len(part) > 1 and part.startswith("0"):
        part, base = part[1:], 8
    if not part or not set(part) <= _DIGITS[base]:
        return None
    return int(part, base)


def embedded_ipv4(ip: IPv6Address) -> list[IPv4Address]:
    """IPv4 addresses an IPv6 address carries: mapped, compatible, SIIT, NAT64, 6to4, Teredo."""
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    low32 = IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _IPV4_TRANSLATED or ip in _NAT64:
        return [low32]
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return [low32]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [client, server]
    return []


@lru_cache(maxsize=4096)
def non_public_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public internet address (``"loopback"``, …), or None if it is."""
    if isinstance(ip, IPv4Address):
        return next((reason for net, reason in _IPV4_RANGES if ip in net), None)
    inner = embedded_ipv4(ip)
    for v4 in inner:
        if reason := non_public_reason(v4):
            return f"{reason}: {v4} inside an IPv6 address"
    if ip.ipv4_mapped is not None or ip in _IPV4_TRANSLATED or ip in _NAT64:
        return None  # reaches the public IPv4 address it carries
    if reason := next((reason for net, reason in _IPV6_RANGES if ip in net), None):
        return reason
    if ip in _IPV4_COMPATIBLE:
        return "reserved (deprecated IPv4-compatible address)"
    return None if ip in _GLOBAL_UNICAST else "reserved"


@lru_cache(maxsize=4096)
def disguise(host: str) -> IPv4Address | None:
    """The IPv4 address ``host`` hides, or None when it hides none.

    Plain dotted quads (``127.0.0.1``), host names and IPv6 addresses without a non-public IPv4
    address inside hide nothing; ``127.1``, ``2130706433``, ``0x7f000001``, ``0177.0.0.1`` and
    ``[::ffff:127.0.0.1]`` hide ``127.0.0.1``.
    """
    ip = parse_ip(host)
    if isinstance(ip, IPv4Address):
        return None if host.lower() == str(ip) else ip
    if isinstance(ip, IPv6Address):
        return next((v4 for v4 in embedded_ipv4(ip) if non_public_reason(v4)), None)
    return None


@lru_cache(maxsize=4096)
def host_key(host: str) -> str:
    """The form of ``host`` used to compare named targets: canonical IP, or name sans final dot."""
    ip = parse_ip(host)
    return str(ip) if ip is not None else normalize_host(host).rstrip(".")


def seed_url(text: str) -> str:
    """A seed URL (``validate_url``) whose host is not an IP address in disguise."""
    url = validate_url(text)
    host = urlsplit(url).hostname or ""
    if (hidden := disguise(host)) is not None:
        raise InvalidURL(f"host {host!r} is {hidden} in disguise: write {hidden}")
    return url
