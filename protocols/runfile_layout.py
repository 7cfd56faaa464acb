"""Run-file layout: declarations, validation, creation of every HDF5 object, and the journal codec.

The layout is specified in docs/runfile.md; this module builds it up front and must not create or
resize HDF5 objects after a run has started (that is what keeps a killed writer's file readable).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import uuid as uuid_mod
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from dendrolab.errors import RunFileError

LAYOUT_VERSION = 2  # 1: contiguous settings_after and event slots, symbol-table groups
READABLE_VERSIONS = (1, 2)
RUN_STATUSES = ("running", "completed", "failed", "interrupted")
STEP_STATUSES = ("pending", "running", "done")
RUN_CODES = {"running": 1, "completed": 2, "failed": 3, "interrupted": 4}
STEP_PENDING, STEP_RUNNING, STEP_DONE = 0, 1, 2
STEP_FIELDS = ("seq", "status", "rows", "main_rows", "blocks", "attempts", "started_ns",
               "updated_ns", "dirty", "crc32")
RUN_FIELDS = ("seq", "status", "resumes", "started_ns", "updated_ns", "reserved", "reserved",
              "reserved", "reserved", "crc32")
NFIELDS = len(STEP_FIELDS)
STATUS_DTYPE = "S16"
TIME_DTYPE = "S32"
SMALL_STEP_BYTES = 64 * 1024
SLOT_COMPRESSION = {"compression": "gzip", "compression_opts": 9}  # settings_after, event slots
LOOP_PREFIX = "loop."
REQUIRED_META = ("uuid", "start_time", "protocol")
WRITER_KEYS = ("dendrolab_layout", "status", "stop_time", "protocol_sha256", "software_version",
               "json_keys")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_LOOP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")  # protocol identifiers may start '_'
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=\-]+")
_NUMERIC_KINDS = "biuf"


@dataclass(frozen=True)
class DatasetSpec:
    """One per-point quantity of a step: ``rows`` x ``shape`` values of ``dtype`` in ``units``."""

    name: str
    units: str
    dtype: str = "float64"
    shape: tuple[int, ...] = ()


@dataclass(frozen=True)
class StepSpec:
    """A plan step as the file sees it: its datasets and the most points it can produce.

    ``n_points`` is a capacity (storage is fixed at creation); a step may end with fewer rows.
    ``block_points`` is the flush and compression unit (default: about 256 KiB of rows).
    ``loop_vars`` are the plan's loop variables at this step (e.g. ``{"amplitude_v": 2.0}``),
    stored as typed attributes so analysis can group by them without parsing step names.
    """

    name: str
    n_points: int
    datasets: tuple[DatasetSpec, ...]
    block_points: int | None = None
    instrument: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    loop_vars: Mapping[str, int | float | str] = field(default_factory=dict)


@dataclass(frozen=True)
class InstrumentSpec:
    """Identity and settings snapshot taken before the run; ``after_capacity`` reserves bytes."""

    name: str
    identity: Mapping[str, Any]
    settings_before: Mapping[str, Any]
    after_capacity: int | None = None


@dataclass(frozen=True)
class RunLayout:
    """Everything the file will ever hold, declared before the run so nothing grows mid-run."""

    steps: tuple[StepSpec, ...]
    instruments: tuple[InstrumentSpec, ...] = ()
    compression: str | None = "gzip"
    gzip_level: int = 1
    event_slots: int = 128  # pre-allocated event log: slots of event_bytes JSON each
    event_bytes: int = 1024


def row_bytes(step: StepSpec) -> int:
    """Bytes of one row over all of a step's datasets."""
    return sum(np.dtype(d.dtype).itemsize * math.prod(d.shape) for d in step.datasets)


