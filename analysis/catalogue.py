"""The catalogue: one metadata row per run file, the first stage of analysis.

Later stages group, filter and join on this table and open the data lazily by ``path``; so the
catalogue reads only run attributes and status (through ``RunReader``, never step data), lists
corrupt, truncated, foreign and unfinished files as problems instead of failing, and keeps a small
cache keyed by (path, size, mtime_ns) so a folder of thousands of runs is re-read only where it
changed. It must not write to run files.
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dendrolab.errors import ParameterError, RunFileError
from protocols.runfile_reader import RunReader

CACHE_NAME = ".dendrolab-catalogue"
CACHE_VERSION = 1
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

#: Columns of ``Catalogue.runs`` in order, with their pandas dtypes (``object`` holds str/None).
RUN_COLUMNS: dict[str, str] = {
    "uuid": "object",
    "wafer": "object",
    "die_col": "Int64",
    "die_row": "Int64",
    "subsite_id": "Int64",
    "subsite_label": "object",
    "x_um": "float64",
    "y_um": "float64",
    "device_id": "object",
    "device_kind": "object",
    "protocol": "object",
    "figure": "object",
    "status": "object",
    "start_time": "datetime64[ns, UTC]",
    "stop_time": "datetime64[ns, UTC]",
    "software_version": "object",
    "layout": "Int64",
    "visa_library": "object",
    "simulator": "object",
    "simulated": "bool",
    "sim_seed": "Int64",
    "operator": "object",
    "path": "object",
    "size": "int64",
    "mtime": "datetime64[ns, UTC]",
    "mtime_ns": "int64",
}

#: Columns of ``Catalogue.problems``: ``kind`` is one of PROBLEM_KINDS, ``reason`` one line.
PROBLEM_COLUMNS: dict[str, str] = {
    "path": "object",
    "kind": "object",
    "reason": "object",
    "size": "Int64",
    "mtime_ns": "Int64",
}
PROBLEM_KINDS = ("not-hdf5", "truncated", "foreign", "too-new", "corrupt", "running",
                 "unreadable")
# A running file is re-read every time: its writer may finish it without a visible stat change.
_UNCACHED_KINDS = frozenset({"running", "unreadable"})

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Catalogue:
    """``runs``: one row per readable, finished run (RUN_COLUMNS); ``problems``: one row per
    skipped file (PROBLEM_COLUMNS); ``opened``: how many files were read this time (the rest
    came from the cache); ``cache``: the cache file used, or None."""

    runs: pd.DataFrame
    problems: pd.DataFrame
    opened: int = 0
    cache: Path | None = None


# ---------------------------------------------------------------------------------------------
# Sources


def find_run_files(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
                   ) -> list[Path]:
    """Resolve folders (searched recursively for ``*.h5``), globs and file paths to a sorted,
    de-duplicated list of absolute file paths. A named file or folder that does not exist is a
    ParameterError; a glob that matches nothing adds nothing."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    found: set[Path] = set()
    for source in sources:
        text = os.fspath(source)
        path = Path(text).expanduser()
        if path.is_dir():
            found.update(p for p in path.rglob("*.h5") if p.is_file())
        elif path.is_file():
            found.add(path)
        elif glob.has_magic(text):
            for match in glob.glob(os.path.expanduser(text), recursive=True):
                m = Path(match)
                if m.is_dir():
                    found.update(p for p in m.rglob("*.h5") if p.is_file())
                elif m.is_file():
                    found.add(m)
        else:
            raise ParameterError(f"run source {text!r} is neither a file, a folder nor a glob "
                                 "that exists")
    return sorted({p.resolve() for p in found})


# ---------------------------------------------------------------------------------------------
# One file


