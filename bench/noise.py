"""How much of the machine other processes used while a section ran.

Scenarios on a shared machine (tests running in parallel, say) are slowed down and their
loop lag grows; this figure says how far to trust a run. It is the machine's busy CPU time
(/proc/stat) minus this process's and its children's (fakes and scenarios).
"""

from __future__ import annotations

import os
import resource
import time


def _machine_busy_s() -> float:
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait.
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and its reaped children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class OtherLoad:
    """Start at construction; `share()` is the fraction of all CPUs others used since."""

    def __init__(self) -> None:
        self._start = (time.monotonic(), _machine_busy_s(), own_cpu_s())

    def share(self, own_extra_s: float = 0.0) -> float:
        """`own_extra_s`: CPU of processes we started that are not our children (a
        daemonised database server), so not in `own_cpu_s`."""
        wall0, busy0, own0 = self._start
        wall = time.monotonic() - wall0
        others = (_machine_busy_s() - busy0) - (own_cpu_s() - own0) - own_extra_s
        cores = os.cpu_count() or 1
        return max(0.0, others / (wall * cores)) if wall > 0 else float("nan")
