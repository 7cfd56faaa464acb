"""Reader for dendrolab HDF5 run files, including files left behind by a killed writer.

It trusts only rows the journal vouches for and never writes to the file. Layout: docs/runfile.md.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from dendrolab.errors import RunFileError
from protocols.runfile_layout import (
    RUN_CODES,
    RUN_STATUSES,
    STEP_DONE,
    STEP_STATUSES,
    group_name,
    loop_vars_of,
    open_checked,
    pick_record,
    read_slot,
    step_entry,
    step_groups,
)

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class InstrumentSnapshot:
    """Identity and settings before/after; ``settings_after`` is None if never (fully) written."""

    name: str
    identity: dict[str, Any]
    settings_before: dict[str, Any]
    settings_after: dict[str, Any] | None


@dataclass(frozen=True)
class StepInfo:
    """A step's declaration and journal state; ``rows`` counts only persisted rows.

    ``loop_vars`` maps the plan's loop variables to plain int, float, bool or str values
    ({} when the step had none or the file predates them).
    """

    index: int
    name: str
    status: str
    rows: int
    n_points: int
    blocks: int
    attempts: int
    started: str | None
    updated: str | None
    instrument: str
    params: dict[str, Any]
    units: dict[str, str]
    dtypes: dict[str, np.dtype]
    loop_vars: dict[str, int | float | str | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class StepData:
    """A step's persisted rows as numpy arrays, with the units of each dataset."""

    info: StepInfo
    arrays: dict[str, np.ndarray]
    units: dict[str, str]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace").rstrip("\0") if isinstance(value, bytes) else str(value)


def _iso(ns: int) -> str | None:
    if ns <= 0:
        return None
    moment = datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _json_or_none(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None  # an unreadable slot
    try:
        text = _text(raw.tobytes() if isinstance(raw, np.ndarray) else raw)
        return json.loads(text) if text else None
    except (ValueError, UnicodeDecodeError):
        return None  # torn by a kill while it was being written


def _attr_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, bytes):
        return len(value.rstrip(b"\0"))
    return int(np.asarray(value).nbytes)


def size_report(path: str | os.PathLike[str]) -> dict[str, int]:
    """Bytes of a run file: ``file`` on disk, ``payload`` (what was recorded: attribute values,
    snapshot and event JSON, step parameters and loop values, step data as stored) and
    ``overhead`` = file - payload, the fixed cost of the layout (docs/runfile.md, File size)."""
    path = Path(path)
    payload = 0
    with open_checked(path, "r") as h5:
        payload += sum(_attr_bytes(v) for v in h5.attrs.values())
        for g in h5["instruments"].values():
            payload += _attr_bytes(g.attrs["identity"])
            payload += len(bytes(g["settings_before"][0]).rstrip(b"\0"))
            payload += len((read_slot(g["settings_after"], 0) or b"").rstrip(b"\0"))
        for g in h5["steps"].values():
            payload += _attr_bytes(g.attrs["params"])
            payload += sum(_attr_bytes(v) for k, v in g.attrs.items() if k.startswith("loop."))
            payload += sum(ds.id.get_storage_size() for ds in g.values())
        events = h5["journal"].get("events")
        if events is not None:
            payload += sum(len((read_slot(events, k) or b"").rstrip(b"\0"))
                           for k in range(events.shape[0]))
    size = path.stat().st_size
    return {"file": size, "payload": payload, "overhead": size - payload}


