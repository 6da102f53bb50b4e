"""The one secret policy: which values are secrets, and how to mask them in text and records.

A setting or spider argument is secret when its name (any case) contains a marker of
``SECRET_MARKERS`` (``PASS`` for PASSWORD/PASSWD, ``SECRET``, ``TOKEN``, ``KEY``, ``CREDENTIAL``,
``AUTH``, ``COOKIE``, ``SESSION``, ``PRIVATE``, ``DSN``, ``PROXY``, ``WEBHOOK``), also as a key
inside a dict setting (``DEFAULT_REQUEST_HEADERS["Authorization"]``), unless it ends with a suffix
of ``NOT_SECRET_SUFFIXES`` (switches and names such as ``COOKIES_ENABLED``, ``HTTPAUTH_DOMAIN``,
``SAFETY_ALLOW_PRIVATE_TARGETS``). ``KEYWORD`` is no ``KEY``: search terms are not credentials.
Credentials in URLs (``redis://user:pw@host``) are secrets wherever they appear, in settings,
arguments or proxy environment variables.

Every place that prints or stores settings or arguments uses this module: the log filter
(``crawler.safety.logfilter``) masks the values in text with a ``Redactor``; the run recorder
stores ``Redactor.mask``-ed settings, arguments, stats and failure; ``scrapy runs ID`` shows
rows through ``masked`` again (rows recorded before this policy covered them, or by hand).
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

SECRET_MARKERS = (
    *("PASS", "SECRET", "TOKEN", "KEY", "CREDENTIAL", "AUTH", "COOKIE", "SESSION", "PRIVATE"),
    *("DSN", "PROXY", "WEBHOOK"),  # a webhook URL carries its token (ALERT_WEBHOOK)
)
# Secret-sounding names whose values are not secrets: masking them would garble every log line.
NOT_SECRET_SUFFIXES = ("_DOMAIN", "_ENCODING", "_ENABLED", "_DEBUG", "_MODE", "_PRIVATE_TARGETS")
NOT_SECRET_WORDS = re.compile("KEYWORD")  # search terms: `KEY` inside them is no key
MASK = "***"
MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words
URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s\"']+@")


def is_secret_name(name: str) -> bool:
    upper = NOT_SECRET_WORDS.sub("", name.upper())
    return any(m in upper for m in SECRET_MARKERS) and not upper.endswith(NOT_SECRET_SUFFIXES)


def mask_url_credentials(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL replaced by ``***@``."""
    return URL_CREDENTIALS.sub(f"{MASK}@", text)


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


def arguments_secrets(arguments: Mapping[str, Any]) -> set[str]:
    """Secret values of spider arguments (``-a api_key=…``), as for settings."""
    found = set(secret_values("", dict(arguments)))
    return {value for value in found if len(value) >= MIN_SECRET_LENGTH}


class Redactor:
    """Replaces known secret values and URL credentials with ``***``, in text and in records."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return mask_url_credentials(text)

    def mask(self, name: str, value: Any) -> Any:
        """``value`` of the setting or argument ``name``, secrets replaced by ``***`` (nested too).

        A secret name hides its whole value (a switch, ``True``/``False``/``None``, stays
        readable); any other text is redacted like a log line.
        """
        if is_secret_name(name) and value is not None and not isinstance(value, bool):
            return MASK
        if isinstance(value, BaseSettings):
            value = value.copy_to_dict()
        if isinstance(value, Mapping):
            return {str(k): self.mask(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.mask("", v) for v in value]
        if isinstance(value, str):
            return self(value)
        return value

    def redact_values(self, value: Any) -> Any:
        """``value`` with its text redacted, keys kept (for stats: ``safety/blocked_private``)."""
        if isinstance(value, Mapping):
            return {k: self.redact_values(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_values(v) for v in value]
        return self(value) if isinstance(value, str) else value


def masked(name: str, value: Any) -> Any:
    """``value`` of ``name`` masked by name and URL credentials alone (no known secret values)."""
    return _BY_NAME.mask(name, value)


_BY_NAME = Redactor(())
