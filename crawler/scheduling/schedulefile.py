"""The schedule file (TOML): ``[defaults]`` and one ``[jobs.NAME]`` table per job.

Every problem is a ``ScheduleError`` whose message is one line naming the file, the line when it
can be found, the job and the key.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from tzlocal import get_localzone

from crawler.durations import EXAMPLES, parse_duration
from crawler.scheduling.job import Job

if TYPE_CHECKING:
    from datetime import timedelta, tzinfo
    from pathlib import Path

# check(spider, arguments): LookupError for an unknown spider, ValueError for bad arguments.
SpiderCheck = Callable[[str, dict[str, list[str]]], None]

JOB_KEYS = frozenset(
    {"spider", "cron", "every", "arguments", "settings", "timezone", "misfire_grace", "max_runtime"}
)
DEFAULT_KEYS = frozenset({"settings", "timezone", "misfire_grace", "max_runtime"})
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")


class ScheduleError(ValueError):
    """A schedule file that cannot be used; the message is one line."""


class _Problem(ValueError):
    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key


def load_schedule(path: Path, check: SpiderCheck | None = None) -> list[Job]:
    """The jobs of the schedule file at ``path``, checked; ``ScheduleError`` when invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ScheduleError(f"{path}: cannot read the schedule file: {reason}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _TOML_POSITION.search(message)
        place = f"{path}:{where[1]}:{where[2]}" if where else str(path)
        detail = _TOML_POSITION.sub("", message)
        raise ScheduleError(f"{place}: invalid TOML: {detail[:1].lower()}{detail[1:]}") from None
    return _Reader(path, text, check).jobs(data)


class _Reader:
    def __init__(self, path: Path, text: str, check: SpiderCheck | None) -> None:
        self.path, self.lines, self.check = path, text.splitlines(), check

    def jobs(self, data: dict[str, Any]) -> list[Job]:
        unknown = sorted(set(data) - {"defaults", "jobs"})
        if unknown:
            raise self._error(
                None, unknown[0], "unknown top-level key (use [defaults], [jobs.NAME])"
            )
        defaults = data.get("defaults", {})
        try:
            if not isinstance(defaults, dict):
                raise _Problem(None, "must be a table")
            _no_unknown(defaults, DEFAULT_KEYS)
            _zone(defaults.get("timezone"))
            _settings(defaults.get("settings", {}))
            for key in ("misfire_grace", "max_runtime"):
                _duration(key, defaults.get(key))
        except _Problem as exc:
            raise self._error("defaults", exc.key, str(exc)) from None
        jobs = data.get("jobs")
        if not isinstance(jobs, dict) or not jobs:
            raise ScheduleError(f"{self.path}: no jobs: add a [jobs.NAME] table per job")
        return [self._job(name, table, defaults) for name, table in jobs.items()]

    def _job(self, name: str, table: Any, defaults: dict[str, Any]) -> Job:
        try:
            if not _JOB_NAME.fullmatch(name):
                raise _Problem(None, "job names may use letters, digits, '_', '.', '-'")
            if not isinstance(table, dict):
                raise _Problem(None, "must be a table: [jobs.NAME] with spider = …")
            _no_unknown(table, JOB_KEYS)
            return self._build(name, {**defaults, **table}, defaults.get("settings", {}))
        except _Problem as exc:
            raise self._error(f"jobs.{name}", exc.key, str(exc)) from None

    def _build(self, name: str, table: dict[str, Any], default_settings: Any) -> Job:
        spider = table.get("spider")
        if not isinstance(spider, str) or not spider:
            raise _Problem("spider", 'missing: spider = "NAME" (see `scrapy list`)')
        cron, every = table.get("cron"), table.get("every")
        if (cron is None) == (every is None):
            raise _Problem("cron", 'give either cron = "*/15 * * * *" or every = "15m"')
        zone = _zone(table.get("timezone"))
        if cron is not None:
            _cron(cron, zone)
        arguments = _arguments(table.get("arguments", {}))
        if self.check is not None:
            try:
                self.check(spider, arguments)
            except LookupError as exc:
                raise _Problem("spider", str(exc.args[0] if exc.args else exc)) from None
            except ValueError as exc:
                raise _Problem("arguments", str(exc)) from None
        return Job(
            name=name,
            spider=spider,
            timezone=zone,
            cron=cron,
            every=_duration("every", every),
            arguments=arguments,
            settings={**_settings(default_settings), **_settings(table.get("settings", {}))},
            misfire_grace=_duration("misfire_grace", table.get("misfire_grace")),
            max_runtime=_duration("max_runtime", table.get("max_runtime")),
        )

    def _error(self, table: str | None, key: str | None, message: str) -> ScheduleError:
        line = self._line(table, key)
        where = f"{self.path}:{line}" if line else str(self.path)
        job = f" job {table[5:]!r}:" if table and table.startswith("jobs.") else ""
        section = f" [{table}]:" if table and not job else ""
        return ScheduleError(f"{where}:{job}{section}{f' {key}:' if key else ''} {message}")

    def _line(self, table: str | None, key: str | None) -> int | None:
        """The line of ``key`` in ``[table]`` (or of the header); None when not found."""
        start = 0
        if table is not None:
            parts = [re.escape(p) for p in table.split(".", 1)]
            header = re.compile(r"\s*\[\s*" + r'\s*\.\s*"?'.join(parts) + r'"?\s*\]')
            found = [i for i, text in enumerate(self.lines) if header.match(text)]
            if not found:
                return None
            start = found[0]
        if key is not None:
            key_line = re.compile(rf"\s*{re.escape(key)}\s*=")
            for i in range(start + (table is not None), len(self.lines)):
                if table is not None and self.lines[i].lstrip().startswith("["):
                    break
                if key_line.match(self.lines[i]):
                    return i + 1
        return start + 1 if table is not None else None


def _no_unknown(table: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _Problem(unknown[0], f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _zone(value: Any) -> tzinfo:
    if value is None:
        return get_localzone()
    try:
        return ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise _Problem("timezone", f"unknown time zone {value!r}") from None


def _cron(value: Any, zone: tzinfo) -> None:
    if not isinstance(value, str):
        raise _Problem("cron", 'must be a string such as "*/15 * * * *"')
    try:
        CronTrigger.from_crontab(value, timezone=zone)
    except ValueError as exc:
        raise _Problem("cron", f"invalid cron expression {value!r}: {exc}") from None


def _duration(key: str, value: Any) -> timedelta | None:
    if value is None:
        return None
    if not isinstance(value, str | int | float):
        raise _Problem(key, f"must be a duration: {EXAMPLES}")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _Problem(key, f"invalid duration {value!r}: {exc}") from None


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError("values must be strings, numbers or booleans")


def _arguments(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise _Problem("arguments", "must be a table: arguments = { name = value }")
    arguments: dict[str, list[str]] = {}
    for name, raw in value.items():
        if not _NAME.fullmatch(name):
            raise _Problem("arguments", f"invalid argument name {name!r}")
        try:
            arguments[name] = [_scalar(v) for v in (raw if isinstance(raw, list) else [raw])]
        except ValueError as exc:
            raise _Problem("arguments", f"{name}: {exc} (or a list of them)") from None
    return arguments


def _settings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Problem("settings", "must be a table: settings = { NAME = value }")
    settings: dict[str, str] = {}
    for name, raw in value.items():
        if not _NAME.fullmatch(name):
            raise _Problem("settings", f"invalid setting name {name!r}")
        if isinstance(raw, dict):
            settings[name] = json.dumps(raw)  # Scrapy reads dict settings given as JSON
            continue
        try:
            settings[name] = (
                ",".join(_scalar(v) for v in raw) if isinstance(raw, list) else _scalar(raw)
            )
        except ValueError as exc:
            raise _Problem("settings", f"{name}: {exc}") from None
    return settings
