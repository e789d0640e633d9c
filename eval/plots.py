"""The report's charts: metric-over-temperature small multiples per template, and their legend.

A page of many small plots is only readable if one series looks the same everywhere: colours and
dashes are assigned once over all configurations (``Styler``) and a metric's y scale is shared
across templates. The drawing itself is ``eval.svg``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from eval.report_data import Metric, ci_text, comparison, num, param_text
from eval.svg import Point, Series, line_plot, nice_ticks

# Okabe-Ito: distinguishable with the common colour-vision deficiencies and in greyscale print.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999933", "#000000")
DASHES = ("", "6 4", "2 3", "9 3 2 3")
# Parameters that split a template's configurations into lines; temperature is the x axis.
SERIES_PARAMS = (
    "rag.sampling.top_k",
    "rag.retrieval.k",
    "rag.sampling.top_p",
    "rag.sampling.max_tokens",
)
BASELINE_RING, WINNER_RING = "#1f2328", "#1a7f37"


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
    temps = sorted(
        {t for c in configs if (t := num(c.get("rag.sampling.temperature"))) is not None}
    )
    base_metrics = (baseline or {}).get("metrics") or {}
    out: list[tuple[str, list[str]]] = []
    for template in sorted({str(c.get("rag.template", "?")) for c in configs}):
        mine = [c for c in configs if str(c.get("rag.template", "?")) == template]
        cells = []
        for m in metrics:
            values = [v for c in configs if (v := _metric(c, m.name)) is not None]
            if not values or not temps:
                continue
            lo, hi = min(values), max(values)
            spread = (hi - lo) * 0.08 or max(abs(hi) * 0.05, 0.01)
            groups: dict[tuple[tuple[int, str], ...], list[Point]] = {}
            for c in mine:
                v, t = _metric(c, m.name), num(c.get("rag.sampling.temperature"))
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