def _text_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _problem_kind(exc: BaseException, head: bytes) -> str:
    """Classify a failed open by the underlying HDF5 message (not RunFileError's wording)."""
    text = " ".join(str(e) for e in (exc, exc.__cause__) if e is not None)
    if not head.startswith(HDF5_SIGNATURE) and "signature" in text:
        return "not-hdf5"
    if "truncated file" in text:
        return "truncated"
    if "not a dendrolab run file" in text:
        return "foreign"
    if "newer than" in text or "unknown run-file layout" in text:
        return "too-new"
    if "open for writing elsewhere" in text:
        return "running"
    if "signature" in text:
        return "not-hdf5"
    return "corrupt"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def read_entry(path: Path, size: int, mtime_ns: int) -> tuple[str, dict[str, Any]]:
    """("run", row) or ("problem", row) for one file, from its attributes and status only."""
    base = {"path": str(path), "size": size, "mtime_ns": mtime_ns}
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(HDF5_SIGNATURE))
    except OSError as exc:
        return "problem", {**base, "kind": "unreadable", "reason": _one_line(exc)}
    if size == 0:
        return "problem", {**base, "kind": "not-hdf5", "reason": "empty file"}
    try:
        with RunReader(path) as reader:
            attrs, status = reader.attrs, reader.status
    except (RunFileError, OSError, KeyError, ValueError, TypeError) as exc:
        kind = _problem_kind(exc, head)
        reason = {"not-hdf5": "not an HDF5 file",
                  "truncated": "truncated HDF5 file (shorter than its superblock says)",
                  "foreign": "HDF5 file but not a dendrolab run (no 'dendrolab_layout')",
                  "running": "held open for writing by another process (still running)"
                  }.get(kind, _one_line(exc))
        return "problem", {**base, "kind": kind, "reason": reason}
    if status == "running":
        return "problem", {**base, "kind": "running",
                           "reason": "status 'running': still being written, or its writer was "
                                     "killed (resume it to finish)"}
    simulator = _text_or_none(attrs.get("library_simulator"))
    row = {
        "uuid": _text_or_none(attrs.get("uuid")),
        "wafer": _text_or_none(attrs.get("wafer_id")),
        "die_col": _int_or_none(attrs.get("die_col")),
        "die_row": _int_or_none(attrs.get("die_row")),
        "subsite_id": _int_or_none(attrs.get("subsite_id")),
        "subsite_label": _text_or_none(attrs.get("subsite_label")),
        "x_um": _float_or_nan(attrs.get("x_um")),
        "y_um": _float_or_nan(attrs.get("y_um")),
        "device_id": _text_or_none(attrs.get("device_id")),
        "device_kind": _text_or_none(attrs.get("device_kind")),
        "protocol": _text_or_none(attrs.get("protocol_name")),
        "figure": _text_or_none(attrs.get("figure")),
        "status": status,
        "start_time": _text_or_none(attrs.get("start_time")),
        "stop_time": _text_or_none(attrs.get("stop_time")),
        "software_version": _text_or_none(attrs.get("software_version")),
        "layout": _int_or_none(attrs.get("dendrolab_layout")),
        "visa_library": _text_or_none(attrs.get("visa_library")),
        "simulator": simulator,
        "simulated": simulator is not None,
        "sim_seed": _int_or_none(attrs.get("library_sim_seed", attrs.get("sim_seed"))),
        "operator": _text_or_none(attrs.get("operator")),
        **base,
    }
    return "run", row


# ---------------------------------------------------------------------------------------------
# Tables


