"""Fast paths of the per-point transport (issue 10) against the generic paths, bit for bit.

Each fast path (the library's whole-message write, the SCPI one-number shape, the bench's
plain measurement and source, the 2450's inlined voltage-source reading, the dendrite's scalar
hold and read) is run side by side with the general code it shortcuts, on identical twins, and
every reply, error, reading, buffer row and device state must be the same float for float.
"""

from __future__ import annotations

import dataclasses
import math
import random
import shutil
import struct

import numpy as np
import pytest
import pyvisa
from pyvisa import constants

from sim_backend.bench import PORTS, Bench, Reading
from sim_backend.duts import DendriteDut
from sim_backend.instruments.k2450 import Keithley2450Sim
from sim_backend.physics.dendrite import ARG_MAX, BDT_MAX, SINH_MAX, DendriteArray
from sim_backend.physics.presets import load_models
from sim_backend.physics.rng import device_keys
from sim_backend.visa import DendroSimVisaLibrary, default_bench_path

SMU = "USB0::0x05E6::0x2450::04488850::INSTR"


def bits(x: float) -> bytes:
    """A float's exact bits (so -0.0 != 0.0 and NaN == NaN of the same payload)."""
    return struct.pack("<d", x)


def same(a: object, b: object) -> bool:
    """Equal, floats compared by their bits, recursively through tuples and lists."""
    if isinstance(a, float) and isinstance(b, float):
        return bits(a) == bits(b)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


# ------------------------------------------------------------------------------------------
# DendriteDut: the scalar hold/read with the min/max calls and current() inlined


def reference_hold(dut: DendriteDut, v: float, dt: float) -> None:
    """``DendriteDut.hold`` as written before issue 10 (builtin min/max, ``math`` calls)."""
    if not dt > 0:
        return
    sign = (v > 0) - (v < 0)
    if sign != dut._pol:
        if sign != 0:
            dut._start_pulse()
        dut._pol = sign
    w = dut._w
    if sign == 0:
        dut._w = w * math.exp(-min(dt * dut.inv_tau, BDT_MAX))
        return
    if v == dut._rate_v:
        b, target = dut._rate_b, dut._rate_target
    else:
        if sign > 0:
            r_p = dut._kp_eff * math.expm1(min(v * dut.inv_vp, ARG_MAX))
            r_m = 0.0
        else:
            r_p = 0.0
            r_m = dut._km_eff * math.expm1(min(-v * dut.inv_vm, ARG_MAX))
        b = r_p + r_m + dut.inv_tau
        target = r_p / b
        dut._rate_v, dut._rate_b, dut._rate_target = v, b, target
    em = math.expm1(-min(b * dt, BDT_MAX))
    dut._w = min(max(w + w * em - target * em, 0.0), 1.0)


def reference_read(dut: DendriteDut, v: float) -> float:
    """``DendriteDut.read`` before issue 10: ``current`` + the draw block's call."""
    x = max(-SINH_MAX, min(SINH_MAX, v / dut.v0))
    i = dut.conductance(dut._w) * dut.v0 * math.sinh(x)
    i = dut.kappa * i if v < 0 else i
    if dut.read_sigma:
        i *= 1.0 + dut.read_sigma * dut._read(dut.reads)
        dut.reads += 1
    return i


def dut_state(dut: DendriteDut) -> tuple:
    return (dut._w, dut._pol, dut._events, dut._kp_eff, dut._km_eff, dut._rate_b,
            dut._rate_target, dut.reads)


@pytest.mark.parametrize("mapping, kappa", [("exponential", 1.0), ("linear", 0.4)])
def test_dendrite_scalar_hold_and_read_equal_the_reference_formulas(mapping, kappa):
    params = dataclasses.replace(load_models("li2020-original").dendrite, mapping=mapping,
                                 kappa_rect=kappa)
    keys = device_keys(2, 0, 1, np.array([9]))
    fast = DendriteDut(DendriteArray(params, keys=keys))
    ref = DendriteDut(DendriteArray(params, keys=keys))
    assert fast.scalar and fast.read_sigma > 0
    rng = random.Random(4)
    special_v = [0.0, -0.0, 1e-300, -1e-300, 700.0, -700.0, 1e4, -1e4, 30.0, math.nan]
    special_dt = [0.0, -1.0, 5e-324, 1e-12, 1e3, 1e300, math.nan]
    for step in range(3000):
        v = (rng.choice(special_v) if rng.random() < 0.05 else
             rng.choice([rng.uniform(-6, 6), rng.uniform(0, 0.5), 0.0]))
        if step % 3 == 0 and not math.isnan(fast._rate_v):
            v = fast._rate_v  # the same level again: the cached rates
        dt = rng.choice(special_dt) if rng.random() < 0.05 else 10 ** rng.uniform(-7, -1)
        fast.hold(v, dt)
        reference_hold(ref, v, dt)
        assert same(dut_state(fast), dut_state(ref)), (step, v, dt)
        if math.isnan(fast._w):  # a NaN hold poisons the state identically: start over
            fast._w = ref._w = 0.3
        r = rng.choice(special_v) if rng.random() < 0.05 else rng.uniform(-1.0, 1.0)
        assert same(fast.read(r), reference_read(ref, r)), (step, r)
    assert fast.reads == 3000 and fast.reads > 256  # several draw blocks were fetched


