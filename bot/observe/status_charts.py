"""The status page's charts as inline SVG, drawn on the server: Segmind requests per minute
against the plan's limit, and job durations. Every mark has a <title> and the axes carry
text labels, so the charts read without colour, hovering or JavaScript."""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 44  # margins: room for the axis labels
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above `value` (at least 1): a round top."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop's last step always fits


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _y(value: float, top: float) -> float:
    return TOP + PLOT_H - value / top * PLOT_H


def _frame(title: str, y_label: str, x_label: str, top: float, x_ticks: str) -> list[str]:
    """The SVG's opening, its accessible title, the axes, their ticks and labels."""
    base = TOP + PLOT_H
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{LEFT + PLOT_W}" y2="{base}"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = _y(top * fraction, top)
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{_num(top * fraction)}</text>"
        )
    parts.append(x_ticks)
    parts.append(
        f'<text class="label" x="{LEFT + PLOT_W / 2}" y="{HEIGHT - 6}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text class="label" x="14" y="{TOP + PLOT_H / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + PLOT_H / 2})">{escape(y_label)}</text>'
    )
    return parts


def _minute_ticks() -> str:
    """'60', '30', '0' minutes ago under a left-to-right hour."""
    base = TOP + PLOT_H
    return "".join(
        f'<text class="tick" x="{LEFT + PLOT_W * (60 - ago) / 60:.1f}" y="{base + 16}" '
        f'text-anchor="middle">{"now" if ago == 0 else f"-{ago} min"}</text>'
        for ago in (60, 45, 30, 15, 0)
    )


def requests_chart(counts: list[int], limit: int, labels: list[str]) -> str:
    """One bar per minute (oldest left; `labels[i]` names minute i), and a line at
    `limit` requests per minute unless it is 0 (no limit)."""
    top = nice_ceiling(max([*counts, limit, 1]) * 1.1)
    parts = _frame(
        "Segmind requests per minute, last hour",
        "requests per minute",
        "minutes ago (each bar one minute)",
        top,
        _minute_ticks(),
    )
    slot = PLOT_W / max(1, len(counts))
    for i, (count, label) in enumerate(zip(counts, labels, strict=True)):
        y = _y(count, top)
        parts.append(
            f'<rect class="bar" x="{LEFT + i * slot + 1:.1f}" y="{y:.1f}" '
            f'width="{slot - 2:.1f}" height="{TOP + PLOT_H - y:.1f}">'
            f"<title>{escape(label)}: {count} request{'' if count == 1 else 's'}</title></rect>"
        )
    if limit:
        y = _y(limit, top)
        parts.append(
            f'<line class="limit" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + PLOT_W}" y2="{y:.1f}">'
            f"<title>limit: {limit} per minute (SEGMIND_RPM)</title></line>"
            f'<text class="limit-label" x="{LEFT + PLOT_W - 4}" y="{y - 5:.1f}" '
            f'text-anchor="end">limit {limit}/min</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def durations_chart(points: list[tuple[float, float]]) -> str:
    """A scatter of (seconds ago, seconds taken): when each job finished, how long it took."""
    top = nice_ceiling(max([s for _, s in points] + [1.0]) * 1.1)
    parts = _frame(
        "Job durations, last hour",
        "job duration (seconds)",
        "finished (minutes ago)",
        top,
        _minute_ticks(),
    )
    for ago, seconds in points:
        x = LEFT + PLOT_W * (1 - min(ago, 3600.0) / 3600.0)
        parts.append(
            f'<circle class="dot" cx="{x:.1f}" cy="{_y(seconds, top):.1f}" r="4">'
            f"<title>{_num(seconds)} s, finished {_num(ago / 60)} min ago</title></circle>"
        )
    if not points:
        parts.append(
            f'<text class="empty" x="{LEFT + PLOT_W / 2}" y="{TOP + PLOT_H / 2}" '
            'text-anchor="middle">no job finished in the last hour</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
