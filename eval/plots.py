"""Inline SVG plots for the sweep report: metric-over-temperature small multiples and a bar chart.

The report must open anywhere without a network, so plots are SVG text written here rather than
a charting library loaded from a CDN. Hovering a point shows its exact value through SVG
``<title>``, which every browser supports with no script at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

# Okabe-Ito: distinguishable with the common colour-vision deficiencies and in greyscale print.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999933", "#000000")
DASHES = ("", "6 4", "2 3", "9 3 2 3")
# Parameters that split a template's configurations into lines; temperature is the x axis.
SERIES_PARAMS = ("top_k", "retrieval_k", "top_p", "max_tokens")
PARAM_NAMES = {"top_k": "top-k", "retrieval_k": "k", "top_p": "top-p", "max_tokens": "max tokens"}
BASELINE_RING, WINNER_RING = "#1f2328", "#1a7f37"


def num(v: Any) -> float | None:
    """A finite float, or None for null, NaN, booleans and anything else a writer left there."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def param_text(name: str, value: Any) -> str:
    """``top-k 40``, ``k=5``: how the verdict sentence and the legends name one parameter value."""
    shown = "–" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    return f"k={shown}" if name == "retrieval_k" else f"{PARAM_NAMES.get(name, name)} {shown}"


def config_label(c: Mapping[str, Any], extras: Sequence[str] = ()) -> str:
    """``grounded-qa@2, T=0.3, top-k 40, k=5``; ``extras`` adds the other swept parameters."""
    t = num(c.get("temperature"))
    parts = [str(c.get("template", "?")), "T=?" if t is None else f"T={t:g}"]
    parts += [param_text(p, c.get(p)) for p in ("top_k", "retrieval_k", *extras)]
    return ", ".join(parts)


@dataclass(frozen=True)
class Metric:
    """A metric as the page shows it: its direction decides colours, "better" and sort order."""

    name: str
    title: str
    description: str
    higher_is_better: bool