# ------------------------------------------------------------------------------------------
# Bench: source/measure with _sync, _refresh, _read_port and _clamp inlined


def reference_source(bench: Bench, terminal: str, level: float | None) -> None:
    """``Bench.source`` before issue 10 (``_sync`` and ``_refresh`` by ``_port_voltage``)."""
    targets = bench._targets.get(terminal, ())
    for slot, _port, _main in targets:
        bench._sync(slot)
    if level is None:
        bench.levels.pop(terminal, None)
    else:
        bench.levels[terminal] = float(level)
    for slot, _port, _main in targets:
        slot.v = bench._port_voltage(slot.name, PORTS[slot.kind][0])
        if slot.kind == "synapse":
            slot.dut.gate_v = bench._port_voltage(slot.name, "gate")


def reference_measure(bench: Bench, terminal: str, aperture_s: float,
                      limit_a: float | None) -> Reading:
    """``Bench.measure``'s plain path before issue 10 (``_sync`` then ``_read_port``)."""
    aperture = max(aperture_s, 0.0)
    targets = bench._targets[terminal]
    assert bench._plain[terminal]
    bench.now_s += aperture / 2
    total_i, v_dev, tripped = 0.0, bench.levels.get(terminal, 0.0), False
    for slot, _port, _main in targets:
        bench._sync(slot)
        i, v_dev, t = bench._read_port(slot, limit_a, 0.0)
        total_i += i
        tripped = tripped or t
    bench.now_s += aperture / 2
    return Reading(total_i, v_dev, tripped, bench.now_s)


def make_bench() -> Bench:
    """Noisy devices of three kinds; ``smu/1`` and ``awg/1`` share dendrite ``d``, ``multi/1``
    reaches two dendrites, ``soma/1`` a self-limiting soma, ``arr/1``+``arr/2`` a 1T1R cell."""
    return Bench({
        "seed": 5, "models": "li2020-original",
        "devices": {"d": {"kind": "dendrite", "device": 0}, "e": {"kind": "dendrite", "device": 1},
                    "s": {"kind": "soma", "device": 2}, "c": {"kind": "synapse", "device": 3}},
        "wiring": {"smu/1": "d", "awg/1": "d", "multi/1": ["d", "e"], "soma/1": "s",
                   "arr/1": "c", "arr/2": "c.gate"},
    })


def bench_state(bench: Bench) -> list:
    out: list = [bench.now_s, sorted(bench.levels.items())]
    for name, slot in sorted(bench.slots.items()):
        out += [name, slot.t_s, slot.v, getattr(slot.dut, "gate_v", 0.0)]
        dut = slot.dut
        if isinstance(dut, DendriteDut):
            out += list(dut_state(dut))
    return out


def test_bench_source_and_plain_measure_equal_the_generic_steps():
    fast, ref = make_bench(), make_bench()
    rng = random.Random(8)
    terminals = ["smu/1", "awg/1", "multi/1", "soma/1", "arr/1", "arr/2"]
    trips = 0
    for step in range(2500):
        term = rng.choice(terminals)
        dt = rng.choice([0.0, 1e-4, 10 ** rng.uniform(-6, -2)])
        fast.advance(dt)
        ref.advance(dt)
        if rng.random() < 0.5:
            level = rng.choice([None, 0.0, rng.uniform(-1, 1), rng.uniform(0, 0.5),
                                rng.uniform(1, 4), 3])
            fast.source(term, level)
            reference_source(ref, term, level)
        elif fast._plain[term]:  # (a gate terminal measures through the generic path)
            aperture = rng.choice([0.0, 2e-4, 2e-2, -1.0])
            limit = rng.choice([None, 1e-3, 1e-6, 1e-8, 2e-7])
            got = fast.measure(term, aperture, limit)
            want = reference_measure(ref, term, aperture, limit)
            assert type(got) is Reading
            assert same(tuple(got), tuple(want)), (step, term)
            trips += got.tripped
        assert same(bench_state(fast), bench_state(ref)), step
    assert trips > 20  # the compliance clamp was exercised


