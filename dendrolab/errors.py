"""One error hierarchy for the whole project.

The CLI maps every ``DendrolabError`` to a one-line message and exit code 2; anything else is a bug.
Messages say what was wrong, where, and what would be right.
"""

from __future__ import annotations

import reprlib


class DendrolabError(Exception):
    """Base of every error a user can cause and fix."""


class ParameterError(DendrolabError, ValueError):
    """A physics or configuration parameter is missing, unknown or out of range."""


class ProtocolError(DendrolabError):
    """A protocol file is malformed or asks for something unsafe."""


class InstrumentError(DendrolabError):
    """An instrument reported an error or answered something we cannot use."""


class ComplianceError(InstrumentError):
    """A source hit its compliance limit where the caller asked us to treat that as an error."""


class RunFileError(DendrolabError):
    """A run file is missing, unreadable or not in the documented layout."""


#: Longest echo of a user's value inside an error message, and of a whole message on the CLI.
ECHO_MAX = 60
MESSAGE_MAX = 1000


def clip(text: str, limit: int = ECHO_MAX) -> str:
    """``text`` whole if short, else its start and end around ``...(N chars)...``.

    For echoing user input (names, values, paths) in error messages: a 1 MB value must not make a
    1 MB message. Both ends are kept, because a path's file name and a value's unit sit at the end.
    """
    if limit < 24:
        raise ValueError(f"clip limit must be >= 24, got {limit}")
    if len(text) <= limit:
        return text
    mark = f"...({len(text):,} chars)..."
    room = max(limit - len(mark), 2)
    head = (room + 1) // 2
    return f"{text[:head]}{mark}{text[len(text) - (room - head):]}"


def show(value: object, limit: int = ECHO_MAX) -> str:
    """A short ``repr`` of a value echoed in an error message (long text and lists clipped).

    Never builds the whole ``repr`` of a huge value: strings are sampled at both ends and
    containers go through ``reprlib``.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return clip(repr(value), limit)
        half = max(limit // 2 - 8, 4)
        return (f"{value[:half]!r}...({len(value):,} chars)...{value[-half:]!r}")
    short = reprlib.Repr()
    short.maxstring = short.maxother = limit
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 6
    short.maxlevel = 3
    return clip(short.repr(value), limit)
