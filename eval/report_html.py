"""The report page as HTML: its header, verdict and charts, the inline style and script, the whole.

The page leads with the verdict because that is what a prompt engineer opens it for; the charts
and tables below make it believable. Everything is inline (CSS, SVG, a few lines of script for
sorting) so the file can be mailed, attached to a CI run or opened offline. Every string from the
data is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any

from eval import plots
from eval.report_data import Run, ci_text, comparison, num, verdict
from eval.report_tables import configs_section, id_code, questions_section
from eval.svg import Bar, bar_chart

MAX_PLOTTED_METRICS = 6  # small multiples per template; the table has every metric


def _header(run: Run) -> str:
    info = run.info
    created = info.get("created")
    stamp = num(created)
    when = (
        datetime.fromtimestamp(stamp, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
        if stamp is not None
        else str(created or "–")
    )
    n_q = len(run.cases) or int(num(info.get("cases")) or 0)
    facts = [
        ("Dataset", str(info.get("dataset") or "–")),
        ("Model", str(info.get("model") or "–")),
        ("Index version", str(info.get("index_version", "–"))),
        ("Date", when),
        ("Sweep", f"{len(run.configs)} configurations × {n_q} questions"),
        ("Run time", _duration(num(info.get("seconds")))),
    ]
    cache = info.get("cache") or {}
    for kind in ("retrieval", "generation"):
        hits, misses = num(cache.get(f"{kind}_hits")), num(cache.get(f"{kind}_misses"))
        if hits is not None and misses is not None and hits + misses > 0:
            pct = 100 * hits / (hits + misses)
            facts.append((f"{kind} cache", f"{pct:.0f}% hits ({hits:g} of {hits + misses:g})"))
    judge = info.get("judge")
    stats = info.get("judge_stats")
    if isinstance(judge, Mapping):
        stats = stats or judge.get("stats")
        judge = judge.get("model") or judge.get("base_url")
    if judge:
        facts.append(("Judge", str(judge)))
    if isinstance(stats, Mapping):
        counts = [f"{k} {v}" for k, v in stats.items() if num(v) is not None]
        facts.append(("Judge calls", ", ".join(counts)))
    failed = isinstance(stats, Mapping) and (num(stats.get("failures")) or 0) > 0
    cards = "".join(
        f'<div class="fact{" warn" if failed and k == "Judge calls" else ""}"><span>{escape(k)}'
        f"</span><b>{escape(v)}</b></div>"
        for k, v in facts
    )
    errors = stats.get("errors") if isinstance(stats, Mapping) else None
    if errors:
        items = "".join(f"<li>{escape(str(e))}</li>" for e in errors)
        cards += (
            f'<details class="fact wide"><summary>Judge errors</summary><ul>{items}</ul></details>'
        )
    title = escape(f"Sweep report: {info.get('dataset') or 'evaluation'}")
    return f'<header><h1>{title}</h1><div class="facts">{cards}</div></header>'


def _duration(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 120:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    return f"{m // 60} h {m % 60} min" if m >= 60 else f"{m} min {sec} s"


def _verdict(run: Run) -> str:
    cls = "win" if run.winner is not None else "none"
    lines = []
    if run.baseline is not None:
        lines.append(
            f"Serving configuration (baseline): {escape(run.label(run.baseline))} {id_code(run.baseline)}"
        )
    other = run.challenger()
    if other is not None and run.primary is not None:
        p = run.primary
        role = "Winner" if run.winner is not None else "Closest candidate"
        cmp = comparison(other, p.name)
        if cmp is not None:
            n = cmp.get("n")
            extra = f" ({run.ci} over {n} paired questions)" if n else f" ({run.ci})"
            lines.append(
                f"{role}: {escape(run.label(other))} {id_code(other)}: {escape(p.title)} "
                f"{escape(ci_text(cmp) + extra)}"
            )
        for word, flag in (("Also better on", "better"), ("Worse on", "worse")):
            hits = [
                f"{m.title} {ci_text(cmp)}"
                for m in run.metrics[1:]
                if (cmp := comparison(other, m.name)) and cmp.get(flag)
            ]
            if hits:
                lines.append(f"{word}: {escape('; '.join(hits))}")
    body = "".join(f"<p>{line}.</p>" for line in lines)
    return f'<section class="verdict {cls}" id="verdict"><p class="big">{escape(verdict(run))}</p>{body}</section>'


def _plots(run: Run) -> str:
    grid = plots.metric_grid(
        run.configs, run.metrics[:MAX_PLOTTED_METRICS], run.baseline, run.winner, run.label
    )
    if not grid:
        return ""
    note = (
        "One line per setting of the other parameters, in the same colour on every plot; hover a "
        f"point for its value and its difference from the baseline ({run.ci})."
    )
    if len(run.metrics) > MAX_PLOTTED_METRICS:
        note += " Further metrics are in the configuration table."
    parts = [
        f'<section id="plots"><h2>Metrics over temperature</h2><p class="note">{note}</p>',
        plots.Styler(run.configs).legend(run.configs, winner=run.winner is not None),
    ]
    for template, cells in grid:
        parts.append(f'<h3>{escape(template)}</h3><div class="grid">{"".join(cells)}</div>')
    return "".join(parts) + "</section>"


def _costs(run: Run) -> str:
    """Latency and tokens beside each other, in table order, so a winner's price is visible."""
    ranked = run.ranked()
    if not ranked:
        return ""
    bars = [
        Bar(
            label=run.label(c),
            values=(num(c.get("latency_p50")), num(c.get("tokens_mean"))),
            mark="baseline" if c is run.baseline else "winner" if c is run.winner else None,
        )
        for c in ranked
    ]
    chart = bar_chart(bars, [("latency p50", "s"), ("tokens per answer", "mean")], "costs")
    return (
        '<section id="costs"><h2>Latency and tokens</h2><p class="note">Same order as the table: '
        "best on the primary metric first. Cached answers keep their original timings.</p>"
        f'<div class="scroll">{chart}</div></section>'
    )


