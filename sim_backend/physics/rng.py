"""Counter-based, keyed random numbers: reproducible per device and per event.

A device's draws depend only on (seed, wafer, die, device, stream, event), never on batch size,
creation order or how many draws other devices made: the value is a hash of those integers
(SplitMix64 finaliser), computed vectorised over devices. Streams are named ("d2d.g_off", "c2c.k")
so adding a new noise source never shifts an existing one.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijective avalanche hash on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


def _u64(x: object) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind == "f":
        raise TypeError("random keys must be integers")
    return arr.astype(np.int64).astype(np.uint64)


def stream_id(name: str) -> int:
    """Stable integer for a named stream (CRC32 of its name)."""
    return zlib.crc32(name.encode())


def device_keys(seed: int, wafer: object = 0, die: object = 0, device: object = 0) -> np.ndarray:
    """One uint64 key per device from (seed, wafer, die, device); arguments broadcast."""
    key = _mix(np.atleast_1d(_u64(seed)))
    for part in (wafer, die, device):
        key = _mix(key ^ _mix(_u64(part) * _GOLDEN))
    return np.atleast_1d(key)


def _bits(keys: np.ndarray, stream: str | int, event: object) -> np.ndarray:
    sid = stream_id(stream) if isinstance(stream, str) else int(stream)
    with np.errstate(over="ignore"):
        salt = _mix(np.uint64(sid) * _M1 + _u64(event) * _M2)
    return _mix(keys ^ salt)


def _to_unit(bits: np.ndarray) -> np.ndarray:
    """uint64 -> float in the open interval (0, 1)."""
    return ((bits >> _S11).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def uniform(keys: np.ndarray, stream: str | int, event: object = 0) -> np.ndarray:
    """Uniform draws in (0, 1), one per key (``event`` broadcasts against the keys)."""
    return _to_unit(_bits(keys, stream, event))


def normal(keys: np.ndarray, stream: str | int, event: object = 0) -> np.ndarray:
    """Standard normal draws, one per key (Box-Muller on two hashed uniforms)."""
    b = _bits(keys, stream, event)
    u1 = _to_unit(b)
    u2 = _to_unit(_mix(b))
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def lognormal(keys: np.ndarray, stream: str | int, sigma_ln: object, event: object = 0
              ) -> np.ndarray:
    """Median-one log-normal factors exp(sigma_ln * z); sigma 0 gives exactly 1."""
    sigma = np.asarray(sigma_ln, dtype=float)
    if not np.any(sigma):
        # the shape ``normal`` gives (keys broadcast with event), so callers index it alike
        return np.ones(np.broadcast(np.asarray(keys), np.asarray(event), sigma).shape)
    return np.exp(sigma * normal(keys, stream, event))


# ---------------------------------------------------------------------------------------------
# One draw on Python ints and floats (a single cell's pulse: no arrays to build). The same
# integer hash (wrapping uint64 arithmetic as masked Python ints) and the same float64
# operations in the same order; the transcendental steps stay numpy ufuncs, which give a
# Python float exactly what they give a one-element array (libm's ``math.log`` need not).

_MASK = (1 << 64) - 1
_GOLDEN_I, _M1_I, _M2_I = int(_GOLDEN), int(_M1), int(_M2)
_SIDS: dict[str, int] = {}


def _mix_int(z: int) -> int:
    """``_mix`` of one uint64 held as a Python int in [0, 2**64)."""
    z = (z + _GOLDEN_I) & _MASK
    z = ((z ^ (z >> 30)) * _M1_I) & _MASK
    z = ((z ^ (z >> 27)) * _M2_I) & _MASK
    return z ^ (z >> 31)


def normal_one(key: int, stream: str, event: int) -> float:
    """``float(normal(np.array([key], uint64), stream, event)[0])``, bit for bit."""
    sid = _SIDS.get(stream)
    if sid is None:
        sid = _SIDS[stream] = stream_id(stream)
    b = _mix_int(key ^ _mix_int((sid * _M1_I + (event & _MASK) * _M2_I) & _MASK))
    u1 = (float(b >> 11) + 0.5) * (1.0 / 9007199254740992.0)
    u2 = (float(_mix_int(b) >> 11) + 0.5) * (1.0 / 9007199254740992.0)
    return math.sqrt(-2.0 * float(np.log(u1))) * float(np.cos(2.0 * np.pi * u2))


def lognormal_one(key: int, stream: str, sigma_ln: float, event: int) -> float:
    """``float(lognormal(np.array([key], uint64), stream, sigma_ln, event)[0])``, bit for bit."""
    if not sigma_ln:
        return 1.0
    return float(np.exp(sigma_ln * normal_one(key, stream, event)))
