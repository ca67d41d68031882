"""Helpers for tests that send a child process a Ctrl-C."""

from __future__ import annotations

import signal


def interruptible() -> None:
    """In the child before exec (Popen's preexec_fn): SIGINT back to its default. A shell that starts pytest in the
    background (`cmd &` without job control, nohup) leaves SIGINT ignored, the child would inherit that, and Python
    then installs no KeyboardInterrupt handler: the child would never see the Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
