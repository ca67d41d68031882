"""The one place that writes bpcheck's output folders: a run's files are one set, swapped in as a whole.

    with OutputFolder("reports/", REPORT) as folder:   # before any work: writable, locked, leftovers cleaned
        ...                                            # the run
        folder.write({"report.md": ..., "cases/ab12.json": ...})

The set is swapped in by renames of bpcheck's own names, not by swapping --out itself: --out is shared (the default
reports/ holds both `report`'s and `mutants`' files; --out may be "." or hold the user's own files), and a directory
cannot be replaced atomically on every filesystem anyway. A write goes:

1. stage: every file into .bpcheck-staging-<kind>-XXXX/ inside the folder (same filesystem, so each rename below is
   atomic). An error or a Ctrl-C here removes the staging directory: the folder keeps its previous set, untouched.
2. commit point: the staging directory, with a SET file naming the new set, is renamed to .bpcheck-commit-<kind>/.
3. roll forward: each new file replaces its namesake, each of the kind's names absent from the set is removed, each
   of its directories (cases/) is swapped whole, then the commit directory is removed. SIGINT and SIGTERM wait until
   this is done (milliseconds). A SIGKILL here leaves the commit directory, and the next run into the folder finishes
   the roll forward before anything else, so the folder never keeps two runs' files side by side.

A lock (flock on .bpcheck-<kind>.lock, which the kernel frees whatever ends the process) keeps a second run of the
same kind out of the folder from the start of a run to the end of its write; leftover staging directories and the
temporaries of older bpcheck versions are removed when the folder is opened.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..spec import UsageError

# Test hook (read at each step of a write): "stage:3:KILL" sends this process SIGKILL halfway through writing the 3rd
# staged file; "commit:2:INT" sends SIGINT once the 2nd name is rolled forward; FAIL raises ENOSPC instead of a signal.
WRITE_HOOK = "BPCHECK_TEST_WRITE_HOOK"


@dataclass(frozen=True)
class Kind:
    """The names one kind of run owns in its folder: files at the top, and directories swapped whole."""

    name: str
    files: tuple[str, ...]
    dirs: tuple[str, ...] = ()

    def owns(self, relative: str) -> bool:
        head, _, rest = relative.partition("/")
        return (head in self.files and not rest) or (head in self.dirs and bool(rest))


REPORT = Kind("report", ("report.md", "report.json", "report.html", "junit.xml", "errors.png"), ("cases",))
MUTANTS = Kind("mutants", ("mutants.md", "mutants.json"))


class OutputFolder:
    """A folder holding one set of files of one kind, locked while open (a context manager)."""

    def __init__(self, out: str | os.PathLike[str], kind: Kind = REPORT, *, flag: str = "--out"):
        self.given, self.kind, self.flag = os.fspath(out), kind, flag
        self.path = Path(out).absolute()  # user code that calls os.chdir does not move the report
        self.lock_path = self.path / f".bpcheck-{kind.name}.lock"
        self.commit_dir = self.path / f".bpcheck-commit-{kind.name}"
        self._lock_fd: int | None = None

    def __enter__(self) -> OutputFolder:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> OutputFolder:
        """Create the folder, lock it (exit 2 when another run holds it), finish or remove what an earlier run left."""
        if self._lock_fd is not None:
            return self
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_fd = _lock(self.lock_path)  # creating the lock file proves the folder is writable
        except OSError as exc:
            raise UsageError(f"{self.flag} {self.given!r} is not a writable directory ({exc.strerror or exc}): "
                             "give a directory you can write to") from None
        if self._lock_fd < 0:
            self._lock_fd = None
            holder = _read_pid(self.lock_path)
            raise UsageError(f"{self.flag} {self.given!r} is in use by another bpcheck {self.kind.name} run"
                             f"{f' (pid {holder})' if holder else ''}: wait for it to finish, or give another {self.flag}")
        try:
            self._recover()
            self._check_nothing_in_the_way()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._lock_fd is not None:
            try:
                os.unlink(self.lock_path)  # while still locked: see _lock for why a waiting run cannot be fooled
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None

    def write(self, files: dict[str, bytes | str]) -> list[Path]:
        """Replace the folder's set of this kind by exactly these files (relative name -> content), as a whole."""
        for name in files:
            if not self.kind.owns(name) or ".." in name.split("/"):
                raise UsageError(f"refusing to write {name!r} into {self.flag} {self.given!r}: a {self.kind.name} "
                                 f"file is one of {', '.join(self.kind.files + tuple(d + '/<name>' for d in self.kind.dirs))}")
        with self if self._lock_fd is None else _nothing():
            self._check_nothing_in_the_way()
            staging = self._stage(files)
            with _signals_deferred():
                os.replace(staging, self.commit_dir)
                try:
                    self._roll_forward()
                except OSError as exc:  # after the commit point: the next run into the folder finishes the swap
                    raise UsageError(f"cannot finish swapping the new files into {self.flag} {self.given!r} "
                                     f"({exc.strerror or exc}): fix that, and the next run into it finishes") from None
        return [Path(self.given) / name for name in files]  # as the user named the folder

    def _stage(self, files: dict[str, bytes | str]) -> Path:
        import tempfile

        staging = Path(tempfile.mkdtemp(dir=self.path, prefix=f".bpcheck-staging-{self.kind.name}-"))
        try:
            for n, (name, data) in enumerate(files.items(), 1):
                target = staging / name
                target.parent.mkdir(parents=True, exist_ok=True)
                payload = data.encode("utf-8") if isinstance(data, str) else data
                with open(target, "wb") as f:
                    f.write(payload[:len(payload) // 2])
                    _hook("stage", n)  # tests fail or signal here, halfway through the n-th file
                    f.write(payload[len(payload) // 2:])
            (staging / "SET").write_text("".join(f"{n}\n" for n in sorted({_top(name) for name in files})))
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise UsageError(f"cannot write into {self.flag} {self.given!r} ({exc.strerror or exc}), so it keeps its "
                             f"previous files: free some space or give another {self.flag}") from None
        except KeyboardInterrupt:
            shutil.rmtree(staging, ignore_errors=True)
            raise KeyboardInterrupt(f"nothing written: {self.flag} {self.given!r} keeps its previous files") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def _roll_forward(self) -> None:
        """Move a committed set into place; safe to repeat after it was cut short at any point."""
        commit = self.commit_dir
        keep = set((commit / "SET").read_text().split())
        step = 0
        for name in self.kind.files:
            new, old = commit / name, self.path / name
            if new.exists():
                os.replace(new, old)
            elif name not in keep and (old.is_symlink() or old.is_file()):
                old.unlink()
            step += 1
            _hook("commit", step)
        for name in self.kind.dirs:
            new, old, away = commit / name, self.path / name, commit / f".old-{name}"
            if (new.exists() or name not in keep) and old.is_dir() and not old.is_symlink():
                shutil.rmtree(away, ignore_errors=True)
                os.replace(old, away)
            if new.exists():
                os.replace(new, old)
            step += 1
            _hook("commit", step)
        shutil.rmtree(commit)

    def _recover(self) -> None:
        """Finish a write a SIGKILL cut short; remove staging directories and older versions' temporaries."""
        if (self.commit_dir / "SET").is_file():
            with _signals_deferred():
                self._roll_forward()
        elif self.commit_dir.exists():  # SET is written before the rename, so this cannot happen: be safe anyway
            shutil.rmtree(self.commit_dir)
        for p in self.path.glob(f".bpcheck-staging-{self.kind.name}-*"):
            shutil.rmtree(p, ignore_errors=True)
        for name in self.kind.files:
            for p in self.path.glob(f".{name}.*.tmp"):
                p.unlink(missing_ok=True)
        for p in self.path.glob(".bpcheck-probe-*"):
            p.unlink(missing_ok=True)

    def _check_nothing_in_the_way(self) -> None:
        for name in self.kind.files:
            if (self.path / name).is_dir() and not (self.path / name).is_symlink():
                raise UsageError(f"cannot write {os.fspath(self.path / name)!r} (a directory is in the way): "
                                 f"remove it or give another {self.flag}")
        for name in self.kind.dirs:
            p = self.path / name
            if p.is_symlink() or (p.exists() and not p.is_dir()):
                raise UsageError(f"cannot write {os.fspath(p)!r} (it is not a directory of bpcheck's): "
                                 f"remove it or give another {self.flag}")


def ensure_writable(out: str | os.PathLike[str], kind: Kind = REPORT, *, flag: str = "--out") -> Path:
    """Prove out can hold a set of this kind now (created, writable, not in use); else a one-line UsageError."""
    with OutputFolder(out, kind, flag=flag) as folder:
        return folder.path


def _top(name: str) -> str:
    return name.partition("/")[0]


def _lock(path: Path) -> int:
    """An fd holding an exclusive flock on path, or -1 when another process holds it.

    The holder unlinks the file before it unlocks, so a run that opened the old file and locked it after the holder
    finished sees that the path no longer names its file, and tries again on the new one."""
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return -1
            raise
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _read_pid(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()[:20]
    except OSError:
        return ""


@contextmanager
def _nothing():
    yield


@contextmanager
def _signals_deferred():
    """SIGINT and SIGTERM received inside the block are re-raised after it, to the handlers in force before."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    names = (signal.SIGINT, signal.SIGTERM)
    before = {s: signal.signal(s, lambda number, frame: got.append(number)) for s in names}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        if got:
            signal.raise_signal(got[0])


def _hook(phase: str, step: int) -> None:
    spec = os.environ.get(WRITE_HOOK, "")
    if spec.count(":") != 2:
        return
    when, at, action = spec.split(":")
    if when != phase or at != str(step):
        return
    if action == "FAIL":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.kill(os.getpid(), getattr(signal, f"SIG{action}"))
