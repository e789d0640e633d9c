"""SVG drawing primitives for the report: a small-multiple line plot and a horizontal bar chart.

The report must open anywhere without a network, so plots are SVG text written here rather than
a charting library loaded from a CDN. Hovering a point shows its exact value through SVG
``<title>``, which every browser supports with no script at all. Nothing here knows about
results.json: callers hand over points, series and bars already computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values covering [lo, hi]; the first and last are the axis ends."""
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * 0.999)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _tick(v: float) -> str:
    return f"{v:.4g}"


@dataclass(frozen=True)
class Point:
    """One configuration on a plot; ``ring`` marks the baseline or the winner."""

    x: float
    y: float
    tip: str
    ring: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    dash: str
    points: tuple[Point, ...]


W, H = 300, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 14, 24, 36


def line_plot(
    *,
    title: str,
    x_ticks: Sequence[float],
    y_ticks: Sequence[float],
    series: Sequence[Series],
    reference: tuple[float, str] | None,
    plot_id: str,
) -> str:
    """One small multiple: metric (y) over temperature (x), one line per series."""
    x0, x1 = (x_ticks[0], x_ticks[-1]) if len(x_ticks) > 1 else (x_ticks[0] - 1, x_ticks[0] + 1)
    pad = (x1 - x0) * 0.06
    x0, x1 = x0 - pad, x1 + pad
    y0, y1 = y_ticks[0], y_ticks[-1]
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return TOP + ph - (y - y0) / (y1 - y0) * ph

    out = [
        f'<svg class="plot" data-plot="{escape(plot_id)}" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" role="img" aria-label="{escape(title)} over temperature">',
        f'<text class="t" x="{LEFT}" y="14">{escape(title)}</text>',
    ]
    for y in y_ticks:
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>'
            f'<text class="yt" x="{LEFT - 4}" y="{sy(y) + 3:.1f}">{_tick(y)}</text>'
        )
    for x in x_ticks:
        out.append(f'<text class="xt" x="{sx(x):.1f}" y="{TOP + ph + 13}">{_tick(x)}</text>')
    out.append(
        f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{TOP + ph}" y2="{TOP + ph}"/>'
        f'<text class="xl" x="{LEFT + pw / 2:.1f}" y="{H - 4}">temperature</text>'
    )
    if reference is not None:
        ry = sy(reference[0])
        out.append(
            f'<line class="ref" x1="{LEFT}" x2="{W - RIGHT}" y1="{ry:.1f}" y2="{ry:.1f}">'
            f"<title>{escape(reference[1])}</title></line>"
        )
    for s in series:
        pts = sorted(s.points, key=lambda p: p.x)
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        if len(pts) > 1:
            path = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in pts)
            out.append(
                f'<polyline class="ln" points="{path}" stroke="{s.colour}"{dash}>'
                f"<title>{escape(s.name)}</title></polyline>"
            )
        for p in pts:
            cx, cy = sx(p.x), sy(p.y)
            if p.ring:
                out.append(
                    f'<circle class="ring" cx="{cx:.1f}" cy="{cy:.1f}" r="7" stroke="{p.ring}"/>'
                )
            if p.tag:
                out.append(
                    f'<text class="tag" x="{cx:.1f}" y="{cy - 10:.1f}" fill="{p.ring}">{escape(p.tag)}</text>'
                )
            out.append(
                f'<circle class="pt" cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{s.colour}">'
                f"<title>{escape(p.tip)}</title></circle>"
            )
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True)
class Bar:
    """One configuration's row in the bar chart; ``mark`` is ``baseline``, ``winner`` or None."""

    label: str
    values: tuple[float | None, ...]
    mark: str | None = None


def bar_chart(
    rows: Sequence[Bar],
    panels: Sequence[tuple[str, str]],
    plot_id: str,
    aria: str = "latency and tokens per configuration",
) -> str:
    """Horizontal bars, one panel per measure (title, unit), rows sharing one label column."""
    label_w, panel_w, row_h, top = 320, 440, 18, 30
    width = label_w + panel_w * len(panels) + 10
    height = top + row_h * len(rows) + 8
    out = [
        f'<svg class="plot bars" data-plot="{escape(plot_id)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(aria)}">'
    ]
    for i, r in enumerate(rows):
        y = top + i * row_h
        if r.mark:
            out.append(
                f'<rect class="band {r.mark}" x="0" y="{y}" width="{width}" height="{row_h}"/>'
            )
        short = r.label if len(r.label) <= 44 else r.label[:43] + "…"
        tag = f" ({r.mark})" if r.mark else ""
        out.append(
            f'<text class="bl{" strong" if r.mark else ""}" x="{label_w - 8}" y="{y + 13}">'
            f"<title>{escape(r.label)}</title>{escape(short + tag)}</text>"
        )
    for j, (name, unit) in enumerate(panels):
        x = label_w + j * panel_w
        vals = [v for r in rows if (v := r.values[j]) is not None]
        top_v = nice_ticks(0, max(vals, default=1.0) or 1.0, 3)[-1]
        out.append(f'<text class="t" x="{x}" y="14">{escape(name)} ({escape(unit)})</text>')
        out.append(f'<line class="axis" x1="{x}" x2="{x}" y1="{top - 4}" y2="{height - 6}"/>')
        scale = (panel_w - 70) / top_v
        for i, r in enumerate(rows):
            v = r.values[j]
            y = top + i * row_h
            if v is None:
                out.append(f'<text class="bv" x="{x + 4}" y="{y + 13}">n/a</text>')
                continue
            tip = escape(f"{r.label}: {name} {v:.3g} {unit}")
            out.append(
                f'<rect class="bar b{j}" x="{x}" y="{y + 3}" width="{max(v * scale, 1):.1f}" '
                f'height="{row_h - 6}"><title>{tip}</title></rect>'
                f'<text class="bv" x="{x + max(v * scale, 1) + 4:.1f}" y="{y + 13}">{v:.3g}</text>'
            )
    out.append("</svg>")
    return "".join(out)
