"""The click group every ``dendrolab`` command group uses: our errors become one line.

Why a module of its own: the main CLI (``dendrolab.cli``) and the command groups registered on it
(``dendrolab.network_cli``) must fail the same way -- one line on stderr, exit code 2, never a
traceback -- and the groups must not import ``dendrolab.cli`` (it imports them).
"""

from __future__ import annotations

import errno
import os
import sys

import click

from dendrolab.errors import MESSAGE_MAX, DendrolabError, clip


def one_line(message: str) -> str:
    """The last guard on what reaches stderr: one line, at most ``MESSAGE_MAX`` characters."""
    return clip(" ".join(line.strip() for line in message.splitlines()), MESSAGE_MAX)


def os_message(exc: OSError) -> str:
    """A file-system refusal as ``path: reason`` (the path clipped)."""
    reason = exc.strerror or errno.errorcode.get(exc.errno or 0, "") or str(exc)
    name = exc.filename
    if name is None or name == "":
        return reason
    text = os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name)
    return f"{clip(text, 120)}: {reason}"


class OneLineErrors(click.Group):
    """Turns our own errors, and the file system's refusals, into one line and exit code 2.

    Paths are checked where they are used; ``OSError`` here is the guard for a path refused
    somewhere else (a name too long, a file where a directory should be): never a traceback.
    """

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except DendrolabError as exc:
            click.echo(f"error: {one_line(str(exc))}", err=True)
            sys.exit(2)
        except OSError as exc:
            click.echo(f"error: {one_line(os_message(exc))}", err=True)
            sys.exit(2)