# ------------------------------------------------------------------------------------------
# 2450: the inlined voltage-source reading in _take, the one-number SCPI shape


def make_2450() -> Keithley2450Sim:
    bench = Bench({"seed": 1, "models": "li2020-original",
                   "devices": {"d1": {"kind": "dendrite", "device": 0}},
                   "wiring": {"smu/1": "d1", "pulse/1": "d1"}})
    return Keithley2450Sim(bench, "smu")


SETUP = b':SOUR:FUNC VOLT;:SOUR:VOLT:ILIM 1e-3;:SENS:FUNC "CURR";:SENS:CURR:NPLC 0.01;:OUTP ON'


def test_spot_reading_equals_smu_channel_measure():
    fast, ref = make_2450(), make_2450()
    for m in (fast, ref):
        assert m.handle(SETUP) is None
    rng = random.Random(3)
    for step in range(800):
        level = rng.uniform(-0.5, 2.0)
        for m in (fast, ref):
            m.ch.level_v = level
            m.ch.ilim = 1e-3 if step % 5 else 2e-7  # some readings trip
            m.ch.apply()
            m._delay_pending = False
        row = fast._take(1, fast.buffers["defbuffer1"])
        aperture = ref._aperture()
        want = ref._record(ref.ch.measure(aperture), level)
        ref.buffers["defbuffer1"].append(want)
        assert same(row, want), step
        assert same(bench_state(fast.bench), bench_state(ref.bench))
    cols = [fast.buffers["defbuffer1"].rows(1, 800), ref.buffers["defbuffer1"].rows(1, 800)]
    assert all(np.array_equal(a, b) for a, b in zip(*cols, strict=True))


def level_text(rng: random.Random) -> str:
    x = rng.choice([rng.uniform(0, 0.5), rng.uniform(-300, 300), 10 ** rng.uniform(-9, 3)])
    return rng.choice([format(x, ".9g"), f"{x:.6f}", f"{x:+.3E}", f"{abs(x):.0f}", repr(x),
                       "MAX", "DEF", "0.1 V", "1e", "-.5", "+0", "1.5e-3"])


def test_one_number_messages_equal_a_fresh_parse_on_the_2450():
    """New levels (and out-of-range or malformed ones) through the shape cache's one-command
    path and through the uncached parser: same replies, errors, readings and device state."""
    fast, ref = make_2450(), make_2450()
    for m in (fast, ref):
        m.handle(SETUP)
    rng = random.Random(12)
    for step in range(1500):
        kind = rng.random()
        if kind < 0.6:
            message = f":SOUR:VOLT {level_text(rng)}"
        elif kind < 0.8:
            message = f":SOUR:VOLT {level_text(rng)};:READ?"
        elif kind < 0.9:
            message = f":SOUR:VOLT:ILIM {rng.choice(['1e-3', '2e-7', '1e-8'])}"
        else:
            message = ":READ?"
        data = message.encode()
        assert same(fast.handle(data), ref._handle_parse(data)), (step, message)
        assert list(fast.errors) == list(ref.errors), (step, message)
        assert same(bench_state(fast.bench), bench_state(ref.bench)), (step, message)
        if rng.random() < 0.5:
            for m in (fast, ref):
                m._handle_parse(b":READ?")
    n = fast.buffers["defbuffer1"].count
    assert n == ref.buffers["defbuffer1"].count and n > 500
    a, b = fast.buffers["defbuffer1"].rows(1, n), ref.buffers["defbuffer1"].rows(1, n)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert Keithley2450Sim._scpi_single  # the one-number path was taken


# ------------------------------------------------------------------------------------------
# The library: whole-message writes (inlined) against messages written in pieces


@pytest.fixture
def twin_smus(tmp_path):
    """The default bench loaded twice (two files: two libraries, two benches)."""
    managers, smus = [], []
    for name in ("a.yaml", "b.yaml"):
        path = tmp_path / name
        shutil.copy(default_bench_path(), path)
        rm = pyvisa.ResourceManager(f"{path}@dendrosim")
        res = rm.open_resource(SMU, read_termination="\n", write_termination="\n")
        managers.append(rm)
        smus.append(res)
    yield smus
    for res, rm in zip(smus, managers, strict=True):
        res.close()
        rm.close()