CSS = """
:root{--fg:#1f2328;--mut:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--ok:#1a7f37;--bad:#cf222e}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:#fff}
main{max-width:1320px;margin:0 auto;padding:0 24px 48px}
nav{position:sticky;top:0;z-index:2;background:rgba(255,255,255,.94);border-bottom:1px solid var(--line);padding:8px 24px;font-size:13px}
nav a{color:var(--mut);margin-right:18px;text-decoration:none}nav a:hover{color:var(--fg)}
h1{font-size:22px;margin:22px 0 12px}h2{font-size:18px;margin:34px 0 6px}h3{font-size:15px;margin:18px 0 6px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:var(--bg);padding:1px 4px;border-radius:4px}
.facts{display:flex;flex-wrap:wrap;gap:8px}
.fact{background:var(--bg);border:1px solid var(--line);border-radius:8px;padding:6px 12px}
.fact span{display:block;font-size:11px;color:var(--mut);text-transform:uppercase;letter-spacing:.04em}
.fact.wide{flex-basis:100%}.fact.warn{border-color:var(--bad);background:#fff5f5}
.verdict{margin:22px 0 8px;padding:16px 20px;border-radius:10px;border:1px solid var(--line);border-left:6px solid var(--mut);background:var(--bg)}
.verdict.win{border-left-color:var(--ok);background:#f0fff4}
.verdict .big{font-size:19px;font-weight:600;margin:0 0 8px}.verdict p{margin:4px 0}
.note{color:var(--mut);margin:0 0 10px;max-width:900px}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;margin:6px 0 4px;font-size:12px;color:var(--mut)}
.sw{display:inline-flex;align-items:center;gap:6px}.sw i{display:inline-block;width:26px;height:3px}
.ring{display:inline-block;width:11px;height:11px;border-radius:50%;border:2px solid #1f2328}.ring.win{border-color:#1a7f37}
.sw i.ref{height:0;border-top:1.5px dashed #8c959f}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:10px}
svg.plot{width:100%;height:auto;background:#fff;border:1px solid var(--line);border-radius:8px;font-size:10px}

svg .t{font-size:12px;font-weight:600;fill:var(--fg)}svg .yt{text-anchor:end;fill:var(--mut)}
svg .xt,svg .xl{text-anchor:middle;fill:var(--mut)}svg .grid{stroke:#eaeef2}svg .axis{stroke:#8c959f}
svg .ref{stroke:#8c959f;stroke-dasharray:4 3;stroke-width:1.2}
svg .ln{fill:none;stroke-width:1.8;opacity:.9}svg .pt{stroke:#fff;stroke-width:1}svg .pt:hover{r:5}
svg .ring{fill:none;stroke-width:2}svg .tag{font-size:9px;font-weight:600;text-anchor:middle}
svg .bl{text-anchor:end;fill:var(--fg);font-size:11px}svg .strong{font-weight:700}
svg .bv{font-size:10px;fill:var(--mut)}svg .b0{fill:#0072B2}svg .b1{fill:#E69F00}
svg .band.baseline{fill:#eaeef2}svg .band.winner{fill:#dafbe1}
.scroll{overflow-x:auto}
table{border-collapse:collapse;font-size:12.5px}
th{background:var(--bg);text-align:left;font-weight:600;border-bottom:2px solid var(--line);padding:6px 8px;vertical-align:bottom}
th[data-sort]{cursor:pointer}th[data-sort]:hover{color:#0969da}
td{border-bottom:1px solid var(--line);padding:5px 8px;vertical-align:top}
table.cfg td{white-space:nowrap}table.cfg td.n{text-align:right}
tr.baseline td{border-top:1.5px solid var(--fg)}tr.winner td{font-weight:600}
.d{font-size:11px;color:var(--mut);font-weight:400}.d.better{color:var(--ok);font-weight:700}.d.worse{color:var(--bad)}
.badge{font-size:10px;border-radius:9px;padding:0 6px;background:#eaeef2;color:var(--fg);font-weight:600}
.badge.winner{background:#1a7f37;color:#fff}.badge.baseline{background:#1f2328;color:#fff}
.badge.cited{background:#ddf4ff;color:#0969da}.badge.top{background:#fff8c5;color:#7d4e00}
table.qs{width:100%;table-layout:fixed}table.qs th:nth-child(1){width:30%}table.qs th:nth-child(2){width:7%}
.cid{font:11px ui-monospace,monospace;color:var(--mut)}.q{font-weight:600;margin:2px 0 4px}
.gt{color:var(--mut);font-size:12px;margin-bottom:4px}.dl{font-weight:700;text-align:right}
.ans .text{white-space:pre-wrap;margin-bottom:6px}.ans.missing{color:var(--mut)}
.sc{display:inline-block;font-size:11px;color:var(--mut);margin:0 8px 2px 0}
.sc.primary{color:var(--fg)}.sc.diff{font-weight:700}
details{margin:4px 0;font-size:12px}summary{cursor:pointer;color:#0969da}
details ol{margin:4px 0;padding-left:18px;max-height:18em;overflow:auto}details li{margin-bottom:6px;white-space:pre-wrap}
.src{font-size:11px;color:var(--mut)}
"""

