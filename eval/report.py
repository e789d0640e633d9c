"""report.html: a sweep's results as one self-contained page, verdict first.

A prompt engineer should see in seconds whether anything beat the serving configuration, and by
how much beyond noise; the plots, tables and per-question answers are there to make that verdict
believable. Everything is inline (CSS, SVG, a few lines of script for sorting) so the file can be
mailed, attached to a CI run or opened offline. Every string from the data is escaped: questions,
answers and passages are arbitrary text that may well contain HTML.

``python -m eval.report RESULTS_JSON [OUT_DIR]`` regenerates the page from a results.json.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from eval import plots
from eval.plots import Metric, ci_text, comparison, config_label, num

Cfg = Mapping[str, Any]
MAX_PLOTTED_METRICS = 6  # small multiples per template; the table has every metric


def metrics_of(results: Mapping[str, Any]) -> list[Metric]:
    """Every metric some configuration has, the primary one first, then in catalogue order.

    The direction of each metric comes from results.json's own catalogue, else from
    ``eval.metrics.METRICS`` (imported only here), else "higher is better", which holds for
    nearly all of ours: a report of an older or foreign results file still renders.
    """
    known: dict[str, Any] = {}
    try:
        for name, info in importlib.import_module("eval.metrics").METRICS.items():
            known[name] = {k: getattr(info, k, None) for k in ("description", "higher_is_better")}
    except (ImportError, AttributeError):
        pass
    known.update(results.get("metrics") or {})
    seen: dict[str, None] = {}
    for c in results.get("configs") or []:
        seen.update(dict.fromkeys(c.get("metrics") or {}))
    primary = (results.get("run") or {}).get("primary_metric")
    order = {name: i for i, name in enumerate(known)}
    names = sorted(seen, key=lambda n: (n != primary, order.get(n, len(order))))
    return [
        Metric(
            name=n,
            title=n.replace("_", " "),
            description=str((known.get(n) or {}).get("description") or ""),
            higher_is_better=(known.get(n) or {}).get("higher_is_better") is not False,
        )
        for n in names
    ]


class Run:
    """The results with the lookups every section needs, tolerant of missing optional keys."""

    def __init__(self, results: Mapping[str, Any]) -> None:
        self.info: Mapping[str, Any] = results.get("run") or {}
        self.configs: list[Cfg] = list(results.get("configs") or [])
        self.rows: list[Cfg] = list(results.get("rows") or [])
        self.metrics = metrics_of(results)
        self.primary = self.metrics[0] if self.metrics else None
        base_id = self.info.get("baseline")
        self.baseline = next(
            (c for c in self.configs if c.get("baseline") or c.get("id") == base_id),
            self.configs[0] if self.configs else None,
        )
        self.winner = next(
            (
                c
                for c in self.configs
                if c.get("id") == results.get("winner") and c is not self.baseline
            ),
            None,
        )
        self.extras = [
            p for p in ("top_p", "max_tokens") if len({str(c.get(p)) for c in self.configs}) > 1
        ]
        self.cases = list(dict.fromkeys(row_case(r) for r in self.rows))

    def label(self, c: Cfg) -> str:
        return config_label(c, self.extras)

    def value(self, c: Cfg, metric: str) -> float | None:
        return num((c.get("metrics") or {}).get(metric))

    def ranked(self) -> list[Cfg]:
        """Configurations best first on the primary metric (missing values last)."""
        p = self.primary
        sign = -1.0 if p is None or p.higher_is_better else 1.0

        def key(c: Cfg) -> tuple[bool, float]:
            v = self.value(c, p.name) if p else None
            return (v is None, sign * (v or 0.0))

        return sorted(self.configs, key=key)

    def challenger(self) -> Cfg | None:
        """The winner, else the best other configuration: what the per-question table compares."""
        if self.winner is not None:
            return self.winner
        return next((c for c in self.ranked() if c is not self.baseline), None)


def row_case(r: Cfg) -> str:
    return str(r.get("case_id", r.get("case", "")))


def row_config(r: Cfg) -> str:
    return str(r.get("config_id", r.get("config", "")))


def verdict(run: Run) -> str:
    """The one sentence the page exists for (plain text; the caller escapes it)."""
    if run.primary is None or run.baseline is None:
        return "No metrics were recorded, so there is nothing to compare."
    m = run.primary
    if run.winner is not None and (cmp := comparison(run.winner, m.name)):
        who = run.label(run.winner)
        return f"{who} beats the serving configuration on {m.title} by {ci_text(cmp)}."
    if len(run.configs) < 2:
        return "Only the serving configuration was evaluated; there is nothing to compare it with."
    return f"No configuration beats the baseline beyond noise on {m.title}."


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


def _id(c: Cfg) -> str:
    return f"<code>{escape(str(c.get('id', '')))}</code>"


def _verdict(run: Run) -> str:
    cls = "win" if run.winner is not None else "none"
    lines = []
    if run.baseline is not None:
        lines.append(
            f"Serving configuration (baseline): {escape(run.label(run.baseline))} {_id(run.baseline)}"
        )
    other = run.challenger()
    if other is not None and run.primary is not None:
        p = run.primary
        role = "Winner" if run.winner is not None else "Closest candidate"
        cmp = comparison(other, p.name)
        if cmp is not None:
            n = cmp.get("n")
            extra = f" (95% CI over {n} paired questions)" if n else " (95% CI)"
            lines.append(
                f"{role}: {escape(run.label(other))} {_id(other)}: {escape(p.title)} "
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
        "point for its value and its difference from the baseline (95% CI)."
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


def _shade(v: float | None, lo: float, hi: float, higher_is_better: bool) -> str:
    """A cell background from pale to saturated teal by rank within the column."""
    if v is None or hi <= lo:
        return ""
    t = (v - lo) / (hi - lo)
    t = t if higher_is_better else 1 - t
    return f' style="background:rgba(0,114,178,{0.04 + 0.42 * t:.2f})"'


def _configs(run: Run) -> str:
    params = ["template", "temperature", "top_k", "retrieval_k", *run.extras]
    heads = {"template": "template", "temperature": "T", "top_k": "top-k", "retrieval_k": "k"}
    max_q = max((int(num(c.get("questions")) or 0) for c in run.configs), default=0)
    show_q = any(int(num(c.get("questions")) or max_q) < max_q for c in run.configs)
    th = ['<th data-sort="t">config</th>']
    th += [
        f'<th data-sort="{"t" if p == "template" else "n"}">'
        f"{escape(heads.get(p, plots.PARAM_NAMES.get(p, p)))}</th>"
        for p in params
    ]
    if show_q:
        th.append('<th data-sort="n">questions</th>')
    for m in run.metrics:
        star = " ★" if m is run.primary else ""
        arrow = "↑" if m.higher_is_better else "↓"
        th.append(
            f'<th data-sort="n" title="{escape(m.description)}">{escape(m.title)}{star} {arrow}</th>'
        )
    th += ['<th data-sort="n">latency p50 (s)</th>', '<th data-sort="n">tokens</th>']
    ranges = {}
    for m in run.metrics:
        vals = [v for c in run.configs if (v := run.value(c, m.name)) is not None]
        ranges[m.name] = (min(vals, default=0.0), max(vals, default=0.0))
    body = []
    for c in run.ranked():
        mark = "baseline" if c is run.baseline else "winner" if c is run.winner else ""
        badge = f' <span class="badge {mark}">{mark}</span>' if mark else ""
        tds = [f'<td data-v="{escape(str(c.get("id", "")))}">{_id(c)}{badge}</td>']
        for p in params:
            v = c.get(p)
            shown = "–" if v is None else f"{v:g}" if isinstance(v, float) else str(v)
            tds.append(
                f'<td data-v="{escape(str(v if v is not None else ""))}">{escape(shown)}</td>'
            )
        if show_q:
            q = escape(str(c.get("questions", "")))
            early = " (dropped early)" if c.get("eliminated") else ""
            tds.append(f'<td class="n" data-v="{q}">{q}{early}</td>')
        for m in run.metrics:
            v = run.value(c, m.name)
            cmp = comparison(c, m.name) if c is not run.baseline else None
            diff = ""
            if cmp is not None:
                cls = "better" if cmp.get("better") else "worse" if cmp.get("worse") else ""
                diff = f'<div class="d {cls}">{escape(ci_text(cmp, 3))}</div>'
            shown = "–" if v is None else f"{v:.3f}"
            tds.append(
                f'<td class="n" data-v="{"" if v is None else v}"{_shade(v, *ranges[m.name], m.higher_is_better)}>'
                f"{shown}{diff}</td>"
            )
        for key, fmt in (("latency_p50", "{:.2f}"), ("tokens_mean", "{:.1f}")):
            v = num(c.get(key))
            shown = "–" if v is None else fmt.format(v)
            tds.append(f'<td class="n" data-v="{"" if v is None else v}">{shown}</td>')
        body.append(f'<tr class="{mark}">{"".join(tds)}</tr>')
    return (
        '<section id="configs"><h2>All configurations</h2><p class="note">Best first on the '
        "primary metric (★). Under each mean: the difference from the baseline with its 95% CI, "
        "green when better beyond noise, red when worse. Click a heading to sort.</p>"
        f'<div class="scroll"><table class="sortable cfg"><thead><tr>{"".join(th)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div></section>"
    )


def _costs(run: Run) -> str:
    """Latency and tokens beside each other, in table order, so a winner's price is visible."""
    ranked = run.ranked()
    if not ranked:
        return ""
    bars = [
        plots.Bar(
            label=run.label(c),
            values=(num(c.get("latency_p50")), num(c.get("tokens_mean"))),
            mark="baseline" if c is run.baseline else "winner" if c is run.winner else None,
        )
        for c in ranked
    ]
    chart = plots.bar_chart(bars, [("latency p50", "s"), ("tokens per answer", "mean")], "costs")
    return (
        '<section id="costs"><h2>Latency and tokens</h2><p class="note">Same order as the table: '
        "best on the primary metric first. Cached answers keep their original timings.</p>"
        f'<div class="scroll">{chart}</div></section>'
    )