def test_whole_message_writes_equal_messages_written_in_pieces(twin_smus):
    whole, pieces = twin_smus
    lib = pieces.visalib
    assert isinstance(lib, DendroSimVisaLibrary) and lib is not whole.visalib
    rng = random.Random(2)
    messages = [SETUP.decode()]
    for _ in range(600):
        messages.append(f":SOUR:VOLT {level_text(rng)}")
        messages.append(rng.choice([":READ?", ":SYST:ERR?", ':READ? "defbuffer1",READ,REL']))
    replies: list[list[str]] = [[], []]
    for message in messages:
        whole.write(message)
        data = (message + "\n").encode()
        cut = rng.randrange(1, len(data))
        lib.write(pieces.session, data[:cut])  # the first piece has no EOM: kept pending
        lib.write(pieces.session, bytearray(data[cut:]))
        if message.endswith("?"):
            replies[0].append(whole.read())
            replies[1].append(pieces.read())
    assert replies[0] == replies[1]
    assert same(bench_state(whole.visalib.bench), bench_state(lib.bench))


def test_ignore_warning_does_what_pyvisas_generator_does(twin_smus):
    res = twin_smus[0]
    lib, session = res.visalib, res.session
    codes = (constants.StatusCode.success_device_not_present,
             constants.StatusCode.success_max_count_read)
    ignored = lib._ignore_warning_in_session[session]
    before = set(ignored)
    with lib.ignore_warning(session, *codes) as entered:
        assert entered is None and set(codes) <= ignored
    assert ignored == before
    with pytest.raises(RuntimeError), lib.ignore_warning(session, *codes):
        raise RuntimeError  # an exception leaves the codes in place, as the generator does
    assert set(codes) <= ignored


def test_auto_source_delay_equals_the_range_table_lookup():
    """``_source_delay`` tests |level| against one threshold instead of ``pick_range``."""
    from sim_backend.instruments.k2450 import (
        _V_LOW_TOP,
        AUTO_DELAY_V,
        AUTO_DELAY_V200,
        V_RANGES,
    )
    from sim_backend.instruments.smu_common import pick_range

    m = make_2450()
    edge = 20.0 * (1 + 1e-9)
    levels = [0.0, -0.0, 0.3, -19.99, 20.0, -20.0, edge, -edge, math.nextafter(edge, 0.0),
              math.nextafter(edge, 99.0), 21.0, -150.0, 200.0, 210.0, math.inf, math.nan]
    assert _V_LOW_TOP == edge
    for level in levels:
        r = pick_range(V_RANGES, level)
        want = AUTO_DELAY_V200 if (r if r is not None else V_RANGES[-1]) > 20.0 else AUTO_DELAY_V
        assert m._source_delay(level) == want, level
        m.ch.level_v = level
        assert m._source_delay() == want, level


@pytest.mark.parametrize("sense, name", [(0, "CURR"), (1, "VOLT")])
def test_auto_measure_range_equals_the_range_table_lookup(sense, name):
    """``_record`` bisects the range tops instead of looping in ``pick_range``."""
    from sim_backend.instruments.k2450 import I_RANGES, V_RANGES
    from sim_backend.instruments.smu_common import Sample, pick_range

    m = make_2450()
    m.sense = sense
    ranges = I_RANGES if sense == 0 else V_RANGES
    values = [0.0, -0.0, math.nan, math.inf, -math.inf, 1e-30, 5e6]
    for r in ranges:
        top = r * (1 + 1e-9)
        values += [r, -r, top, -top, math.nextafter(top, 0.0), math.nextafter(top, math.inf)]
    values += [10 ** random.Random(1).uniform(-12, 3) for _ in range(300)]
    for value in values:
        m.meas_range[name] = "unset"
        sample = Sample(value, value, False, 0.0)
        m._record(sample, 0.0)
        want = pick_range(ranges, value)
        assert m.meas_range[name] == (want if want is not None else "unset"), value


# ------------------------------------------------------------------------------------------
# Issue 14: the array's remembered read plans and pre-drawn read noise, the bench's kept
# group arrays, the B2900's two-channel spot reply and the 707B's remembered channel lists