def comparison(c: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    """``c``'s paired comparison with the baseline on ``metric``, if the writer recorded one."""
    cmp = (c.get("vs_baseline") or {}).get(metric)
    return cmp if isinstance(cmp, Mapping) and num(cmp.get("diff")) is not None else None


def ci_text(cmp: Mapping[str, Any], digits: int | None = None) -> str:
    """``+0.05 [0.01, 0.09]``: the mean paired difference and its 95% interval.

    Tables pass ``digits`` so a column lines up; prose drops a third decimal that says nothing.
    """
    diff, lo, hi = num(cmp.get("diff")) or 0.0, num(cmp.get("ci_low")), num(cmp.get("ci_high"))
    bounds = [v for v in (lo, hi) if v is not None]
    # Three decimals, unless two say it exactly (so "+0.05 [0.01, 0.09]" reads as written).
    d = digits or (2 if all(abs(v * 100 - round(v * 100)) < 1e-6 for v in (diff, *bounds)) else 3)
    ci = f" [{lo:.{d}f}, {hi:.{d}f}]" if lo is not None and hi is not None else ""
    return f"{diff:+.{d}f}{ci}"


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


class Styler:
    """One colour per value of the first swept series parameter, one dash per value of the second.

    Computed once over all configurations, so ``top-k 40`` is the same colour in every plot of the
    page. With three or more swept parameters each combination gets its own colour instead.
    """

    def __init__(self, configs: Sequence[Mapping[str, Any]]) -> None:
        values = {p: sorted({_key(c.get(p)) for c in configs}) for p in SERIES_PARAMS}
        self.dims = [p for p in SERIES_PARAMS if len(values[p]) > 1]
        self._values = values
        self._combos = sorted({self.key(c) for c in configs})

    def key(self, c: Mapping[str, Any]) -> tuple[tuple[int, str], ...]:
        return tuple(_key(c.get(p)) for p in self.dims)

    def style(self, key: tuple[tuple[int, str], ...]) -> tuple[str, str]:
        """(stroke colour, dash pattern) for one series."""
        if len(self.dims) > 2 or not self.dims:
            return PALETTE[self._combos.index(key) % len(PALETTE)], ""
        colour = PALETTE[self._values[self.dims[0]].index(key[0]) % len(PALETTE)]
        if len(self.dims) == 1:
            return colour, ""
        return colour, DASHES[self._values[self.dims[1]].index(key[1]) % len(DASHES)]

    def name(self, c: Mapping[str, Any]) -> str:
        return self.name_of(self.key(c))

    def name_of(self, key: tuple[tuple[int, str], ...]) -> str:
        parts = [param_text(p, _unkey(k)) for p, k in zip(self.dims, key, strict=True)]
        return ", ".join(parts) or "all configurations"

    def legend(self, configs: Sequence[Mapping[str, Any]], winner: bool = True) -> str:
        """HTML legend (swatches are CSS borders, so the page's SVGs are only the plots)."""
        entries: list[tuple[str, str, str]] = []
        if len(self.dims) in (1, 2):
            for i, v in enumerate(self._values[self.dims[0]]):
                entries.append((param_text(self.dims[0], _unkey(v)), PALETTE[i % len(PALETTE)], ""))
            for i, v in enumerate(self._values[self.dims[1]] if len(self.dims) == 2 else []):
                entries.append((param_text(self.dims[1], _unkey(v)), "#57606a", DASHES[i % 4]))
        else:
            names = {self.key(c): self.name(c) for c in configs}
            entries = [(names[k], self.style(k)[0], "") for k in self._combos if k in names]
        items = "".join(
            f'<span class="sw"><i style="background:{_css_dash(d, col)}"></i>{escape(t)}</span>'
            for t, col, d in entries
        )
        marks = '<span class="sw"><b class="ring base"></b>baseline (serving)</span>'
        if winner:
            marks += '<span class="sw"><b class="ring win"></b>winner</span>'
        marks += '<span class="sw"><i class="ref"></i>baseline value</span>'
        return f'<div class="legend">{items}{marks}</div>'


def _key(v: Any) -> tuple[int, str]:
    """Sortable key for a parameter value: None first, then numbers by value, then strings."""
    if v is None:
        return (0, "")
    n = num(v)
    return (1, f"{n:020.6f}") if n is not None else (2, str(v))


def _unkey(k: tuple[int, str]) -> Any:
    if k[0] == 0:
        return None
    if k[0] == 1:
        n = float(k[1])
        return int(n) if n.is_integer() else n
    return k[1]


def _css_dash(dash: str, colour: str) -> str:
    """The SVG dash pattern as a CSS gradient, so legend swatches match the lines exactly."""
    if not dash:
        return colour
    stops, at = [], 0
    for i, length in enumerate(int(x) for x in dash.split()):
        paint = colour if i % 2 == 0 else "transparent"
        stops.append(f"{paint} {at}px {at + length}px")
        at += length
    return f"repeating-linear-gradient(90deg, {', '.join(stops)})"


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


def bar_chart(rows: Sequence[Bar], panels: Sequence[tuple[str, str]], plot_id: str) -> str:
    """Horizontal bars, one panel per measure (title, unit), rows sharing one label column."""
    label_w, panel_w, row_h, top = 320, 440, 18, 30
    width = label_w + panel_w * len(panels) + 10
    height = top + row_h * len(rows) + 8
    out = [
        f'<svg class="plot bars" data-plot="{escape(plot_id)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="latency and tokens per configuration">'
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


def metric_grid(
    configs: Sequence[Mapping[str, Any]],
    metrics: Sequence[Metric],
    baseline: Mapping[str, Any] | None,
    winner: Mapping[str, Any] | None,
    label: Callable[[Mapping[str, Any]], str],
) -> list[tuple[str, list[str]]]:
    """Per template, one small multiple per metric; a metric's y scale is shared across templates.

    Shared scales let the eye compare templates; the baseline's value is drawn as a reference
    line in every plot, so a template without the baseline still shows where it stands.
    """
    styler = Styler(configs)
    temps = sorted({t for c in configs if (t := num(c.get("temperature"))) is not None})
    base_metrics = (baseline or {}).get("metrics") or {}
    out: list[tuple[str, list[str]]] = []
    for template in sorted({str(c.get("template", "?")) for c in configs}):
        mine = [c for c in configs if str(c.get("template", "?")) == template]
        cells = []
        for m in metrics:
            values = [v for c in configs if (v := _metric(c, m.name)) is not None]
            if not values or not temps:
                continue
            lo, hi = min(values), max(values)
            spread = (hi - lo) * 0.08 or max(abs(hi) * 0.05, 0.01)
            groups: dict[tuple[tuple[int, str], ...], list[Point]] = {}
            for c in mine:
                v, t = _metric(c, m.name), num(c.get("temperature"))
                if v is None or t is None:
                    continue
                cmp = comparison(c, m.name)
                tip = f"{label(c)}\n{m.title} {v:.3f}" + (
                    f"\nvs baseline {ci_text(cmp)}" if cmp and c is not baseline else ""
                )
                ring, tag = (
                    (WINNER_RING, "winner")
                    if c is winner
                    else (BASELINE_RING, "baseline")
                    if c is baseline
                    else (None, None)
                )
                groups.setdefault(styler.key(c), []).append(Point(t, v, tip, ring, tag))
            series = [
                Series(styler.name_of(k), *styler.style(k), tuple(p)) for k, p in groups.items()
            ]
            ref_v = _metric(baseline or {}, m.name) if base_metrics else None
            cells.append(
                line_plot(
                    title=f"{m.title} {'↑' if m.higher_is_better else '↓'}",
                    x_ticks=temps,
                    y_ticks=nice_ticks(lo - spread, hi + spread),
                    series=series,
                    reference=None if ref_v is None else (ref_v, f"baseline {m.title} {ref_v:.3f}"),
                    plot_id=f"{template}/{m.name}",
                )
            )
        out.append((template, cells))
    return out


def _metric(c: Mapping[str, Any], name: str) -> float | None:
    return num((c.get("metrics") or {}).get(name))
