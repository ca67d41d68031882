"""The one place that writes report files: each to a temporary name in its directory, then os.replace.

A reader (or a Ctrl-C) never sees a half-written file: either the old file or the new one is there,
and the temporary is removed whatever happens.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..spec import UsageError


def ensure_writable(out: str | os.PathLike[str]) -> Path:
    """Create out (and its parents) and prove a file can be written there; else a one-line UsageError."""
    path = Path(out)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".bpcheck-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"--out {os.fspath(out)!r} is not a writable directory ({exc.strerror or exc}): "
                         "give a directory you can write to") from None
    return path


def write_file(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write data to path atomically (same-directory temporary + os.replace); an OSError (the name is a
    directory, the disk is full, ...) is a one-line UsageError naming the path, with the temporary removed."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        return _replace(path, payload)
    except OSError as exc:
        raise UsageError(f"cannot write {os.fspath(path)!r} ({exc.strerror or exc}): remove what is in the way "
                         "or give another --out") from None


def _replace(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report is for sharing
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_all(out: Path, files: dict[str, bytes | str]) -> list[Path]:
    """Every relative name -> content under out, each atomically; returns the paths, in order."""
    return [write_file(out / name, data) for name, data in files.items()]
