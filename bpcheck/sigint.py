"""What every worker we start does first, for both backends: bpcheck.executors' process pool and
bpcheck.cluster's LocalCluster (a module of its own so that cluster need not import executors, which imports it)."""

from __future__ import annotations

import signal


def ignore_sigint() -> None:
    """In a worker we own: a terminal's Ctrl-C goes to the whole process group; the parent handles it, once."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