# Sorting only: the page reads fine without it.
SCRIPT = """
document.querySelectorAll("table.sortable th[data-sort]").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    var up = th.getAttribute("data-dir") !== "asc", num = th.getAttribute("data-sort") === "n";
    th.setAttribute("data-dir", up ? "asc" : "desc");
    function key(row) {
      var v = row.cells[col].getAttribute("data-v");
      return v === null || v === "" ? null : num ? parseFloat(v) : v;
    }
    Array.prototype.slice.call(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1;
      var c = num ? x - y : String(x).localeCompare(String(y));
      return up ? c : -c;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""


def render(results: Mapping[str, Any]) -> str:
    """The whole page as one string."""
    run = Run(results)
    title = escape(f"ragtune sweep: {run.info.get('dataset') or 'report'}")
    nav = "".join(
        f'<a href="#{a}">{t}</a>'
        for a, t in (
            ("verdict", "Verdict"),
            ("plots", "Plots"),
            ("configs", "Configurations"),
            ("costs", "Latency & tokens"),
            ("questions", "Questions"),
        )
    )
    sections = [
        _header(run),
        _verdict(run),
        _plots(run),
        configs_section(run),
        _costs(run),
        questions_section(run),
    ]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body><nav>{nav}</nav><main>{''.join(sections)}</main>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
