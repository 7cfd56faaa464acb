"""Built-in protocols shipped in ``protocols/builtin``: list them and load them by name.

Read-only: it must not write files or compile plans (callers do that), nor know which bench
(real or simulated) will run them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dendrolab.errors import ProtocolError, clip, show
from protocols.schema import Protocol, load_protocol

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"


@dataclass(frozen=True)
class BuiltinInfo:
    """One built-in protocol: its name (= file stem), paper figure and one-line description."""

    name: str
    figure: str
    description: str
    path: Path


def builtin_names() -> list[str]:
    """Names of the built-in protocols, sorted."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def builtin_path(name: str) -> Path:
    """The file of a built-in protocol; an unknown name lists the known ones."""
    path = BUILTIN_DIR / f"{name}.yaml"
    if not name or len(name) > 100 or "/" in name or "\\" in name or not path.is_file():
        raise ProtocolError(
            f"no built-in protocol {show(name)}; built-ins: {', '.join(builtin_names())}"
        )
    return path


def load_builtin(name: str) -> Protocol:
    """Validate and return a built-in protocol by name."""
    return load_protocol(builtin_path(name))


def list_builtins() -> list[BuiltinInfo]:
    """Every built-in with its figure and description (each file is validated on the way)."""
    out = []
    for name in builtin_names():
        proto = load_builtin(name)
        out.append(BuiltinInfo(name, proto.figure, proto.description, builtin_path(name)))
    return out


def resolve_protocol(ref: str | os.PathLike[str]) -> Protocol:
    """A protocol from a file path, or else from a built-in name (``dendrolab check NAME``).

    A path the file system refuses (a name too long, a file used as a directory, no permission)
    is a one-line ``ProtocolError`` with the path clipped, never an ``OSError``.
    """
    path = Path(ref)
    try:
        is_file = path.is_file()
    except OSError as exc:  # e.g. ENAMETOOLONG: is_file() only swallows "does not exist"
        raise ProtocolError(f"{clip(str(ref), 120)}: cannot use this protocol path "
                            f"({exc.strerror or exc})") from None
    if is_file:
        return load_protocol(path)
    if isinstance(ref, str) and ref in builtin_names():
        return load_builtin(ref)
    raise ProtocolError(
        f"{clip(str(ref), 120)}: no such protocol file, and not a built-in name; built-ins: "
        f"{', '.join(builtin_names())}"
    )
