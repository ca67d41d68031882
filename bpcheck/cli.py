"""The command line: `python -m bpcheck SUBCOMMAND ...`.

Each subcommand lives in bpcheck/commands/<name>.py with add_arguments(parser) and run(args) -> int,
and imports what it needs inside run(), so `--help` stays fast and torch/jax load only when used.
Exit codes: 0 all agree, 1 a disagreement was found, 2 a usage or input error, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM, handled as a Ctrl-C: the partial report is written, the workers are stopped).
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import signal
import sys
import threading

from .spec import BpcheckError
from .version import __version__

COMMANDS = ("xor", "mutants", "check", "check-layer", "report", "render", "replay")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, instead of usage + message
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bpcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"bpcheck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f".commands.{name.replace('-', '_')}", __package__)
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors: return the code instead of exiting
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help()
        return 2
    terminated: list[int] = []
    installed, previous = _on_sigterm(terminated)
    stdout, sys.stdout = sys.stdout, _PipeSafe(sys.stdout)
    try:
        code = int(args._run(args))
    except BpcheckError as exc:
        print(f"bpcheck {args.command}: error: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt as exc:
        detail = f" ({exc})" if str(exc) else ""
        print(f"bpcheck {args.command}: {'terminated' if terminated else 'interrupted'}{detail}", file=sys.stderr)
        code = 130
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous)
        sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe is an "Exception ignored" message
        sys.stdout = stdout
    return 143 if terminated and code == 130 else code


def _on_sigterm(terminated: list[int]):
    """SIGTERM raises KeyboardInterrupt, as Ctrl-C does (so a killed run still writes its partial report).
    Returns (installed, the handler it replaces); off the main thread no handler can be installed."""
    if threading.current_thread() is not threading.main_thread():
        return False, None

    def handler(signum, frame):
        terminated.append(signum)
        raise KeyboardInterrupt

    return True, signal.signal(signal.SIGTERM, handler)


class _PipeSafe:
    """sys.stdout during a command: when the reader goes away (`bpcheck check ... | head -1`), the rest of the
    output is dropped (fd 1 pointed at /dev/null) and the command goes on to write its report and return its
    own exit code, instead of dying in a BrokenPipeError traceback half-way."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop()

    def _drop(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass  # not a real file descriptor (a test's capture): nothing is left to break
        finally:
            os.close(devnull)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
