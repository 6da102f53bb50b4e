"""``JobState``: what the scheduler remembers about a job between runs and invocations.

``<log dir>/<job>/state.json``: when ``--once`` last looked at the job, when its last run started
and ended, its exit status, and how many overlapping runs were refused. Read-modify-write under
an ``flock`` of ``state.lock``; written to a temporary file and renamed into place.
"""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

_TIMES = ("last_check", "last_start", "last_end")


@dataclass(frozen=True)
class State:
    last_check: datetime | None = None  # the last `--once` that looked at the job
    last_start: datetime | None = None
    last_end: datetime | None = None
    last_exit: int | None = None
    refused: int = 0  # runs not started because the previous one was still running

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        for name in _TIMES:
            values[name] = values[name].isoformat() if values[name] else None
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> State:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        for name in _TIMES:
            if known.get(name):
                known[name] = datetime.fromisoformat(known[name])
        return cls(**known)


class JobState:
    def __init__(self, directory: Path) -> None:
        self.path = directory / "state.json"
        self.lock_path = directory / "state.lock"

    def read(self) -> State:
        try:
            return State.from_json(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return State()
        except (OSError, ValueError, TypeError) as exc:
            raise OSError(f"{self.path}: unreadable scheduler state: {exc}") from None

    def update(self, **changes: Any) -> State:
        return self._apply(lambda state: replace(state, **changes))

    def add_refusal(self) -> State:
        return self._apply(lambda state: replace(state, refused=state.refused + 1))

    def _apply(self, change: Callable[[State], State]) -> State:
        with self._locked():
            state = change(self.read())
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(state.as_json(), indent=1), encoding="utf-8")
            temporary.replace(self.path)
            return state

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self.lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # short: held only for one read-modify-write
            yield
