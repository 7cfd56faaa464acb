"""Wafer engine: step a prober over a wafer map and run protocols on every device, unattended.

Why here and not in the drivers: safety and bookkeeping are policy. One ``InstrumentSet`` (SMU(s)
and the prober) stays open for the whole wafer; at each device the engine separates, steps,
contacts, re-reads the position (``Prober.where``), checks contact with a quick low-voltage read
(open / short / ok, ``ContactCheck``), then runs each protocol's plan on the open set into its
own run file (``runner.run_plan``, which spares the prober: needles stay down mid-device).
Devices failing contact, or whose run hits the SMU's compliance, are recorded with the reason
and skipped (optionally binned on the station).

One journal per wafer, ``OUT/<wafer>/wafer.jsonl`` (one JSON record a line, flushed and
fsynced per record), says per device pending (no record yet) / measuring / done / skipped; the
run files are ``OUT/<wafer>/<col>_<row>_<site>/<protocol>.h5`` (docs/runfile.md, "Wafer
runs"). After a crash ``resume_wafer`` continues at the first device not done or skipped: a
run file that is complete is kept, one that exists but is unfinished is continued on the open
set by the runner's resume logic (device re-read, first unfinished step on, nothing repeated),
one that does not exist (the runner creates files atomically) is run from the start.

Every exit path (error, exception, Ctrl-C, SIGTERM via ``signals_raise``) puts the instruments
in their safe state first and then separates the prober.

Manual mode (``manual=True``, a station without remote control): the device list is the explicit
``dies`` x ``sites`` (there is no route to walk), the prober is a ``ManualProber`` over it that
prompts the operator at each device (the bench needs no ``prober`` role, only ``smu``); a skip is
journalled with reason ``operator skipped``; an abort (``WaferAborted``) leaves the instruments
safe and the journal closed, and ``resume_wafer`` (manual mode is in the journal's header)
prompts again from the next unmeasured device.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from dendrolab.errors import DendrolabError, ParameterError, RunFileError, clip
from instruments.bench_config import BenchConfig, InstrumentSet, load_bench_config
from instruments.prober import ManualProber, OperatorAbort
from protocols.plan import Plan
from protocols.runfile import RunReader
from protocols.runner import (
    RunInfo,
    check_out_path,
    prepare,
    protocol_text,
    resume_plan,
    run_plan,
    safe_state_except,
)
from protocols.safety import signals_raise

JOURNAL = "wafer.jsonl"
JOURNAL_VERSION = 1
#: The bench role the engine steps with, and the one its contact check reads on.
PROBER_ROLE = "prober"
CONTACT_ROLE = "smu"
#: Subsite names of the packaged (simulated) map: D<row><col> on a 4 x 4 grid, row-major, so
#: ``D12`` is subsite 6. Stations name subsites by index; ``--sites`` takes either.
SITE_NAMES: tuple[str, ...] = tuple(f"D{r}{c}" for r in range(4) for c in range(4))
DEVICE_KINDS = ("dendrite", "soma", "synapse", "unit")
_WAFER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SPARE = frozenset({"prober"})
#: The journalled reason of a device the operator of a manual station skipped.
OPERATOR_SKIPPED = "operator skipped"


@dataclass(frozen=True)
class ContactCheck:
    """The quick read at each device before any protocol (thresholds documented in
    docs/protocols.md, "Wafer runs").

    ``level_v`` is sourced at ``compliance_a``; the device is *short* if the SMU trips its
    compliance or draws at least ``short_a`` (<= 2 kOhm at 0.1 V), *open* if it draws less than
    ``open_a`` (> 10 GOhm at 0.1 V; a dendrite's OFF state, 0.1 uS, draws ~10 nA), else ok.
    """

    level_v: float = 0.1
    compliance_a: float = 1e-4
    nplc: float = 0.1
    open_a: float = 1e-11
    short_a: float = 5e-5

    def verdict(self, current_a: float, tripped: bool) -> str:
        if tripped or abs(current_a) >= self.short_a:
            return "short"
        if not math.isfinite(current_a) or abs(current_a) < self.open_a:
            return "open"
        return "ok"


Device = tuple[int, int, int]


@dataclass(frozen=True)
class WaferEvent:
    """Progress of a wafer run: ``kind`` is ``device`` (stepping onto it), ``step`` (a plan step
    done), ``device_done`` (``state`` done or skipped); counts are over the whole wafer."""

    kind: str
    index: int
    device: Device
    total: int
    done: int
    skipped: int
    protocol: str = ""
    step: int = -1
    duration_s: float = 0.0
    state: str = ""
    reason: str = ""
    device_s: float = 0.0  # planned seconds per device (all protocols): the ETA's unit


WaferProgress = Callable[[WaferEvent], None]


class WaferAborted(OperatorAbort):
    """The operator of a manual station aborted the wafer: the instruments are safe, the
    journal is closed, ``resume_wafer(summary.directory)`` continues at the next unmeasured
    device. ``summary`` counts what was done before the abort."""

    def __init__(self, message: str, summary: WaferSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class WaferSummary:
    """What a wafer run (or resume) did: the wafer directory, device counts, skip reasons."""

    directory: Path
    total: int
    done: int = 0
    skipped: int = 0
    reasons: dict[str, str] = field(default_factory=dict)  # "col_row_site" -> reason
    measured_now: int = 0


# ---------------------------------------------------------------------------------------------
# Input parsing (no I/O)


def parse_dies(text: str | None) -> list[tuple[int, int]] | None:
    """``--dies``: ``all`` (None) or ``col,row`` pairs separated by ``;`` (``3,4;5,6``)."""
    if text is None or text.strip().lower() == "all":
        return None
    out: list[tuple[int, int]] = []
    for part in text.split(";"):
        fields = [f.strip() for f in part.split(",")]
        if len(fields) != 2 or not all(re.fullmatch(r"-?\d{1,5}", f) for f in fields):
            raise ParameterError(f"--dies {clip(text, 60)!r}: expected 'all' or col,row pairs "
                                 f"separated by ';' (e.g. 3,4;5,6), got {clip(part, 30)!r}")
        die = (int(fields[0]), int(fields[1]))
        if die not in out:
            out.append(die)
    return out


def parse_sites(text: str | None) -> list[int] | None:
    """``--sites``: ``all`` (None) or subsites separated by ``,``: 0-based indices or the
    packaged map's names ``D<row><col>`` (``SITE_NAMES``)."""
    if text is None or text.strip().lower() == "all":
        return None
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if re.fullmatch(r"\d{1,4}", part):
            site = int(part)
        elif part.upper() in SITE_NAMES:
            site = SITE_NAMES.index(part.upper())
        else:
            raise ParameterError(f"--sites {clip(text, 60)!r}: {clip(part, 24)!r} is not a "
                                 f"subsite; give 'all', 0-based indices or names "
                                 f"{SITE_NAMES[0]}..{SITE_NAMES[-1]}")
        if site not in out:
            out.append(site)
    return out


def site_label(site: int) -> str:
    return SITE_NAMES[site] if 0 <= site < len(SITE_NAMES) else str(site)


def device_dir(col: int, row: int, site: int) -> str:
    return f"{col}_{row}_{site}"


def run_file(directory: Path, device: Device, protocol: str) -> Path:
    """Where a device's run of a protocol goes: ``<wafer dir>/<col>_<row>_<site>/<protocol>.h5``."""
    return directory / device_dir(*device) / f"{protocol}.h5"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------
# Journal


class WaferJournal:
    """Append-only JSON lines, each flushed and fsynced before ``append`` returns.

    A kill -9 can leave at most a torn last line: reading ignores it and ``open`` cuts it off
    before appending, so the journal stays one valid record per line.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    @classmethod
    def create(cls, path: Path, header: dict[str, Any]) -> WaferJournal:
        journal = cls(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        journal._fh = os.fdopen(fd, "a", encoding="utf-8")
        journal.append(header)
        _fsync_dir(path.parent)
        return journal

    @classmethod
    def reopen(cls, path: Path) -> WaferJournal:
        journal = cls(path)
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut != len(data):  # a torn last record (killed mid-write): drop it
            with open(path, "r+b") as fh:
                fh.truncate(cut)
                os.fsync(fh.fileno())
        journal._fh = open(path, "a", encoding="utf-8")
        return journal

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, separators=(",", ":"), allow_nan=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @staticmethod
    def records(path: Path) -> list[dict[str, Any]]:
        """Every complete record (a torn last line is ignored)."""
        out = []
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise RunFileError(f"{clip(str(path), 120)}: cannot read the wafer journal "
                               f"({getattr(exc, 'strerror', None) or exc})") from None
        for line in lines[:-1]:  # the part after the last newline is torn or empty
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                raise RunFileError(f"{clip(str(path), 120)}: a journal line is not JSON; "
                                   "the journal is damaged") from None
        return out


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def device_states(records: Sequence[dict[str, Any]]) -> dict[Device, dict[str, Any]]:
    """The last ``device`` record of each device (its current state)."""
    states: dict[Device, dict[str, Any]] = {}
    for r in records:
        if r.get("type") == "device":
            states[(int(r["col"]), int(r["row"]), int(r["site"]))] = r
    return states


# ---------------------------------------------------------------------------------------------
# The engine


@dataclass
class _Job:
    """Everything a wafer run needs, checked before any instrument I/O."""

    directory: Path
    wafer_id: str
    bench_path: Path
    bench_text: str
    config: BenchConfig
    refs: list[str]
    plans: list[Plan]
    texts: list[str]
    map_path: str | None
    dies: list[tuple[int, int]] | None
    sites: list[int] | None
    kind: str
    bin_skipped: int | None
    contact: ContactCheck
    operator: str | None = None
    manual: bool = False

    @property
    def names(self) -> list[str]:
        return [p.protocol for p in self.plans]


def _check_bench(config: BenchConfig, bench_path: Path, manual: bool = False) -> None:
    if manual:
        if CONTACT_ROLE not in config.roles:
            raise ParameterError(f"{clip(str(bench_path), 120)}: the bench has no role "
                                 f"{CONTACT_ROLE!r}; a manual wafer run needs "
                                 f"'{CONTACT_ROLE}' (the SMU on the needles)")
        return
    for role in (PROBER_ROLE, CONTACT_ROLE):
        if role not in config.roles:
            raise ParameterError(f"{clip(str(bench_path), 120)}: the bench has no role "
                                 f"{role!r}; a wafer run needs '{PROBER_ROLE}' (the probe "
                                 f"station) and '{CONTACT_ROLE}' (the SMU on the needles)")


def _manual_devices(dies: list[tuple[int, int]] | None, sites: list[int] | None
                    ) -> list[Device]:
    """Manual mode's device list: every given die (in order) x every given subsite; both must
    be explicit (a manual station has no route to walk). Ranges are checked as the
    ``ManualProber`` checks them."""
    if dies is None:
        raise ParameterError("--manual needs --dies: explicit col,row pairs (e.g. '3,4;5,6'); "
                             "a manual station has no route to walk")
    if sites is None:
        raise ParameterError("--manual needs --sites: explicit subsite indices or names "
                             "(e.g. '0,1' or 'D00,D11')")
    devices = [(int(c), int(r), int(s)) for c, r in dies for s in sites]
    ManualProber(devices, prompt=_no_prompt)   # the prober's own range checks, before any I/O
    return devices


def _no_prompt(text: str) -> str:
    raise AssertionError("no prompt expected here")  # pragma: no cover


def _compile(refs: Sequence[str], bench_path: Path) -> tuple[list[Plan], list[str]]:
    if not refs:
        raise ParameterError("give at least one protocol to run at every device")
    plans, texts = [], []
    for ref in refs:
        plan, _ = prepare(ref, bench_path)
        if any(p.protocol == plan.protocol for p in plans):
            raise ParameterError(f"protocol {plan.protocol!r} is given twice; each device has "
                                 "one run file per protocol")
        plans.append(plan)
        texts.append(protocol_text(ref, plan))
    return plans, texts


def _read_bench(bench_path: Path) -> tuple[str, BenchConfig]:
    config = load_bench_config(bench_path)
    try:
        text = bench_path.read_text()
    except OSError as exc:
        raise RunFileError(f"{clip(str(bench_path), 120)}: cannot read the bench file: "
                           f"{exc.strerror or exc}") from None
    return text, config


def run_wafer(protocols: Sequence[str], bench_path: str | Path, wafer_id: str,
              out_dir: str | Path, *, map_path: str | None = None, dies: str | None = None,
              sites: str | None = None, kind: str = "dendrite", bin_skipped: int | None = None,
              contact: ContactCheck | None = None, operator: str | None = None,
              progress: WaferProgress | None = None, manual: bool = False,
              prompt: Callable[[str], str] | None = None) -> WaferSummary:
    """Measure every selected device of a wafer with each protocol; returns the summary.

    ``manual``: no remote prober; ``dies`` and ``sites`` must be explicit, the operator is asked
    through ``prompt(text) -> answer`` (``ManualProber``; default a terminal prompt) to place
    the needles on each device, and may skip it or abort (``WaferAborted``, resumable).

    Everything that can be checked without instruments is checked first (protocols against the
    bench, the bench's ``prober`` and ``smu`` roles, ``dies``/``sites`` syntax, the wafer id,
    the output directory): bad input raises before any I/O and writes nothing. Die and subsite
    existence are checked against the route read from the station (needles separated) before
    anything is measured or the journal written.
    """
    wafer_id = str(wafer_id)
    if not _WAFER_ID.fullmatch(wafer_id):
        raise ParameterError(f"--wafer {clip(wafer_id, 60)!r}: a wafer id is 1-64 letters, "
                             "digits, '.', '_' or '-' (it names the wafer's directory)")
    if kind not in DEVICE_KINDS:
        raise ParameterError(f"device kind {clip(kind, 30)!r}: one of {', '.join(DEVICE_KINDS)}")
    die_list, site_list = parse_dies(dies), parse_sites(sites)
    if manual:
        _manual_devices(die_list, site_list)
        if map_path is not None:
            raise ParameterError("--map: a manual station has no map to load; give --dies and "
                                 "--sites")
        if bin_skipped is not None:
            raise ParameterError("--bin: a manual station has no bins to set")
    bench_path = Path(bench_path)
    bench_text, config = _read_bench(bench_path)
    _check_bench(config, bench_path, manual)
    plans, texts = _compile(list(protocols), bench_path)
    directory = Path(out_dir) / wafer_id
    journal_path = directory / JOURNAL
    if journal_path.exists():
        raise RunFileError(f"{clip(str(journal_path), 120)} exists: wafer {wafer_id!r} was "
                           f"started there; `dendrolab wafer resume {clip(str(directory), 80)}` "
                           "continues it")
    check_out_path_dir(directory)
    job = _Job(directory, wafer_id, bench_path, bench_text, config, list(protocols), plans,
               texts, map_path, die_list, site_list, kind, bin_skipped, contact or ContactCheck(),
               operator, manual)
    try:
        return _Engine(job, None, progress, prompt).run()
    finally:
        if not journal_path.exists():  # failed before the route was read: leave nothing
            try:
                directory.rmdir()
            except OSError:
                pass


def check_out_path_dir(directory: Path) -> None:
    """The wafer directory can be made and written (checked by the runner's path check on the
    journal's path, after making the directories)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFileError(f"{clip(str(directory), 120)}: cannot create the wafer directory "
                           f"({exc.strerror or exc})") from None
    check_out_path(directory / JOURNAL)


def resume_wafer(directory: str | Path, *, progress: WaferProgress | None = None,
                 prompt: Callable[[str], str] | None = None) -> WaferSummary:
    """Continue a wafer run from its journal: the first device not done or skipped onwards.

    The protocols and the bench must be unchanged since the start (their texts' hashes are in
    the journal's header). A manual run (the header's ``manual``) is resumed in manual mode:
    ``prompt`` asks the operator again, from the next unmeasured device.
    """
    directory = Path(directory)
    journal_path = directory / JOURNAL
    if not journal_path.is_file():
        raise RunFileError(f"{clip(str(directory), 120)}: no wafer journal ({JOURNAL}) here; "
                           "give the wafer's directory (OUT/<wafer id>)")
    records = WaferJournal.records(journal_path)
    if not records or records[0].get("type") != "wafer":
        raise RunFileError(f"{clip(str(journal_path), 120)}: not a wafer journal")
    head = records[0]
    bench_path = Path(head["bench_path"])
    if not bench_path.is_file():
        raise RunFileError(f"the bench file {clip(str(bench_path), 120)} of this wafer run is "
                           "missing; resume needs the same bench")
    bench_text, config = _read_bench(bench_path)
    if _sha(bench_text) != head["bench_sha256"]:
        raise RunFileError(f"the bench file {clip(str(bench_path), 120)} changed since the "
                           "wafer run started; resume needs the same bench")
    manual = bool(head.get("manual", False))
    _check_bench(config, bench_path, manual)
    plans, texts = _compile([p["ref"] for p in head["protocols"]], bench_path)
    for p, text in zip(head["protocols"], texts, strict=True):
        if _sha(text) != p["sha256"]:
            raise RunFileError(f"protocol {clip(p['ref'], 60)!r} changed since the wafer run "
                               "started; resume needs the same protocols")
    job = _Job(directory, head["wafer_id"], bench_path, bench_text, config,
               [p["ref"] for p in head["protocols"]], plans, texts, head.get("map"),
               [tuple(d) for d in head["dies"]] if head.get("dies") is not None else None,
               head.get("sites"), head["kind"], head.get("bin_skipped"),
               ContactCheck(**head["contact"]), head.get("operator"), manual)
    return _Engine(job, records, progress, prompt).run()


class _Engine:
    """One pass over the wafer on one open instrument set (a fresh run or a resume)."""

    def __init__(self, job: _Job, records: list[dict[str, Any]] | None,
                 progress: WaferProgress | None,
                 prompt: Callable[[str], str] | None = None) -> None:
        self.job = job
        self.prompt = prompt
        self.records = records
        self.progress = progress
        self.journal: WaferJournal | None = None
        self.summary = WaferSummary(job.directory, 0)
        self.instruments: InstrumentSet | None = None
        self.device_s = sum(st.duration_s for p in job.plans for st in p.steps)

    # -- bookkeeping ---------------------------------------------------------------------
    def _header(self) -> dict[str, Any]:
        j = self.job
        return {
            "type": "wafer", "version": JOURNAL_VERSION, "wafer_id": j.wafer_id,
            "created": datetime.now(timezone.utc).isoformat(),
            "bench_path": str(j.bench_path.resolve()), "bench_sha256": _sha(j.bench_text),
            "protocols": [{"ref": r, "name": p.protocol, "sha256": _sha(t)}
                          for r, p, t in zip(j.refs, j.plans, j.texts, strict=True)],
            "map": j.map_path, "dies": j.dies, "sites": j.sites, "kind": j.kind,
            "bin_skipped": j.bin_skipped, "contact": asdict(j.contact), "operator": j.operator,
            "manual": j.manual,
        }

    def _emit(self, **kw: Any) -> None:
        if self.progress is not None:
            s = self.summary
            self.progress(WaferEvent(total=s.total, done=s.done, skipped=s.skipped,
                                     device_s=self.device_s, **kw))

    def _log(self, record: dict[str, Any]) -> None:
        assert self.journal is not None
        self.journal.append(record)

    # -- the pass ------------------------------------------------------------------------
    def run(self) -> WaferSummary:
        j = self.job
        config = j.config
        if j.manual:  # a remote prober on the bench stays closed: the operator places needles
            config = replace(config, roles={k: v for k, v in config.roles.items()
                                            if k != PROBER_ROLE})
        with signals_raise(), InstrumentSet(config) as instruments:
            self.instruments = instruments
            prober: Any = None if j.manual else instruments[PROBER_ROLE]
            try:
                devices = self._devices(prober)
                if j.manual:
                    prober = (ManualProber(devices) if self.prompt is None
                              else ManualProber(devices, prompt=self.prompt))
                self.summary.total = len(devices)
                states = device_states(self.records or [])
                for state in states.values():
                    if state["state"] == "done":
                        self.summary.done += 1
                    elif state["state"] == "skipped":
                        self.summary.skipped += 1
                        self.summary.reasons[device_dir(state["col"], state["row"],
                                                        state["site"])] = state["reason"]
                for index, device in enumerate(devices):
                    state = states.get(device, {}).get("state")
                    if state in ("done", "skipped"):
                        continue
                    self._device(prober, index, device, resumed=state == "measuring")
                prober.separate()
                self._log({"type": "end", "time": _now(), "done": self.summary.done,
                           "skipped": self.summary.skipped})
            except BaseException as exc:
                # the instruments' safe state first, then the needles up
                safe_state_except(instruments, _SPARE)
                if prober is not None:
                    try:
                        prober.safe_state()
                    except Exception:
                        pass
                if isinstance(exc, OperatorAbort) and self.journal is not None:
                    self._log({"type": "abort", "time": _now(), "reason": str(exc)})
                    raise WaferAborted(f"{exc}; `dendrolab wafer resume "
                                       f"{clip(str(j.directory), 120)}` continues",
                                       self.summary) from None
                raise
            finally:
                if self.journal is not None:
                    self.journal.close()
        return self.summary

    def _devices(self, prober: Any) -> list[Device]:
        """The selected devices in route order; opens (or creates) the journal."""
        j = self.job
        route = next((r for r in self.records or [] if r.get("type") == "route"), None)
        if not j.manual:
            remote = getattr(prober, "remote_mode", None)
            if callable(remote):
                remote()
            prober.separate()
        if route is not None:  # a resumed wafer: the route is the journalled one
            self.journal = WaferJournal.reopen(j.directory / JOURNAL)
            self._log({"type": "resume", "time": _now()})
            return [tuple(d) for d in route["devices"]]  # type: ignore[misc]
        if j.manual:
            devices = _manual_devices(j.dies, j.sites)
            route = {"type": "route", "manual": True, "dies": [list(d) for d in j.dies or []],
                     "n_sites": None}
        else:
            if j.map_path:
                prober.load_map(j.map_path)
            dies, n_sites = _walk_route(prober)
            devices = _select(dies, n_sites, j.dies, j.sites)
            route = {"type": "route", "dies": dies, "n_sites": n_sites}
        route["devices"] = [list(d) for d in devices]
        if self.records is None:
            self.journal = WaferJournal.create(j.directory / JOURNAL, self._header())
        else:
            self.journal = WaferJournal.reopen(j.directory / JOURNAL)
        self._log(route)
        return [tuple(d) for d in devices]

    def _device(self, prober: Any, index: int, device: Device, *, resumed: bool) -> None:
        j = self.job
        col, row, site = device
        self._emit(kind="device", index=index, device=device)
        prober.separate()                        # never step with the needles down
        placed = prober.goto(col, row, site)
        if placed is None:                       # a manual station's operator skipped it
            self._skip(prober, index, device, {"type": "device", "col": col, "row": row,
                                               "site": site, "label": site_label(site)},
                       OPERATOR_SKIPPED)
            return
        prober.contact()
        pos = prober.where()                     # re-read and record where we really are
        where = {"x_um": pos.x_um, "y_um": pos.y_um, "z_um": pos.z_um}
        if (pos.col, pos.row) != (col, row) or (pos.site is not None and pos.site != site):
            prober.separate()
            raise DendrolabError(f"the prober reports die ({pos.col}, {pos.row}) subsite "
                                 f"{pos.site} after stepping to ({col}, {row}) subsite {site}")
        verdict, reading = self._contact_check()
        base = {"type": "device", "col": col, "row": row, "site": site,
                "label": site_label(site), **where, "contact": verdict, **reading}
        if verdict != "ok":
            self._skip(prober, index, device, base, f"contact: {verdict}")
            return
        self._log({**base, "state": "measuring", "resumed": resumed, "time": _now()})
        attrs = {"die_col": col, "die_row": row, "subsite_id": site,
                 "subsite_label": site_label(site), "x_um": where["x_um"],
                 "y_um": where["y_um"], "z_um": where["z_um"], "device_kind": j.kind,
                 "wafer_journal": JOURNAL}
        info = RunInfo(wafer_id=j.wafer_id, die_id=f"{col},{row}")
        if j.operator is not None:
            info.operator = j.operator
        folder = j.directory / device_dir(col, row, site)
        folder.mkdir(exist_ok=True)
        for plan, text in zip(j.plans, j.texts, strict=True):
            path = run_file(j.directory, device, plan.protocol)

            def step_done(step: Any, duration_s: float, _name: str = plan.protocol) -> None:
                self._emit(kind="step", index=index, device=device, protocol=_name,
                           step=step.index, duration_s=duration_s)

            how = self._run_one(plan, text, path, info, attrs, step_done)
            self._log({"type": "run", "col": col, "row": row, "site": site,
                       "protocol": plan.protocol, "how": how,
                       "file": str(path.relative_to(j.directory))})
            limit = _compliance_hit(plan, path)
            if limit is not None:
                self._skip(prober, index, device, base,
                           f"compliance: {plan.protocol} reached {limit:.3g} A")
                return
        prober.separate()
        self.summary.done += 1
        self.summary.measured_now += 1
        self._log({**base, "state": "done", "time": _now()})
        self._emit(kind="device_done", index=index, device=device, state="done")

    def _run_one(self, plan: Plan, text: str, path: Path, info: RunInfo,
                 attrs: dict[str, Any], step_done: Callable[[Any, float], None]) -> str:
        """Run a protocol at the current device: ``ran``, ``kept`` (complete already) or
        ``resumed`` (an unfinished file continued with the runner's resume logic)."""
        j = self.job
        assert self.instruments is not None
        if path.exists():
            with RunReader(path) as reader:
                status = reader.status
            if status == "completed":
                return "kept"
            resume_plan(plan, self.instruments, path, progress=step_done, spare=_SPARE)
            return "resumed"
        run_plan(plan, self.instruments, path, protocol_text=text, bench_text=j.bench_text,
                 bench_path=str(j.bench_path.resolve()), info=info, attrs=attrs,
                 progress=step_done, spare=_SPARE)
        return "ran"

    def _skip(self, prober: Any, index: int, device: Device, base: dict[str, Any],
              reason: str) -> None:
        j = self.job
        if j.bin_skipped is not None:
            prober.bin(j.bin_skipped)
        prober.separate()
        self.summary.skipped += 1
        self.summary.reasons[device_dir(*device)] = reason
        self._log({**base, "state": "skipped", "reason": reason, "time": _now()})
        self._emit(kind="device_done", index=index, device=device, state="skipped",
                   reason=reason)

    def _contact_check(self) -> tuple[str, dict[str, Any]]:
        c = self.job.contact
        assert self.instruments is not None
        smu = self.instruments[CONTACT_ROLE]
        smu.configure_source_voltage(c.compliance_a)
        smu.configure_measure(nplc=c.nplc)
        smu.set_voltage(c.level_v)
        smu.output_on()
        try:
            r = smu.measure_iv()
            tripped = smu.in_compliance()
        finally:
            smu.set_voltage(0.0)
            smu.output_off()
        verdict = c.verdict(r.current_a, tripped)
        return verdict, {"contact_v": r.voltage_v, "contact_a": r.current_a,
                         "contact_tripped": tripped}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _walk_route(prober: Any) -> tuple[list[list[int]], int]:
    """Read the station's route with the needles separated: its dies in order, and the
    number of subsites (walked on the first die)."""
    pos = prober.first()
    guard = 0
    while not pos.last_site:
        pos = prober.next_subsite()
        guard += 1
        if guard > 10_000:
            raise DendrolabError("the prober never reports the last subsite of a die")
    n_sites = (pos.site or 0) + 1
    dies = [[pos.col, pos.row]]
    while True:
        nxt = prober.next()
        if nxt is None:
            break
        if [nxt.col, nxt.row] in dies:
            raise DendrolabError(f"the prober's route visits die ({nxt.col}, {nxt.row}) twice")
        dies.append([nxt.col, nxt.row])
        if len(dies) > 100_000:
            raise DendrolabError("the prober's route does not end")
    return dies, n_sites


def _select(dies: list[list[int]], n_sites: int, want_dies: list[tuple[int, int]] | None,
            want_sites: list[int] | None) -> list[Device]:
    route = [tuple(d) for d in dies]
    if want_dies is not None:
        missing = [d for d in want_dies if d not in route]
        if missing:
            c, r = missing[0]
            raise ParameterError(f"--dies: no die at column {c}, row {r} on the station's "
                                 f"route ({len(route)} dies)")
        route = [d for d in route if d in want_dies]
    sites = list(range(n_sites)) if want_sites is None else want_sites
    bad = [s for s in sites if s >= n_sites]
    if bad:
        raise ParameterError(f"--sites: subsite {site_label(bad[0])} ({bad[0]}) is not on this "
                             f"map (subsites 0..{n_sites - 1})")
    return [(int(c), int(r), int(s)) for c, r in route for s in sites]


def _compliance_hit(plan: Plan, path: Path) -> float | None:
    """The compliance limit a run reached (|I| >= 99.9 % of its ``smu.setup`` limit), else
    None."""
    limits = [float(s.params["limit_a"]) for s in plan.steps if s.action == "smu.setup"]
    if not limits:
        return None
    limit = min(limits)
    with RunReader(path) as reader:
        for s in reader.steps:
            current = reader.step(s.name).arrays.get("current_a")
            if current is not None and np.size(current) and (
                    np.nanmax(np.abs(current)) >= 0.999 * limit):
                return limit
    return None


def journal_devices(directory: str | Path) -> Iterator[dict[str, Any]]:
    """The final record of every device of a wafer run (for analysis and tests)."""
    yield from device_states(WaferJournal.records(Path(directory) / JOURNAL)).values()


__all__ = [
    "CONTACT_ROLE",
    "JOURNAL",
    "OPERATOR_SKIPPED",
    "PROBER_ROLE",
    "SITE_NAMES",
    "ContactCheck",
    "WaferAborted",
    "WaferEvent",
    "WaferJournal",
    "WaferSummary",
    "device_states",
    "journal_devices",
    "parse_dies",
    "parse_sites",
    "resume_wafer",
    "run_file",
    "run_wafer",
]
