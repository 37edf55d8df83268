"""`python -m bot.healthcheck`: the Docker HEALTHCHECK. Exit 0 if the bot is healthy, else
exit 1 with one line saying why.

With `METRICS_PORT` set (not 0) it asks the bot's own `/healthz` (gateway, store, writer,
Segmind; see bot/observe/health.py) with a GET of at most 3 s, stdlib only. Without it,
it checks that a running bot has its job store open in `BOT_DATA_DIR`:

What it checks, from /proc only: the data directory's `jobs.lock` is held (an exclusive
flock, listed in /proc/locks) by a process that is neither a zombie nor stopped, and
`jobs.sqlite3` is there. The bot takes that lock when it opens its store, before it
connects to Discord, and holds it until it exits; a second bot on the same directory is
refused. The check never takes the lock itself (even an instant would make a bot that is
starting refuse to start), never opens the database, and imports nothing of discord.py,
so it costs a few milliseconds.

With DATABASE_URL (PostgreSQL) there is no lock file to look at: set METRICS_PORT, or the
check reports unhealthy and says so.

What the lock check does not see: that Discord or Segmind are reachable, or that the event
loop is making progress (`/healthz` does). A bot whose store writer died exits with a
non-zero status on its own, and the restart policy brings it back.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

# The names the store uses (bot/store/sqlite.py; a test checks they agree).
DB_NAME = "jobs.sqlite3"
LOCK_NAME = "jobs.lock"
PROC = Path("/proc")
HTTP_TIMEOUT = 3.0  # seconds; Docker's own --timeout is 5


def flock_holders(locks: str, device: int, inode: int) -> list[int]:
    """Pids holding an exclusive flock on the file (device, inode), from /proc/locks text.

    A line reads `1: FLOCK  ADVISORY  WRITE 8743 fe:00:2147396 0 EOF`; waiters are marked
    `->` after the number and hold nothing. The device is `major:minor` in hex."""
    holders: list[int] = []
    for line in locks.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->":
            continue
        kind, mode, pid, where = fields[1], fields[3], fields[4], fields[5]
        if kind != "FLOCK" or mode != "WRITE":
            continue
        try:
            major, minor, ino = where.split(":")
            same = (int(major, 16), int(minor, 16), int(ino)) == (
                os.major(device),
                os.minor(device),
                inode,
            )
            if same:
                holders.append(int(pid))
        except ValueError:
            continue
    return holders


def process_state(pid: int, proc: Path = PROC) -> str | None:
    """The state letter of /proc/PID/stat (R, S, D, T, Z, …), or None if there is no such
    process."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # `pid (comm) S …`: comm may hold spaces and parentheses, so split at the last ')'.
    rest = stat.rpartition(")")[2].split()
    return rest[0] if rest else None


def problem(data_dir: Path, proc: Path = PROC) -> str | None:
    """Why the bot is not healthy, or None."""
    lock = data_dir / LOCK_NAME
    try:
        st = lock.stat()
    except OSError:
        return f"{lock} is missing: the bot has not opened its store (not started yet?)"
    try:
        locks = (proc / "locks").read_text()
    except OSError as exc:
        return f"cannot read {proc / 'locks'} ({exc.strerror})"
    holders = flock_holders(locks, st.st_dev, st.st_ino)
    if not holders:
        return f"nobody holds {lock}: the bot is not running"
    for pid in holders:
        state = process_state(pid, proc) if pid > 0 else "?"  # 0: outside this pid namespace
        if state is not None and state not in ("Z", "X", "T", "t"):
            break
    else:
        return f"the process holding {lock} (pid {holders[0]}) is stopped or dead"
    if not (data_dir / DB_NAME).is_file():
        return f"{data_dir / DB_NAME} is missing while the bot runs"
    return None


def healthz_url(port: str, host: str | None) -> str:
    """Where the bot's /healthz is: a server on every interface is asked on loopback."""
    host = host or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{int(port)}/healthz"


def http_problem(url: str, timeout: float = HTTP_TIMEOUT) -> str | None:
    """Why `/healthz` at `url` is not healthy, or None (HTTP 200)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            resp.read(65536)
        return None
    except urllib.error.HTTPError as exc:  # 503: the body names the failing checks
        try:
            checks = json.loads(exc.read(65536)).get("checks", {})
            failing = [name for name, check in checks.items() if not check.get("ok")]
        except (ValueError, AttributeError):
            failing = []
        return f"{url} answered HTTP {exc.code}" + (
            f" (failing: {', '.join(failing)})" if failing else ""
        )
    except (OSError, ValueError) as exc:  # refused, timed out
        return f"{url} did not answer ({getattr(exc, 'reason', None) or exc})"


def main() -> int:
    port = os.environ.get("METRICS_PORT", "").strip()
    if port not in ("", "0"):
        try:
            why = http_problem(healthz_url(port, os.environ.get("METRICS_HOST", "").strip()))
        except ValueError:
            why = f"METRICS_PORT is not a port number: {port!r}"
    elif os.environ.get("DATABASE_URL", "").strip():
        why = "with DATABASE_URL the health check asks /healthz: set METRICS_PORT"
    else:
        data_dir = Path(os.environ.get("BOT_DATA_DIR") or "data")  # the settings' default
        why = problem(data_dir)
    if why is not None:
        print(f"unhealthy: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