def _passages(title: str, shown: Cfg | None, citers: Sequence[tuple[str, Cfg | None]]) -> str:
    """The passages ``shown`` retrieved, each marked with which answers cite it."""
    if shown is None:
        return ""
    items = []
    for i, p in enumerate(shown.get("passages") or [], 1):
        n = p.get("n", i)
        src = str(p.get("source") or "?") + (f" p.{p['page']}" if p.get("page") else "")
        score = num(p.get("score"))
        meta = escape(src) + (f" · {score:.3f}" if score is not None else "")
        for who, r in citers:
            if r is not None and n in (r.get("cited") or []):
                meta += f' <span class="badge cited">cited by {escape(who)}</span>'
        items.append(
            f'<li><div class="src">[{n}] {meta}</div>{escape(str(p.get("text", "")))}</li>'
        )
    summary = f"{escape(title)}: {len(items)} passages"
    return f"<details><summary>{summary}</summary><ol>{''.join(items)}</ol></details>"


def _answer(run: Run, r: Cfg | None, other: Cfg | None) -> str:
    """One answer with its scores; scores that differ from ``other``'s are bold, to guide the eye."""
    if r is None:
        return '<td class="ans missing">not evaluated on this question</td>'
    scores = []
    for m in run.metrics:
        v = num((r.get("metrics") or {}).get(m.name))
        if v is None:
            continue
        o = num(((other or {}).get("metrics") or {}).get(m.name))
        cls = " diff" if o is not None and abs(o - v) > 1e-9 else ""
        cls += " primary" if m is run.primary else ""
        scores.append(f'<span class="sc{cls}">{escape(m.title)} {v:.2f}</span>')
    lat, tok = (
        num(r.get("latency", r.get("latency_s"))),
        r.get("tokens", r.get("completion_tokens")),
    )
    cost = [f"{lat:.2f} s" if lat is not None else "", f"{tok} tokens" if tok is not None else ""]
    scores.append(f'<span class="sc cost">{escape(" · ".join(x for x in cost if x))}</span>')
    return f'<td class="ans"><div class="text">{escape(str(r.get("answer", "")))}</div><div>{"".join(scores)}</div></td>'


