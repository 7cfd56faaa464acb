"""Helpers of the simulated-instrument tests: talk to a SCPI model's ``handle()`` directly."""

from __future__ import annotations

#: The Keysight models' empty error queue reply (the 2450's is ``0,"No error"``).
NO_ERROR = '+0,"No error"'


def ask(model, text: str) -> str | None:
    """Send one message; the reply without its terminator, or None when there is none."""
    reply = model.handle(text)
    return None if reply is None else reply.decode("latin-1").rstrip("\n")


def errors(model, no_error: str = NO_ERROR) -> list[str]:
    """Drain the error queue (``:SYST:ERR?`` until ``no_error``); the errors in order."""
    out = []
    while (e := ask(model, ":SYST:ERR?")) != no_error:
        out.append(e)
    return out