def block_points(step: StepSpec) -> int:
    """Block (= chunk) length in rows: as declared, else about 256 KiB, within [256, 65536]."""
    if step.block_points is not None:
        return max(1, min(int(step.block_points), step.n_points))
    target = 2 ** int(math.log2(max(1, 262144 // max(1, row_bytes(step)))))
    return max(1, min(step.n_points, max(256, min(65536, target))))


def step_storage(step: StepSpec, layout: RunLayout) -> str:
    """'chunked' (compressed chunks + staging tail) or 'contiguous' (small or uncompressed)."""
    small = step.n_points * row_bytes(step) <= SMALL_STEP_BYTES
    return "contiguous" if small or layout.compression is None else "chunked"


def group_name(index: int, name: str) -> str:
    """'NNNN_<name>' with runs of characters other than letters, digits and '_.=-' as '_'."""
    return f"{index:04d}_{_UNSAFE.sub('_', name)}"


def fill_value(dtype: np.dtype) -> Any:
    return np.nan if dtype.kind == "f" else 0


def to_json(value: Any) -> str:
    """JSON text for snapshots and params; numpy scalars and arrays become plain lists/numbers."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, (datetime, Path)):
            return str(obj)
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    try:
        return json.dumps(value, sort_keys=True, default=default)
    except (TypeError, ValueError) as exc:
        raise RunFileError(f"cannot store {value!r:.80} as JSON: {exc}") from exc


def iso_utc(value: Any) -> str:
    """ISO 8601 UTC text ('...Z') from a tz-aware datetime or ISO string; refuses naive times."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise RunFileError(f"start_time {value!r} is not ISO 8601") from exc
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise RunFileError(f"time {value!r} must be a timezone-aware datetime or ISO 8601 text "
                           "with an offset, e.g. '2026-05-01T12:00:00Z'")
    text = value.astimezone(timezone.utc).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def now_iso() -> str:
    return iso_utc(datetime.now(timezone.utc))


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise RunFileError(f"{kind} name {name!r} is invalid: use letters, digits, '_', '.', '-' "
                           "and start with a letter or digit")


def loop_value(step: str, name: str, value: Any) -> Any:
    """A loop variable as an attribute value: int64, float64, bool or str; anything else raises."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return np.bool_(value)
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise RunFileError(f"step {step!r}: loop variable {name!r} = {value} does not fit "
                               "in int64")
        return np.int64(value)
    if isinstance(value, float):
        return np.float64(value)
    if isinstance(value, str):
        return value
    raise RunFileError(f"step {step!r}: loop variable {name!r} is a {type(value).__name__}; "
                       "use an int, float, bool or str")


def validate_layout(layout: RunLayout) -> None:
    """Refuse a layout the writer could not honour, before any file is touched."""
    if layout.compression not in (None, "gzip", "lzf"):
        raise RunFileError(f"compression {layout.compression!r} unknown: use 'gzip', 'lzf' or None")
    seen: set[str] = set()
    for step in layout.steps:
        if not isinstance(step.name, str) or not step.name.isprintable() or not step.name:
            raise RunFileError(f"step name {step.name!r} must be non-empty printable text")
        if step.name in seen:
            raise RunFileError(f"step name {step.name!r} appears twice; step names must be unique")
        seen.add(step.name)
        if int(step.n_points) < 1:
            raise RunFileError(f"step {step.name!r}: n_points must be >= 1, got {step.n_points}")
        if step.block_points is not None and int(step.block_points) < 1:
            raise RunFileError(f"step {step.name!r}: block_points must be >= 1")
        if not step.datasets:
            raise RunFileError(f"step {step.name!r} declares no datasets")
        if not isinstance(step.loop_vars, Mapping):
            raise RunFileError(f"step {step.name!r}: loop_vars must be a mapping name -> value")
        for var, value in step.loop_vars.items():
            if not isinstance(var, str) or not _LOOP_NAME.match(var):
                raise RunFileError(f"step {step.name!r}: loop variable name {var!r:.80} is "
                                   "invalid: use letters, digits, '_', '.', '-'")
            loop_value(step.name, var, value)
        names: set[str] = set()
        for d in step.datasets:
            _check_name("dataset", d.name)
            if d.name in names:
                raise RunFileError(f"step {step.name!r}: dataset {d.name!r} declared twice")
            names.add(d.name)
            if not isinstance(d.units, str):
                raise RunFileError(f"step {step.name!r}, dataset {d.name!r}: units must be a "
                                   "string such as 'V', 'A', 's' ('' for dimensionless)")
            try:
                kind = np.dtype(d.dtype).kind
            except TypeError as exc:
                raise RunFileError(f"dataset {d.name!r}: dtype {d.dtype!r} unknown") from exc
            if kind not in _NUMERIC_KINDS:
                raise RunFileError(f"dataset {d.name!r}: dtype {d.dtype!r} is not numeric or bool")
    if layout.event_slots < 0 or layout.event_bytes < 1:
        raise RunFileError("event_slots must be >= 0 and event_bytes >= 1")
    inames = [i.name for i in layout.instruments]
    for name in inames:
        _check_name("instrument", name)
    if len(set(inames)) != len(inames):
        raise RunFileError("instrument names must be unique")


def normalise_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Check the caller's run metadata and turn it into attribute values (plus json_keys)."""
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise RunFileError(f"run metadata lacks {missing}; required: {list(REQUIRED_META)}")
    clash = [k for k in meta if k in WRITER_KEYS and k != "protocol_sha256"]
    if clash:
        raise RunFileError(f"run metadata may not set {clash}: the writer owns them")
    out: dict[str, Any] = {}
    json_keys: list[str] = []
    for key, value in meta.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise RunFileError(f"metadata key {key!r} must be a non-empty string without '/'")
        if key == "protocol_sha256":
            continue
        if isinstance(value, (bool, np.bool_, int, float, str, np.integer, np.floating)):
            out[key] = value
        else:
            out[key] = to_json(value)
            json_keys.append(key)
    try:
        out["uuid"] = str(uuid_mod.UUID(str(meta["uuid"])))
    except ValueError as exc:
        raise RunFileError(f"uuid {meta['uuid']!r} is not a UUID") from exc
    out["start_time"] = iso_utc(meta["start_time"])
    if not isinstance(meta["protocol"], str):
        raise RunFileError("metadata 'protocol' must be the protocol file's text")
    digest = hashlib.sha256(meta["protocol"].encode("utf-8")).hexdigest()
    if "protocol_sha256" in meta and meta["protocol_sha256"] != digest:
        raise RunFileError("metadata 'protocol_sha256' does not match the protocol text")
    out["protocol_sha256"] = digest
    out["json_keys"] = ",".join(json_keys)
    return out


def _early() -> h5py.h5p.PropDCID:
    """Dataset creation list with early allocation: every byte exists before the first write."""
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    plist.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return plist


def record(values: Sequence[int]) -> np.ndarray:
    """A journal record: nine int64 fields plus their CRC-32, so a torn slot is detectable."""
    rec = np.zeros(NFIELDS, dtype="<i8")
    rec[: len(values)] = values
    rec[-1] = zlib.crc32(rec[:-1].tobytes())
    return rec


def pick_record(slots: np.ndarray) -> np.ndarray | None:
    """The valid slot with the highest sequence number, or None if neither checks out."""
    best = None
    for rec in np.asarray(slots, dtype="<i8"):
        if rec[0] > 0 and zlib.crc32(rec[:-1].tobytes()) == rec[-1]:
            if best is None or rec[0] > best[0]:
                best = rec
    return best


class StepEntry(NamedTuple):
    """A decoded step record of the journal (``valid`` is False if both slots were torn)."""

    seq: int
    status: int
    rows: int
    main_rows: int
    blocks: int
    attempts: int
    started_ns: int
    updated_ns: int
    dirty: int = 0
    valid: bool = True


def step_entry(slots: np.ndarray) -> StepEntry:
    """Decode one step's two slots; an unreadable pair counts as an unfinished step with 0 rows."""
    rec = pick_record(slots)
    if rec is None:
        return StepEntry(0, STEP_RUNNING, 0, 0, 0, 0, 0, 0, 1, False)
    return StepEntry(*(int(v) for v in rec[:9]))


def step_groups(h5: h5py.File) -> list[str]:
    """Step group names in plan order (by their numeric prefix, so 10000 sorts after 9999)."""
    return sorted(h5["steps"], key=lambda name: int(name.split("_", 1)[0]))


def _group(parent: h5py.Group, name: str) -> h5py.Group:
    """A compact ("new-style") group: its links live in its own object header, about 1 kB less
    than a symbol-table group (B-tree node, symbol node, local heap). Creation order is tracked
    only because that is the one switch h5py offers for the new style; the object header stays
    version 1 (no checksum), so superblock v0 and crash behaviour are unchanged."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_link_creation_order(h5py.h5p.CRT_ORDER_TRACKED)
    return h5py.Group(h5py.h5g.create(parent.id, name.encode("utf-8"), gcpl=gcpl))


def create_file(path: str | os.PathLike[str]) -> h5py.File:
    """A new, empty run file: superblock v0 (libver 'earliest') with a compact root group."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_link_creation_order(h5py.h5p.CRT_ORDER_TRACKED)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_LATEST)
    fid = h5py.h5f.create(os.fsencode(path), h5py.h5f.ACC_EXCL, fcpl=fcpl, fapl=fapl)
    return h5py.File(fid)


def _slots(parent: h5py.Group, name: str, n: int, size: int) -> h5py.Dataset:
    """``n`` write-once byte-string slots, one gzip chunk each, allocated (as compressed fill,
    tens of bytes) at creation: unused capacity costs almost nothing on disk, and filling a slot
    is a whole-chunk write of a fresh chunk, the one chunk write HDF5 does without reading."""
    if n == 0:  # nothing to write, ever (event_slots=0)
        return parent.create_dataset(name, shape=(0,), dtype=f"S{size}")
    return parent.create_dataset(name, shape=(n,), dtype=f"S{size}", chunks=(1,),
                                 dcpl=_early(), **SLOT_COMPRESSION)


def write_layout(h5: h5py.File, attrs: dict[str, Any], layout: RunLayout, version: str) -> None:
    """Create every group, dataset and attribute of the run; only raw bytes change afterwards."""
    root = h5.attrs
    root["dendrolab_layout"] = np.int64(LAYOUT_VERSION)
    root["status"] = np.array(b"running", dtype=STATUS_DTYPE)
    root["stop_time"] = np.array(b"", dtype=TIME_DTYPE)
    root["software_version"] = version
    for key, value in attrs.items():
        root[key] = value
    instruments = _group(h5, "instruments")
    for inst in layout.instruments:
        g = _group(instruments, inst.name)
        g.attrs["identity"] = to_json(inst.identity)
        before = to_json(inst.settings_before).encode("utf-8")
        cap = inst.after_capacity or max(65536, 4 * len(before))
        # shape (1,), not (): h5py ignores dcpl (early allocation) for scalar datasets
        g.create_dataset("settings_before", data=np.array([before], dtype=f"S{len(before)}"))
        _slots(g, "settings_after", 1, cap)
    steps = _group(h5, "steps")
    journal = _group(h5, "journal")
    tails = _group(journal, "tail")
    for index, step in enumerate(layout.steps):
        gname = group_name(index, step.name)
        g = _group(steps, gname)
        storage = step_storage(step, layout)
        block = block_points(step)
        g.attrs.update({"index": index, "name": step.name, "n_points": step.n_points,
                        "block_points": block, "storage": storage,
                        "datasets": ",".join(d.name for d in step.datasets),
                        "instrument": step.instrument, "params": to_json(dict(step.params)),
                        "loop_vars": ",".join(step.loop_vars)})
        for var, value in step.loop_vars.items():
            g.attrs[LOOP_PREFIX + var] = loop_value(step.name, var, value)
        for d in step.datasets:
            dt = np.dtype(d.dtype)
            shape = (step.n_points, *d.shape)
            kw: dict[str, Any] = {"fillvalue": fill_value(dt), "dcpl": _early()}
            if storage == "chunked":  # whole blocks: no edge chunk (see StepWriter._write_chunk)
                shape = (-(-step.n_points // block) * block, *d.shape)
                kw.update(chunks=(block, *d.shape), compression=layout.compression,
                          shuffle=dt.itemsize > 1)
                if layout.compression == "gzip":
                    kw["compression_opts"] = layout.gzip_level
                tail_group = tails[gname] if gname in tails else _group(tails, gname)
                tail = tail_group.create_dataset(
                    d.name, shape=(block, *d.shape), dtype=dt, fillvalue=fill_value(dt),
                    dcpl=_early())
                tail.attrs["units"] = d.units
            ds = g.create_dataset(d.name, shape=shape, dtype=dt, **kw)
            ds.attrs["units"] = d.units
    journal.attrs["step_fields"] = ",".join(STEP_FIELDS)
    journal.attrs["run_fields"] = ",".join(RUN_FIELDS)
    journal.attrs["step_status_codes"] = "0=pending,1=running,2=done"
    journal.attrs["run_status_codes"] = ",".join(f"{v}={k}" for k, v in RUN_CODES.items())
    jsteps = journal.create_dataset("steps", shape=(len(layout.steps), 2, NFIELDS), dtype="<i8",
                                    dcpl=_early())
    jrun = journal.create_dataset("run", shape=(2, NFIELDS), dtype="<i8", dcpl=_early())
    _slots(journal, "events", layout.event_slots, layout.event_bytes)
    now = time.time_ns()
    if layout.steps:
        jsteps[:, 1, :] = record([1, STEP_PENDING, 0, 0, 0, 0, 0, now])
    jrun[1] = record([1, RUN_CODES["running"], 0, now, now])


def loop_vars_of(g: h5py.Group) -> dict[str, int | float | str | bool]:
    """A step group's loop variables as plain Python values ({} for layout 1 or none)."""
    names = g.attrs.get("loop_vars", "")
    names = names.decode() if isinstance(names, bytes) else str(names)
    out: dict[str, Any] = {}
    for var in filter(None, names.split(",")):
        value = g.attrs[LOOP_PREFIX + var]
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, np.generic):
            value = value.item()
        out[var] = value
    return out


def read_slot(ds: h5py.Dataset, k: int) -> bytes | None:
    """Slot ``k`` of a slot dataset, or None if a kill left it unreadable (torn chunk)."""
    try:
        return bytes(ds[k])
    except (OSError, ValueError):
        return None


def read_layout(h5: h5py.File) -> RunLayout:
    """Rebuild the declaration from a file (used by resume, so the runner can compare plans)."""
    steps = []
    compression = None
    for gname in step_groups(h5):
        g = h5["steps"][gname]
        dsets = []
        for name in str(g.attrs["datasets"]).split(","):
            ds = g[name]
            compression = compression or ds.compression
            dsets.append(DatasetSpec(name, str(ds.attrs["units"]), ds.dtype.str, ds.shape[1:]))
        steps.append(StepSpec(str(g.attrs["name"]), int(g.attrs["n_points"]), tuple(dsets),
                              int(g.attrs["block_points"]), str(g.attrs["instrument"]),
                              json.loads(g.attrs["params"]), loop_vars_of(g)))
    insts = []
    for name, g in h5["instruments"].items():
        insts.append(InstrumentSpec(name, json.loads(g.attrs["identity"]),
                                    json.loads(g["settings_before"][0] or b"{}"),
                                    g["settings_after"].dtype.itemsize))
    events = h5["journal"].get("events")
    slots, size = (0, 0) if events is None else (events.shape[0], events.dtype.itemsize)
    return RunLayout(tuple(steps), tuple(insts), compression, event_slots=slots,
                     event_bytes=size)


def open_checked(path: str | os.PathLike[str], mode: str, **kw: Any) -> h5py.File:
    """Open a run file, mapping every 'not ours / not there / too new' case to RunFileError."""
    path = Path(path)
    if not path.exists():
        raise RunFileError(f"run file {path} does not exist")
    try:
        h5 = h5py.File(path, mode, **kw)
    except OSError as exc:
        text = str(exc)  # (a truncated file's message says "sblock": match the lock's words)
        if "unable to lock" in text or "already open" in text:
            raise RunFileError(f"run file {path} is open for writing elsewhere ({exc}); "
                               "readers may pass live=True") from exc
        raise RunFileError(f"{path} is not a readable HDF5 file: {exc}") from exc
    try:
        version = h5.attrs.get("dendrolab_layout")
        if version is None:
            raise RunFileError(f"{path} is not a dendrolab run file (no 'dendrolab_layout' "
                               "attribute on the root group)")
        if int(version) > LAYOUT_VERSION:
            raise RunFileError(f"{path} uses run-file layout {int(version)}, newer than the "
                               f"{LAYOUT_VERSION} this dendrolab reads; upgrade dendrolab")
        if int(version) not in READABLE_VERSIONS:
            raise RunFileError(f"{path} has an unknown run-file layout {int(version)}; this "
                               f"dendrolab reads layouts {', '.join(map(str, READABLE_VERSIONS))}")
    except BaseException:
        h5.close()
        raise
    return h5


def bound_metadata_cache(h5: h5py.File, size: int = 256 * 1024) -> None:
    """Fix HDF5's metadata cache at ``size`` bytes: every flush scans the whole cache, which
    otherwise grows with each object touched and makes long runs slower step by step."""
    cfg = h5.id.get_mdc_config()
    cfg.set_initial_size = True
    cfg.initial_size = cfg.min_size = cfg.max_size = size
    cfg.incr_mode = cfg.flash_incr_mode = cfg.decr_mode = 0  # off: no adaptive resizing
    h5.id.set_mdc_config(cfg)


def chunk_extent(h5: h5py.File, gnames: Sequence[str]) -> int:
    """Highest byte any chunk of these step groups, of the settings_after slots or of the event
    log points at (orphans of a kill included)."""
    dsets = [ds for gname in gnames for ds in h5["steps"][gname].values()]
    dsets += [g["settings_after"] for g in h5["instruments"].values()]
    if "events" in h5["journal"]:
        dsets.append(h5["journal/events"])
    end = 0
    for ds in dsets:
        if ds.chunks is not None:
            for k in range(ds.id.get_num_chunks()):
                info = ds.id.get_chunk_info(k)
                end = max(end, info.byte_offset + info.size)
    return end


def repair_eoa(path: str | os.PathLike[str], needed: int = 0) -> bool:
    """Raise a crashed file's stored end-of-allocation to its real size, or to ``needed`` (the
    end of chunks a kill left half-indexed), as h5clear --increment would, so a resumed writer
    never allocates over those chunks or fails to rewrite them."""
    with open(path, "r+b") as fh:
        head = fh.read(48)
        if len(head) < 48 or head[:8] != b"\x89HDF\r\n\x1a\n" or head[8] != 0 or head[13] != 8:
            return False
        base, stored = int.from_bytes(head[24:32], "little"), int.from_bytes(head[40:48], "little")
        size = os.fstat(fh.fileno()).st_size
        target = max(size, needed)
        if base != 0 or stored >= target:
            return False
        if target > size:
            fh.truncate(target)
        fh.seek(40)
        fh.write(target.to_bytes(8, "little"))
        return True
