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


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` and all its descendants, including the
    children each of them has reaped (cutime, cstime): a server's worker that exited
    between two readings still counts, once. NaN if `pid` is gone."""
    stats = _all_stats()
    if pid not in stats:
        return math.nan
    children: dict[int, list[int]] = {}
    for child, fields in stats.items():  # fields[1] is field 4, the parent's pid
        children.setdefault(int(fields[1]), []).append(child)
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        # utime, stime, cutime, cstime: fields 14-17, i.e. 11-14 after the state field.
        total += sum(int(v) for v in stats[current][11:15])
        todo += children.get(current, [])
    return total / _TICKS


def _all_stats() -> dict[int, list[str]]:
    """Every process's /proc/<pid>/stat fields from field 3 (state) on, by pid."""
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit() and (fields := _stat_fields(f"/proc/{entry}/stat")) is not None:
            stats[int(entry)] = fields
    return stats


def _stat_fields(path: str) -> list[str] | None:
    try:
        with open(path, encoding="ascii") as stat:
            text = stat.read()
    except OSError:  # gone meanwhile
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return text.rpartition(")")[2].split()


def _stat_cpu_s(path: str) -> float:
    fields = _stat_fields(path)
    if fields is None:
        return math.nan
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
