"""One line per check, with a fix for each problem, in emoji or plain text."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

REDACTED = "[redacted]"


class Status(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


# A terminal gets the symbols; a log file (not a TTY) gets words that grep well.
_ICONS = {Status.OK: "✅", Status.WARN: "⚠️ ", Status.FAIL: "❌"}
_TAGS = {Status.OK: "OK  ", Status.WARN: "WARN", Status.FAIL: "FAIL"}


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check: what was checked, what was found, and how to fix it."""

    name: str
    status: Status
    message: str
    fix: str = ""


def ok(name: str, message: str) -> Check:
    return Check(name, Status.OK, message)


def warn(name: str, message: str, fix: str = "") -> Check:
    return Check(name, Status.WARN, message, fix)


def fail(name: str, message: str, fix: str = "") -> Check:
    return Check(name, Status.FAIL, message, fix)


def exit_status(checks: Iterable[Check]) -> int:
    """0 when nothing failed (warnings allowed), else 1."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def scrub(text: str, secrets: Sequence[str]) -> str:
    """The last line of defence: no check should ever put a secret in its text."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def render(checks: Sequence[Check], *, fancy: bool, secrets: Sequence[str] = ()) -> str:
    lines = []
    for check in checks:
        mark = _ICONS[check.status] if fancy else _TAGS[check.status]
        lines.append(f"{mark} {check.name}: {check.message}")
        if check.fix:
            lines.append(f"{' ' * 5}fix: {check.fix}")
    failed = sum(c.status is Status.FAIL for c in checks)
    warned = sum(c.status is Status.WARN for c in checks)
    warnings = _count(warned, "warning")
    if failed:
        summary = f"Not ready: {_count(failed, 'problem')} to fix, {warnings}"
    elif warned:
        summary = f"Ready to run, with {warnings}"
    else:
        summary = "Ready to run: every check passed"
    lines.append(summary)
    return scrub("\n".join(lines) + "\n", secrets)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
