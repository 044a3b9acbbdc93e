"""Charts as SVG text made on the server: no JavaScript, no CDN, nothing for the browser to fetch. Every value
written into the markup is a number we computed or escaped text."""

from __future__ import annotations

from html import escape
from typing import Any

W, H = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 40
GREEN, RED, GREY, BLUE, DARK = "#2e7d32", "#c62828", "#9e9e9e", "#1565c0", "#333333"


def _x(i: float, n: float) -> float:
    return LEFT + (W - LEFT - RIGHT) * (i / n if n else 0)


def _y(v: float) -> float:
    return TOP + (H - TOP - BOTTOM) * (1 - v)


def _frame(title: str, body: list[str], x_label: str, y_label: str, y_max: float | None = None) -> str:
    """Axes, grid and labels around `body`; y ticks in percent, or in counts up to `y_max`."""
    ticks = []
    for v in (0, 0.25, 0.5, 0.75, 1):
        y = _y(v)
        ticks.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{W - RIGHT}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        label = f"{v:.0%}" if y_max is None else f"{v * y_max:.3g}"
        ticks.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{label}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'aria-label="{escape(title)}" class="chart"><title>{escape(title)}</title>'
            + "".join(ticks) + "".join(body)
            + f'<line x1="{LEFT}" y1="{_y(0):.1f}" x2="{W - RIGHT}" y2="{_y(0):.1f}" stroke="{DARK}"/>'
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{_y(0):.1f}" stroke="{DARK}"/>'
            f'<text x="{(LEFT + W - RIGHT) / 2:.0f}" y="{H - 6}" text-anchor="middle" font-size="12">{escape(x_label)}</text>'
            f'<text x="12" y="{(TOP + H - BOTTOM) / 2:.0f}" text-anchor="middle" font-size="12" '
            f'transform="rotate(-90 12 {(TOP + H - BOTTOM) / 2:.0f})">{escape(y_label)}</text></svg>')


def acceptance_weekly(weeks: list[dict[str, Any]], band: tuple[float, float] | None = None) -> str:
    """Acceptance per week (points joined) with each week's Wilson interval as a bar; `band`: a baseline interval."""
    body = []
    n = len(weeks)
    if band:
        body.append(f'<rect x="{LEFT}" y="{_y(band[1]):.1f}" width="{W - LEFT - RIGHT}" '
                    f'height="{_y(band[0]) - _y(band[1]):.1f}" fill="{BLUE}" fill-opacity="0.12"/>')
    points = []
    for i, week in enumerate(weeks):
        x = _x(i + 0.5, n)
        if week["acceptance"] is None:
            continue
        low, high = week["acceptance_ci"]
        body.append(f'<line x1="{x:.1f}" y1="{_y(low):.1f}" x2="{x:.1f}" y2="{_y(high):.1f}" stroke="{BLUE}" '
                    f'stroke-width="2"><title>{escape(week["week"])}: {week["acceptance"]:.0%} '
                    f'({low:.0%}-{high:.0%}, {week["decided"]} decided)</title></line>')
        points.append(f"{x:.1f},{_y(week['acceptance']):.1f}")
        body.append(f'<circle cx="{x:.1f}" cy="{_y(week["acceptance"]):.1f}" r="3.5" fill="{BLUE}"/>')
    if len(points) > 1:
        body.insert(1 if band else 0, f'<polyline points="{" ".join(points)}" fill="none" stroke="{BLUE}" '
                                      f'stroke-opacity="0.5"/>')
    step = max(1, n // 8)
    for i in range(0, n, step):
        body.append(f'<text x="{_x(i + 0.5, n):.1f}" y="{H - BOTTOM + 14}" text-anchor="middle" font-size="10">'
                    f'{escape(weeks[i]["week"][5:])}</text>')
    if band:
        body.append(f'<text x="{W - RIGHT - 4}" y="{_y(band[1]) - 3:.1f}" text-anchor="end" font-size="10" '
                    f'fill="{BLUE}">baseline interval</text>')
    return _frame("Acceptance per week with 95% interval", body, "week (Monday)", "acceptance")


def score_histogram(bins: list[dict[str, Any]], threshold: float | None) -> str:
    """Findings per score bin, split into accepted (green), rejected (red) and undecided (grey)."""
    peak = max((b["findings"] for b in bins), default=0) or 1
    n = len(bins)
    body = []
    for i, b in enumerate(bins):
        x0, x1 = _x(i, n) + 1, _x(i + 1, n) - 1
        base = 0.0
        for count, colour in ((b["accepted"], GREEN), (b["rejected"], RED), (b["pending"], GREY)):
            if count:
                top = base + count / peak
                body.append(f'<rect x="{x0:.1f}" y="{_y(top):.1f}" width="{x1 - x0:.1f}" '
                            f'height="{_y(base) - _y(top):.1f}" fill="{colour}"/>')
                base = top
    for i in range(0, n + 1, 4):
        body.append(f'<text x="{_x(i, n):.1f}" y="{H - BOTTOM + 14}" text-anchor="middle" font-size="10">{i / n:.1f}</text>')
    if threshold is not None:
        x = _x(threshold * n, n)
        body.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{_y(0):.1f}" stroke="{DARK}" stroke-dasharray="4 3"/>'
                    f'<text x="{x:.1f}" y="{TOP - 4}" text-anchor="middle" font-size="10">threshold {threshold:.3g}</text>')
    body.append(f'<text x="{W - RIGHT}" y="{TOP - 4}" text-anchor="end" font-size="10">'
                f'<tspan fill="{GREEN}">accepted</tspan> <tspan fill="{RED}">rejected</tspan> '
                f'<tspan fill="{GREY}">undecided</tspan></text>')
    return _frame("Score histogram: accepted, rejected, undecided", body, "score", "findings", peak)


def operating_curve(points: list[dict[str, Any]]) -> str:
    """Fraction of accepted findings kept (y) against fraction of rejected ones kept (x), one point per threshold."""
    body = [f'<line x1="{_x(0, 1):.1f}" y1="{_y(0):.1f}" x2="{_x(1, 1):.1f}" y2="{_y(1):.1f}" stroke="#e0e0e0"/>']
    usable = [p for p in points if p["accepted_kept"] is not None and p["rejected_kept"] is not None]
    coords = [f"{_x(p['rejected_kept'], 1):.1f},{_y(p['accepted_kept']):.1f}" for p in usable]
    if len(coords) > 1:
        body.append(f'<polyline points="{" ".join(coords)}" fill="none" stroke="{BLUE}"/>')
    for p in usable:
        x, y = _x(p["rejected_kept"], 1), _y(p["accepted_kept"])
        colour = RED if p["in_force"] else BLUE
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{5 if p["in_force"] else 3}" fill="{colour}">'
                    f'<title>threshold {p["threshold"]:.2f}: {p["shown"]} shown</title></circle>')
        if p["in_force"]:
            anchor, dx = ("end", -8) if x > W / 2 else ("start", 8)
            body.append(f'<text x="{x + dx:.1f}" y="{y + 14:.1f}" text-anchor="{anchor}" font-size="10">'
                        f'threshold in force ({p["threshold"]:.2f})</text>')
    for v in (0, 0.5, 1):
        body.append(f'<text x="{_x(v, 1):.1f}" y="{H - BOTTOM + 14}" text-anchor="middle" font-size="10">{v:.0%}</text>')
    return _frame("Operating points: accepted kept against rejected kept", body, "rejected findings still shown",
                  "accepted findings still shown")
