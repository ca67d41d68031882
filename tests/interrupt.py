"""Helpers for tests that send a child process a Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def interruptible() -> None:
    """In the child before exec (Popen's preexec_fn): SIGINT back to its default. A shell that starts pytest in the
    background (`cmd &` without job control, nohup) leaves SIGINT ignored, the child would inherit that, and Python
    then installs no KeyboardInterrupt handler: the child would never see the Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ctrl_c_once_started(proc: subprocess.Popen) -> tuple[str, str]:
    """SIGINT to the whole process group of a `report` run (as a terminal's Ctrl-C: its workers too) once its first
    plain progress line is out and half a second more has passed; its (stdout, stderr). The group is SIGKILLed if
    it is still running when this returns or raises."""
    try:
        for line in proc.stdout:  # the plain progress lines (not a tty): one every 5% of the cases
            if line.startswith("["):
                break
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