def _questions(run: Run) -> str:
    """Baseline vs winner (or the best candidate), question by question, largest differences first.

    Means hide where a configuration wins or loses; reading the answers that changed most is how
    a prompt engineer learns why.
    """
    base, other = run.baseline, run.challenger()
    if base is None or not run.rows:
        return ""
    by = {(row_config(r), row_case(r)): r for r in run.rows}
    p = run.primary
    role = "winner" if other is run.winner else "best candidate"
    sign = 1.0 if p is None or p.higher_is_better else -1.0
    entries = []
    for case in run.cases:
        b = by.get((str(base.get("id")), case))
        w = by.get((str(other.get("id")), case)) if other is not None else None
        vb = num(((b or {}).get("metrics") or {}).get(p.name)) if p else None
        vw = num(((w or {}).get("metrics") or {}).get(p.name)) if p else None
        delta = None if vb is None or vw is None else sign * (vw - vb)
        entries.append((case, b, w, delta))
    entries.sort(key=lambda e: -abs(e[3]) if e[3] is not None else 1.0)
    biggest = max((abs(e[3]) for e in entries if e[3] is not None), default=0.0) or 1.0
    trs = []
    for rank, (case, b, w, delta) in enumerate(entries):
        any_row = b or w or {}
        q = escape(str(any_row.get("question", "")))
        gt = any_row.get("ground_truth")
        ref = f'<div class="gt">Reference: {escape(str(gt))}</div>' if gt else ""
        same = b is not None and w is not None and b.get("passages") == w.get("passages")
        if same:
            psg = _passages("retrieved for both", b, [("baseline", b), (role, w)])
        else:
            psg = _passages("baseline retrieved", b, [("baseline", b)])
            psg += _passages(f"{role} retrieved", w, [(role, w)])
        style, dtxt = "", "–"
        if delta is not None:
            hue = "26,127,55" if delta > 0 else "207,34,46"
            style = f' style="box-shadow:inset 4px 0 rgb({hue});background:rgba({hue},{0.22 * abs(delta) / biggest:.2f})"'
            dtxt = f"{sign * delta:+.2f}"
        large = rank < 3 and delta is not None and abs(delta) >= biggest / 2
        top = ' <span class="badge top">large difference</span>' if large else ""
        trs.append(
            f'<tr{style}><td data-v="{escape(case)}"><div class="cid">{escape(case)}{top}</div>'
            f'<div class="q">{q}</div>{ref}{psg}</td><td class="dl" data-v="{"" if delta is None else delta}">'
            f"{dtxt}</td>{_answer(run, b, w)}{_answer(run, w, b) if other is not None else ''}</tr>"
        )
    ptitle = escape(p.title if p else "primary metric")
    other_head = (
        f"<th>{role} answer<br><small>{escape(run.label(other))}</small></th>" if other else ""
    )
    return (
        f'<section id="questions"><h2>Question by question: baseline vs {role}</h2><p class="note">'
        f"Largest differences in {ptitle} first (Δ = {role} − baseline; green where the {role} "
        "does better). Scores that differ between the two answers are bold.</p>"
        f'<div class="scroll"><table class="sortable qs"><thead><tr><th data-sort="t">question</th>'
        f'<th data-sort="n">Δ {ptitle}</th><th>baseline answer<br><small>{escape(run.label(base))}'
        f"</small></th>{other_head}</tr></thead><tbody>{''.join(trs)}</tbody></table></div></section>"
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
        _configs(run),
        _costs(run),
        _questions(run),
    ]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body><nav>{nav}</nav><main>{''.join(sections)}</main>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_report(results: Mapping[str, Any], out_dir: Path) -> Path:
    """Write ``out_dir/report.html`` atomically, so a reader never sees half a page."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(results), encoding="utf-8")
    tmp.replace(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2:
        print("usage: python -m eval.report RESULTS_JSON [OUT_DIR]", file=sys.stderr)
        return 2
    src = Path(args[0])
    try:
        results = json.loads(src.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"{src}: cannot read results: {e}", file=sys.stderr)
        return 1
    print(write_report(results, Path(args[1]) if len(args) > 1 else src.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