def reference_line_current(dut, letter: str, index) -> float:
    """``ArrayDut._line_current`` (noisy) as written before issue 14: plan and draws per read."""
    from sim_backend.array_dut import READ_STREAM
    from sim_backend.physics import rng

    if letter == "g":
        return 0.0
    gate_on = dut.v_gate > 0
    lines = np.atleast_1d(np.asarray(index, dtype=np.intp))
    if letter == "r":
        rows, cols = lines, np.flatnonzero(gate_on)
    else:
        rows, cols = np.arange(dut.rows), lines[gate_on[lines]]
    if rows.size == 0 or cols.size == 0:
        return 0.0
    if letter == "s" and cols.size > 1:
        rows, cols = np.repeat(rows[None, :], cols.size, 0).ravel(), np.repeat(cols, rows.size)
        v = dut.v_row[rows] - dut.v_src[cols]
        idx = rows * dut.cols + cols
    else:
        v = (dut.v_row[rows][:, None] - dut.v_src[cols][None, :]).ravel()
        idx = (rows[:, None] * dut.cols + cols[None, :]).ravel()
    cells = dut.cells
    i = cells.g_s[idx] * v * (1.0 + cells.p["eps_nl"][idx] * v * v)
    ev = cells.n_reads[idx]
    cells.n_reads[idx] = ev + 1
    sigma = cells.params.read_noise_rel
    if sigma:
        i = i * (1.0 + sigma * rng.normal(cells.keys[idx], READ_STREAM, ev))
    total = float(i.sum())
    return total if letter == "r" else -total


def make_array_twins(rows: int = 6, cols: int = 5):
    from sim_backend.duts import make_array

    models = load_models("li2020-original")
    return [make_array(models, device_keys(3, 0, 0, np.arange(rows * cols)), rows, cols)
            for _ in range(2)]


def test_array_reads_with_predrawn_noise_equal_the_per_read_draws():
    """Reads of rows, of joined rows, of source lines under several word lines, with the
    cells' counters moved in between (a whole-array read, a jump), sigma changed and the keys
    replaced: every reading and counter is the per-read formula's, bit for bit."""
    fast, ref = make_array_twins()
    rnd = random.Random(7)
    n = fast.rows * fast.cols
    readings = 0
    for step in range(400):
        gates = np.array(sorted(rnd.sample(range(fast.cols), rnd.randint(0, 3))), dtype=np.intp)
        rows_on = np.array(sorted(rnd.sample(range(fast.rows), rnd.randint(1, fast.rows))),
                           dtype=np.intp)
        lines = [("r", rows_on, rnd.choice((0.1, 0.2, -0.15))), ("g", gates, 1.6),
                 ("s", np.arange(fast.cols), rnd.choice((0.0, 0.05)))]
        for dut in (fast, ref):
            dut.set_lines(lines)
        letter = rnd.choice("rrssg")
        if letter == "r":
            index = (rnd.randrange(fast.rows) if rnd.random() < 0.3
                     else np.array([1, 1, 4] if rnd.random() < 0.2 else [0, 2, 3], np.intp))
        else:
            index = np.arange(fast.cols) if rnd.random() < 0.7 else rnd.randrange(fast.cols)
        got = fast.read_line(letter, index)
        want = reference_line_current(ref, letter, index)
        assert bits(got) == bits(want), (step, letter, index)
        readings += got != 0.0
        if step % 37 == 5:  # every cell's counter moves (SynapseArray.read)
            for dut in (fast, ref):
                dut.cells.read(0.1)
        if step % 53 == 9:  # one cell's counter jumps past its block
            cell = rnd.randrange(n)
            for dut in (fast, ref):
                dut.cells.n_reads[cell] += 1000
        if step == 150:
            for dut in (fast, ref):
                dut.cells.params = dut.cells.params.replace(read_noise_rel=0.05)
        if step == 250:
            for dut in (fast, ref):
                dut.cells.keys = device_keys(4, 0, 0, np.arange(n))
        np.testing.assert_array_equal(fast.cells.n_reads, ref.cells.n_reads)
    assert readings > 150