class RunReader:
    """Read-only view of a run file: attributes, instrument snapshots, steps and their arrays.

    ``live=True`` opens without HDF5 file locking, to look at a file a writer still holds.
    """

    def __init__(self, path: str | os.PathLike[str], *, live: bool = False) -> None:
        self.path = Path(path)
        self._h5 = open_checked(self.path, "r", **({"locking": False} if live else {}))
        try:
            self._load()
        except (KeyError, ValueError, OSError) as exc:
            self._h5.close()
            raise RunFileError(f"{self.path} does not follow the run-file layout: {exc}") from exc
        except BaseException:
            self._h5.close()
            raise

    def _load(self) -> None:
        h5 = self._h5
        json_keys = set(filter(None, _text(h5.attrs.get("json_keys", "")).split(",")))
        attrs: dict[str, Any] = {}
        for key, value in h5.attrs.items():
            if isinstance(value, (bytes, np.bytes_)):
                value = _text(value)
            elif isinstance(value, np.generic):
                value = value.item()
            if key in json_keys:
                value = json.loads(value)
            attrs[key] = value
        self.attrs = attrs
        self.layout_version = int(attrs["dendrolab_layout"])
        self.uuid = str(attrs.get("uuid", ""))
        status = attrs.get("status", "")
        if status not in RUN_STATUSES:  # only a torn in-place update could do this: ask the journal
            rec = pick_record(h5["journal/run"][()])
            codes = {v: k for k, v in RUN_CODES.items()}
            status = codes.get(int(rec[1]), "running") if rec is not None else "running"
        self.status: str = status
        self.instruments: dict[str, InstrumentSnapshot] = {}
        for name, g in h5["instruments"].items():
            self.instruments[name] = InstrumentSnapshot(
                name, json.loads(g.attrs["identity"]),
                _json_or_none(g["settings_before"][0]) or {},
                _json_or_none(read_slot(g["settings_after"], 0)))
        self._gnames = step_groups(h5)
        journal = h5["journal/steps"][()]
        if journal.shape[0] != len(self._gnames):
            raise RunFileError(f"{self.path}: journal has {journal.shape[0]} steps, the file "
                               f"{len(self._gnames)}")
        self._entries = [step_entry(slots) for slots in journal]
        self._infos: dict[int, StepInfo] = {}

    @property
    def steps(self) -> list[StepInfo]:
        """Every step in plan order (read on first use, so opening a long run stays quick)."""
        return [self._info(i) for i in range(len(self._gnames))]

    def _info(self, i: int) -> StepInfo:
        if i in self._infos:
            return self._infos[i]
        g, e = self._h5["steps"][self._gnames[i]], self._entries[i]
        if int(g.attrs["index"]) != i:
            raise RunFileError(f"{self.path}: step group {self._gnames[i]!r} is out of order")
        names = _text(g.attrs["datasets"]).split(",")
        info = StepInfo(
            index=i, name=_text(g.attrs["name"]), status=STEP_STATUSES[e.status], rows=e.rows,
            n_points=int(g.attrs["n_points"]), blocks=e.blocks, attempts=e.attempts,
            started=_iso(e.started_ns), updated=_iso(e.updated_ns),
            instrument=_text(g.attrs["instrument"]), params=json.loads(g.attrs["params"]),
            units={n: _text(g[n].attrs["units"]) for n in names},
            dtypes={n: g[n].dtype for n in names}, loop_vars=loop_vars_of(g))
        self._infos[i] = info
        return info

    @property
    def next_step(self) -> int | None:
        """Index of the first step that is not done (where a resume would continue)."""
        return next((i for i, e in enumerate(self._entries) if e.status != STEP_DONE), None)

    def _index(self, key: int | str) -> int:
        if isinstance(key, str):
            for i, gname in enumerate(self._gnames):
                if gname == group_name(i, key) and self._info(i).name == key:
                    return i
            raise RunFileError(f"{self.path} has no step named {key!r}")
        if not 0 <= key < len(self._gnames):
            raise RunFileError(f"{self.path}: step index {key} out of range")
        return int(key)

    def step(self, key: int | str) -> StepData:
        """The persisted rows of a step: main datasets, plus the staging tail of a running step."""
        i = self._index(key)
        info, e = self._info(i), self._entries[i]
        g = self._h5["steps"][self._gnames[i]]
        main_rows = e.rows if e.status == STEP_DONE else min(e.main_rows, e.rows)
        tail = self._h5["journal/tail"].get(self._gnames[i])
        arrays = {}
        for name in info.units:
            part = g[name][:main_rows]
            if e.rows > main_rows and tail is not None:
                part = np.concatenate([part, tail[name][: e.rows - main_rows]])
            arrays[name] = part
        return StepData(info, arrays, dict(info.units))

    def to_dataframe(self, key: int | str) -> pd.DataFrame:
        """A step as a DataFrame, one column per dataset; units go to ``df.attrs['units']``."""
        import pandas as pd

        data = self.step(key)
        columns = {n: (a if a.ndim == 1 else list(a)) for n, a in data.arrays.items()}
        frame = pd.DataFrame(columns)
        frame.attrs["units"] = dict(data.units)
        frame.attrs["step"] = data.info.name
        return frame

    def events(self) -> list[dict[str, Any]]:
        """The run's event log in order (each has 'kind' and 'logged'); torn slots are skipped."""
        log = self._h5["journal"].get("events")
        if log is None:
            return []
        try:
            raws: list[Any] = list(log[()])
        except (OSError, ValueError):  # a chunk torn by a kill: read slot by slot
            raws = [read_slot(log, k) for k in range(log.shape[0])]
        return [e for e in (_json_or_none(raw) for raw in raws if raw) if e is not None]

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> RunReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
