"""CPU time and peak memory of a process or of one of this process's threads, read from
/proc (psutil is not a dependency). Linux only; elsewhere the figures are NaN rather than
wrong."""

from __future__ import annotations

import math
import os

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far (all its threads)."""
    return _stat_cpu_s(f"/proc/{pid}/stat")


def thread_cpu_s(native_id: int) -> float:
    """User + system CPU seconds one thread of this process has used so far."""
    return _stat_cpu_s(f"/proc/self/task/{native_id}/stat")


def _stat_cpu_s(path: str) -> float:
    try:
        with open(path, encoding="ascii") as stat:
            text = stat.read()
    except OSError:
        return math.nan
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = text.rpartition(")")[2].split()
    # fields[0] is field 3 (state), so utime (field 14) and stime (field 15) are 11 and 12.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def peak_rss_mb(pid: int) -> float:
    """The process's RSS high-water mark (VmHWM) in MB of 10⁶ bytes."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return math.nan