def test_array_rate_bound_equals_the_reference_formula():
    """The bound (kept parts: max|v_row|, |v_src|) after lines change in place, one kind at a
    time (word lines only, as a board steps them; a bit line; a source line)."""
    dut = make_array_twins()[0]
    rnd = np.random.default_rng(2)
    for k in range(600):
        if k % 3 == 0:
            dut.v_row[rnd.integers(dut.rows)] = rnd.uniform(-1.5, 1.5)
        if k % 5 == 0:
            dut.v_src[rnd.integers(dut.cols)] = rnd.uniform(-0.5, 0.5)
        dut.v_gate[:] = rnd.choice([0.0, 1.6], dut.cols)
        gate_on = dut.v_gate > 0
        want = 0.0
        if gate_on.any():
            bound = float(np.abs(dut.v_row).max() + np.abs(dut.v_src[gate_on]).max())
            want = dut._k_max * math.exp(min(bound / dut._v0_min, 700.0))
        assert bits(dut._rate_bound()) == bits(want)


def test_bench_regrouping_keeps_the_groups_a_fresh_rebuild_makes():
    """Word-line and bit-line routes closed and opened at random: the array's line groups
    (and so its line voltages) are those of a bench rebuilt from scratch."""
    rows, cols = 4, 6
    wiring: dict[str, object] = {"src/1": [f"a1.s{j}" for j in range(1, cols + 1)]}
    bench = Bench({"seed": 1, "noise": False, "wiring": wiring,
                   "devices": {"a1": {"kind": "array", "rows": rows, "cols": cols}}})
    bench.source("row/1", 0.2)
    bench.source("gate/1", 1.6)
    bench.source("src/1", 0.0)
    rnd = random.Random(3)
    routes = ([f"r{i}" for i in range(1, rows + 1)] + [f"g{j}" for j in range(1, cols + 1)])
    for _ in range(300):
        name = rnd.choice(routes)
        if name in bench.routes:
            bench.open_route(name)
        else:
            term = "row/1" if name[0] == "r" else "gate/1"
            bench.close_route(name, [(term, f"a1.{name}")])
        got = {(terms, letter, tuple(idx.tolist()))
               for terms, letter, idx in bench._array_fed["a1"][1]}
        lines = [bench.device("a1").v_row.copy(), bench.device("a1").v_gate.copy()]
        bench._rebuild()
        want = {(terms, letter, tuple(idx.tolist()))
                for terms, letter, idx in bench._array_fed["a1"][1]}
        assert got == want
        bench._refresh(bench.slots["a1"])
        np.testing.assert_array_equal(bench.device("a1").v_row, lines[0])
        np.testing.assert_array_equal(bench.device("a1").v_gate, lines[1])


def test_b2900_two_channel_spot_reply_equals_the_general_path():
    """``:MEAS:CURR? (@1,2)``'s reply without arrays: the same bytes as the general
    interleaving path, with NaN, infinities, -0.0 and a channel with no data."""
    from sim_backend.instruments.b2900 import ELEMENTS, KeysightB2900Sim

    bench = Bench({"seed": 1, "noise": False,
                   "devices": {"d1": {"kind": "dendrite"}, "d2": {"kind": "dendrite"}},
                   "wiring": {"smu/1": "d1", "smu/2": "d2"}})
    m = KeysightB2900Sim(bench, "smu")
    rows = [(0.2, 1.5e-6, math.nan, 0.001, 0.0, 0.2), (-0.0, math.inf, -math.inf, 2.0, 8.0, 1),
            (1e-300, -2.5e-12, 3.0, 0.5, 0.0, 0.0)]
    for first in [*rows, None]:
        for second in [*rows, None]:
            m.chans[1].data = [] if first is None else [first]
            m.chans[2].data = [] if second is None else [second]
            for elements in (("CURR",), ("VOLT", "CURR"), ELEMENTS):
                fast = m._data([1, 2], elements, latest=True)
                general = m._data([1, 2], elements, latest=False)  # one row: the same rows
                assert fast == general, (first, second, elements)


def test_707b_remembered_channel_lists_parse_and_fail_as_before():
    from sim_backend.instruments.k707b import Keithley707BSim
    from sim_backend.tsp import TspRuntimeError

    bench = Bench({"seed": 1, "noise": False, "devices": {"d1": {"kind": "dendrite"}}})
    channel = Keithley707BSim(bench, "mx", {"idn": "Keithley Instruments Inc., Model 707B, "
                                                   "1, 1.0"}).channel
    for spec in ("1A01", "1A01:1B03, 2C12", "slot2", "1a05;1A06"):
        first = channel._parse_list(spec, "open", scopes=True)
        got = channel._parse(spec, "open", scopes=True)
        assert got == first
        got.append((9, "Z", 99))  # the caller's list is its own
        assert channel._parse(spec, "open", scopes=True) == first
    for spec in ("1A13", "slot2", "9A01", ""):
        for _ in range(2):  # refused every time, never remembered
            with pytest.raises(TspRuntimeError):
                channel._parse(spec, "close", scopes=False)


