"""Options of a simulated instrument's bench entry: known keys only, and its ``*IDN?`` string.

Why one module: every simulated instrument takes ``idn`` (the reply to ``*IDN?``) and ``serial``
(a shortcut that replaces the serial-number field) plus options of its own, and must refuse a
misspelt key with one line instead of silently ignoring it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dendrolab.errors import ParameterError


def check_options(options: Mapping[str, Any] | None, known: Iterable[str],
                  where: str) -> dict[str, Any]:
    """The options as a dict; not a mapping, or an unknown key, is a one-line ParameterError."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ParameterError(f"{where}: options must be a mapping, got {type(options).__name__}")
    known = set(known)
    unknown = sorted(str(k) for k in set(options) - known)
    if unknown:
        raise ParameterError(f"{where}: unknown option(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(known))}")
    return dict(options)


def model_idn(options: Mapping[str, Any], default: str, where: str) -> str:
    """The ``*IDN?`` reply: option ``idn`` (four comma-separated fields: vendor, model, serial,
    firmware) or ``default``, with option ``serial`` written into the third field (keeping the
    space after the comma that Keithley's replies have)."""
    idn = options.get("idn", default)
    if not isinstance(idn, str) or idn.count(",") < 3:
        raise ParameterError(f"{where}: idn must be 'vendor, model, serial, firmware', got "
                             f"{idn!r}")
    if "serial" in options:
        serial = options["serial"]
        if isinstance(serial, bool) or not isinstance(serial, (str, int)) or not str(serial):
            raise ParameterError(f"{where}: serial must be a string or integer, got {serial!r}")
        parts = idn.split(",")
        parts[2] = f" {serial}" if parts[2].startswith(" ") else str(serial)
        idn = ",".join(parts)
    return idn
