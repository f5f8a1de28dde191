"""loss.svg: training and evaluation loss against step, drawn from metrics.jsonl as plain SVG
(no plotting stack: it has to work in the slim image and under every rank layout)."""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path

WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 40, 48
SERIES = (("loss", "train loss", "#1f77b4"), ("eval_loss", "eval loss", "#d62728"))


def read_rows(metrics_path: Path) -> list[dict]:
    rows = []
    if metrics_path.is_file():
        for line in metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _points(rows: list[dict], key: str) -> list[tuple[float, float]]:
    out = []
    for row in rows:
        step, value = row.get("step"), row.get(key)
        if (
            isinstance(step, int | float)
            and isinstance(value, int | float)
            and math.isfinite(value)
        ):
            out.append((float(step), float(value)))
    return sorted(out)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.3g}"


def loss_svg(rows: list[dict], title: str = "loss") -> str:
    """An SVG line chart of `loss` (and `eval_loss` when present) against `step`."""
    series = [(label, color, _points(rows, key)) for key, label, color in SERIES]
    series = [s for s in series if s[2]]
    xs = [x for _, _, pts in series for x, _ in pts] or [0.0, 1.0]
    ys = [y for _, _, pts in series for _, y in pts] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    pad = (y1 - y0) * 0.05 or max(abs(y0) * 0.05, 0.05)
    y0, y1 = y0 - pad, y1 + pad
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>',
    ]
    for t in _ticks(y0, y1):
        y = sy(t)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    for t in _ticks(x0, x1):
        x = sx(t)
        out.append(f'<text x="{x:.1f}" y="{TOP + ph + 18}" text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<text x="{LEFT + pw / 2}" y="{HEIGHT - 8}" text-anchor="middle">step</text>')
    for i, (label, color, pts) in enumerate(series):
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(
            f'<polyline class="{escape(label.replace(" ", "-"))}" fill="none" stroke="{color}" '
            f'stroke-width="2" points="{path}"/>'
        )
        if len(pts) == 1:
            x, y = pts[0]
            out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>')
        lx = LEFT + pw - 110
        ly = TOP + 16 + 16 * i
        out.append(
            f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 20}" y2="{ly - 4}" stroke="{color}" stroke-width="2"/>'
        )
        out.append(f'<text x="{lx + 26}" y="{ly}">{escape(label)}</text>')
    if not series:
        out.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no loss logged yet</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