# ------------------------------------------------------------------------------------------
# Issue 15: write-verify programming -- one-cell pulses and reads on Python floats, the
# bench's in-place line updates, remembered SCPI choices


def test_one_draw_helpers_equal_the_array_draws():
    """``rng.normal_one``/``lognormal_one`` against one-element ``normal``/``lognormal``,
    over keys, streams and events (a negative one too), sigma 0 included."""
    from sim_backend.physics import rng

    keys = device_keys(11, 0, 0, np.arange(400))
    for k, key in enumerate(keys.tolist()):
        ev = (k * 7919) % 3000 - 5
        for stream in ("c2c.step", "c2c.add"):
            want = rng.normal(np.array([key], dtype=np.uint64), stream, ev)[0]
            assert bits(rng.normal_one(key, stream, ev)) == bits(float(want))
            for sigma in (0.0, 0.3):
                want = rng.lognormal(np.array([key], dtype=np.uint64), stream, sigma, ev)[0]
                assert bits(rng.lognormal_one(key, stream, sigma, ev)) == bits(float(want))


@pytest.mark.parametrize("overrides", [
    {}, {"stuck_fraction": 0.3, "relax_reset_fraction": 0.2},
    {"c2c_add_rel": 0.0, "c2c_sigma_ln": 0.0}, {"relax_drift_rel": 0.01},
])
def test_pulse_cell_equals_the_subset_pulse(overrides):
    """``SynapseArray.pulse_cell`` against ``take``/``pulse``/``put`` of that cell: SET and
    RESET, weak and saturating pulses, 0 V and 0 s, stuck cells, a relaxation law (its
    fallback) -- every state array the same bits."""
    import copy

    from dendrolab.errors import ParameterError
    from sim_backend.physics.synapse import SynapseArray, SynapseParams

    params = dataclasses.replace(SynapseParams(), **overrides)
    fast = SynapseArray(params, keys=device_keys(3, 0, 0, np.arange(60)))
    ref = copy.deepcopy(fast)
    rnd = random.Random(5)
    for _ in range(3000):
        i = rnd.randrange(fast.n)
        v = rnd.choice([1.15, -1.15, 0.8, -0.5, 0.2, 3.0, -30.0, 0.0]) * rnd.choice([1, 0.97])
        w = rnd.choice([8e-5, 2e-5, 1e-6, 1e-3, 0.0, 1e-9])
        gate = rnd.choice([1.6, 1.0, 0.5, 0.0])
        fast.pulse_cell(i, v, w, gate)
        idx = np.array([i])
        sub = ref.take(idx)
        sub.pulse(np.array([v]), w, np.array([gate]))
        ref.put(idx, sub)
    for name in SynapseArray.STATE:
        got, want = getattr(fast, name), getattr(ref, name)
        assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), name
    assert fast.n_pulses.sum() > 1000
    with pytest.raises(ParameterError):
        fast.pulse_cell(0, 1.0, -1e-6, 1.6)


def reference_array_hold(dut, dt: float) -> None:
    """``ArrayDut.hold`` as written before issue 15 (no relaxation law): the subset pulse."""
    from sim_backend.array_dut import READ_DOSE_FLOOR

    if not dt > 0 or dut._rate_bound() * dt < READ_DOSE_FLOOR:
        return
    vc = dut.cell_voltages().ravel()
    gates = np.broadcast_to(dut.v_gate[None, :], (dut.rows, dut.cols)).ravel()
    idx = np.flatnonzero(vc)
    if idx.size == 0:
        return
    if idx.size == vc.size:
        dut.cells.pulse(vc, dt, gates)
        return
    sub = dut.cells.take(idx)
    sub.pulse(vc[idx], dt, gates[idx])
    dut.cells.put(idx, sub)