def _frame(records: list[dict[str, Any]], columns: Mapping[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(columns))
    for name, dtype in columns.items():
        col = frame[name]
        if dtype.startswith("datetime64"):
            frame[name] = pd.to_datetime(col, utc=True, errors="coerce", format="ISO8601")
        elif dtype == "object":
            frame[name] = col.astype(object).where(col.notna(), None)
        else:
            frame[name] = col.astype(dtype)
    if "mtime" in columns:
        frame["mtime"] = pd.to_datetime(frame["mtime_ns"], unit="ns", utc=True)
    return frame.sort_values("path", ignore_index=True)


def _default_cache(sources: Any) -> Path | None:
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    sources = list(sources)
    if len(sources) == 1 and Path(os.fspath(sources[0])).is_dir():
        return Path(os.fspath(sources[0])).resolve() / CACHE_NAME
    return None


def _cache_file(base: Path) -> Path:
    """The cache's real file: Parquet when pyarrow is there, else JSON (suffix added if none)."""
    if base.suffix in (".parquet", ".json"):
        return base
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return base.with_name(base.name + ".json")
    return base.with_name(base.name + ".parquet")


def _load_cache(path: Path) -> dict[str, dict[str, Any]]:
    """path -> cached record (with '_entry' run/problem); an unreadable cache is just empty."""
    if not path.is_file():
        return {}
    try:
        if path.suffix == ".parquet":
            records = [json.loads(text) for text in pd.read_parquet(path)["record"]]
        else:
            records = json.loads(path.read_text())
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        return {}
    out = {}
    for rec in records if isinstance(records, list) else []:
        if isinstance(rec, dict) and rec.get("_cache_version") == CACHE_VERSION:
            out[str(rec.get("path"))] = rec
    return out


def _save_cache(path: Path, entries: Mapping[str, dict[str, Any]]) -> bool:
    records = [{**rec, "_cache_version": CACHE_VERSION} for rec in entries.values()]
    tmp = path.with_name(path.name + ".tmp")
    try:
        if path.suffix == ".parquet":
            # one JSON text per row keeps mixed types (None, ints, floats) exact in Parquet
            frame = pd.DataFrame({"path": [r["path"] for r in records],
                                  "record": [json.dumps(r) for r in records]})
            frame.to_parquet(tmp, index=False)
        else:
            tmp.write_text(json.dumps(records))
        os.replace(tmp, path)
    except (OSError, ValueError, ImportError):
        tmp.unlink(missing_ok=True)
        return False  # a read-only folder: the catalogue is still right, only slower next time
    return True


def catalogue(sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
              cache: str | os.PathLike[str] | bool | None = None,
              progress: Progress | None = None) -> Catalogue:
    """Catalogue run files from folders (recursive ``*.h5``), globs or file lists.

    ``cache``: None stores ``.dendrolab-catalogue.parquet`` in the folder when ``sources`` is
    one folder (no cache otherwise); a path stores it there (``.parquet`` or ``.json``); False
    turns it off. Files whose (path, size, mtime_ns) match the cache are not opened.
    ``progress(done, total)`` is called after each file.
    """
    paths = find_run_files(sources)
    if cache is None:
        base = _default_cache(sources)
    elif cache is False:
        base = None
    elif cache is True:
        base = _default_cache(sources)
        if base is None:
            raise ParameterError("cache=True needs one folder as the source, or give a cache "
                                 "file path")
    else:
        base = Path(os.fspath(cache)).expanduser().resolve()
    cache_path = _cache_file(base) if base is not None else None
    cached = _load_cache(cache_path) if cache_path is not None else {}
    runs: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    fresh: dict[str, dict[str, Any]] = {}
    opened = 0
    for done, path in enumerate(paths, 1):
        key = str(path)
        try:
            st = path.stat()
        except OSError as exc:  # vanished between listing and reading
            entry, row = "problem", {"path": key, "kind": "unreadable", "reason": _one_line(exc),
                                     "size": None, "mtime_ns": None}
        else:
            hit = cached.get(key)
            if hit is not None and hit.get("size") == st.st_size and \
                    hit.get("mtime_ns") == st.st_mtime_ns:
                entry = hit["_entry"]
                row = {k: v for k, v in hit.items() if not k.startswith("_")}
            else:
                opened += 1
                entry, row = read_entry(path, st.st_size, st.st_mtime_ns)
        (runs if entry == "run" else problems).append(row)
        if entry == "run" or row["kind"] not in _UNCACHED_KINDS:
            fresh[key] = {**row, "_entry": entry}
        if progress is not None:
            progress(done, len(paths))
    saved = None
    if cache_path is not None:
        # keep entries of other sources sharing this cache while their files still exist
        listed = {str(p) for p in paths}
        keep = {k: v for k, v in cached.items() if k not in listed and Path(k).is_file()}
        entries = {**keep, **fresh}
        old = {k: {f: x for f, x in v.items() if f != "_cache_version"}
               for k, v in cached.items()}
        if entries == old and cache_path.exists():
            saved = cache_path
        else:
            saved = cache_path if _save_cache(cache_path, entries) else None
    return Catalogue(runs=_frame(runs, RUN_COLUMNS), problems=_frame(problems, PROBLEM_COLUMNS),
                     opened=opened, cache=saved)
