"""Which values are secrets, and how to mask them in text.

A setting is secret when its name contains a marker (``PASSWORD``, ``TOKEN``, ``SECRET``, ``KEY``,
``AUTH``, ``PROXY``, ``COOKIE``, …), also as a key inside a dict setting
(``DEFAULT_REQUEST_HEADERS["Authorization"]``). Credentials in URLs (``http://user:pw@host``)
are secrets wherever they appear, in settings or in proxy environment variables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote
from urllib.request import getproxies

from scrapy.settings import BaseSettings
from w3lib.http import basic_auth_header

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

SECRET_MARKERS = ("PASS", "SECRET", "TOKEN", "KEY", "AUTH", "CREDENTIAL", "PROXY", "COOKIE")
# Secret-sounding names whose values are not secrets: masking them would garble every log line.
NOT_SECRET_SUFFIXES = ("_DOMAIN", "_ENCODING", "_ENABLED", "_DEBUG", "_MODE")
MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words
URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s\"']+@")


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(m in upper for m in SECRET_MARKERS) and not upper.endswith(NOT_SECRET_SUFFIXES)


def url_secrets(text: str) -> Iterator[str]:
    """``user:password``, the password and its Basic header value, of every URL in ``text``."""
    for match in URL_CREDENTIALS.finditer(text):
        credentials = match.group()[:-1]
        user, _, password = (unquote(part) for part in credentials.partition(":"))
        yield credentials
        if password:
            yield password
            yield basic_auth_header(user, password).decode("latin-1").split(" ", 1)[1]


def secret_values(name: str, value: Any) -> Iterator[str]:
    """Secret strings in the setting ``name`` = ``value`` (nested dicts and lists too)."""
    if isinstance(value, BaseSettings):
        value = value.copy_to_dict()
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from secret_values(str(key), inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from secret_values(name, inner)
    elif isinstance(value, bytes | str):
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        if is_secret_name(name) and len(text) >= MIN_SECRET_LENGTH:
            yield text
        yield from url_secrets(text)


def settings_secrets(settings: BaseSettings) -> set[str]:
    """Secret values of every setting set above Scrapy's defaults, and of proxy variables."""
    found: set[str] = set()
    for name in settings:
        if (settings.getpriority(name) or 0) > 0:
            found.update(secret_values(name, settings[name]))
    for proxy in getproxies().values():
        found.update(url_secrets(proxy))
    return {value for value in found if len(value) >= MIN_SECRET_LENGTH}


class Redactor:
    """Replaces known secret values and URL credentials in text with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return URL_CREDENTIALS.sub(f"{MASK}@", text)