def test_array_hold_and_one_cell_reads_equal_the_subset_paths():
    """Write-verify on an array: one cell (or a few, or a whole row) pulsed and read again
    and again, each pulse held in two parts, counters jumping past their noise blocks --
    the cells' state and every reading the same bits as the subset pulse and the per-read
    formula."""
    fast, ref = make_array_twins()
    rnd = random.Random(9)
    for step in range(500):
        row = rnd.randrange(fast.rows)
        gates = sorted(rnd.sample(range(fast.cols), rnd.choice((1, 1, 1, 2, fast.cols))))
        v = rnd.choice((1.15, -1.15, 1.3, -0.9))
        for volts, dts in ((v, (8e-5, 2e-5)), (0.2, (1e-3,))):
            lines = [("r", row, volts), ("g", np.array(gates, dtype=np.intp), 1.6)]
            for dut in (fast, ref):
                dut.set_lines(lines)
            for dt in dts:
                fast.hold(volts, dt)
                reference_array_hold(ref, dt)
        index = rnd.choice((row, np.array([row])))
        assert bits(fast.read_line("r", index)) == bits(reference_line_current(ref, "r", index))
        col = gates[0]
        assert bits(fast.read_line("s", col)) == bits(reference_line_current(ref, "s", col))
        if step % 41 == 3:  # a counter jumps past its block
            for dut in (fast, ref):
                dut.cells.n_reads[row * fast.cols + col] += 100
        for name in ("g_s", "g_prog_s", "age_s", "n_pulses", "n_reads"):
            assert getattr(fast.cells, name).tobytes() == getattr(ref.cells, name).tobytes()
    assert fast.cells.n_pulses.sum() > 500


def test_bench_in_place_line_updates_equal_a_full_set_lines():
    """Levels changed one terminal at a time, routes moved, a line clamped (compliance):
    after every refresh the array's lines are those a full ``set_lines`` gives."""
    rows, cols = 4, 6
    wiring: dict[str, object] = {"src/1": [f"a1.s{j}" for j in range(1, 4)],
                                 "src/2": [f"a1.s{j}" for j in range(4, cols + 1)]}
    bench = Bench({"seed": 1, "noise": False, "wiring": wiring,
                   "devices": {"a1": {"kind": "array", "rows": rows, "cols": cols}}})
    bench.close_route("r2", [("row/1", "a1.r2")])
    bench.close_route("g3", [("gate/1", "a1.g3")])
    dut, slot = bench.device("a1"), bench.slots["a1"]
    rnd = random.Random(4)
    for step in range(400):
        term = rnd.choice(("row/1", "gate/1", "src/1", "src/2"))
        bench.source(term, rnd.choice((0.0, 0.2, -1.15, 1.6, None)))
        if step % 17 == 0:
            name = rnd.choice(("r1", "r2", "g1", "g3"))
            if name in bench.routes:
                bench.open_route(name)
            else:
                bench.close_route(name, [("row/1" if name[0] == "r" else "gate/1",
                                          f"a1.{name}")])
        if step % 23 == 0:
            dut.set_line("r", 1, 0.05)  # as a clamp does
        bench._refresh(slot)
        got = [dut.v_row.tobytes(), dut.v_gate.tobytes(), dut.v_src.tobytes()]
        dut.set_line("r", 0, dut.line_voltage("r", 0))  # forget the key: a full set_lines
        bench._refresh(slot)
        assert got == [dut.v_row.tobytes(), dut.v_gate.tobytes(), dut.v_src.tobytes()], step


def test_remembered_choices_and_elements_match_and_fail_as_before():
    """``parse_choice`` remembered per (text, options, quoted): the same short forms, a list
    of options still accepted, errors raised every time; the B2900's element tuples per text."""
    from sim_backend.instruments.b2900 import KeysightB2900Sim
    from sim_backend.scpi import ScpiError, parse_choice

    options = ("VOLTage", "CURRent", "RESistance")
    for _ in range(2):
        assert parse_choice("curr", options) == "CURR"
        assert parse_choice("RESISTANCE", options) == "RES"
        assert parse_choice('"VOLT"', options, quoted=None) == "VOLT"
        assert parse_choice("volt", list(options)) == "VOLT"
        for text, quoted in (("CURRX", False), ('"CURR"', False), ("CURR", True), ("", False)):
            with pytest.raises(ScpiError):
                parse_choice(text, options, quoted=quoted)
    bench = Bench({"seed": 1, "noise": False, "devices": {"d1": {"kind": "dendrite"}},
                   "wiring": {"smu/1": "d1"}})
    m = KeysightB2900Sim(bench, "smu")
    for _ in range(2):
        m.handle(b":FORM:ELEM:SENS CURR,VOLT")
        assert m.elements == ("VOLT", "CURR")
        m.handle(b":FORM:ELEM:SENS TIME")
        assert m.elements == ("TIME",)
        m.handle(b":FORM:ELEM:SENS CURR,BOGUS")
        assert m.elements == ("TIME",)
    assert m.handle(b":SYST:ERR?").startswith(b"-224")
