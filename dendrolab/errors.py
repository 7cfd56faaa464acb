"""One error hierarchy for the whole project.

The CLI maps every ``DendrolabError`` to a one-line message and exit code 2; anything else is a bug.
Messages say what was wrong, where, and what would be right.
"""

from __future__ import annotations


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
