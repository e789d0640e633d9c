"""The report's two tables: every configuration, and baseline vs challenger question by question.

They are where a verdict is checked: the configuration table has every metric (the plots show only
the first few) with each difference from the baseline, and the question table lays the two answers
side by side with the passages behind them. Every string from the data is escaped: questions,
answers and passages are arbitrary text that may well contain HTML.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from eval.report_data import LABEL_PARAMS, Cfg, Run, ci_text, comparison, num, row_case, row_config
from service import tunables


def id_code(c: Cfg) -> str:
    """A configuration's id as inline code, the way every section shows it."""
    return f"<code>{escape(str(c.get('id', '')))}</code>"


def _shade(v: float | None, lo: float, hi: float, higher_is_better: bool) -> str:
    """A cell background from pale to saturated teal by rank within the column."""
    if v is None or hi <= lo:
        return ""
    t = (v - lo) / (hi - lo)
    t = t if higher_is_better else 1 - t
    return f' style="background:rgba(0,114,178,{0.04 + 0.42 * t:.2f})"'


def configs_section(run: Run) -> str:
    params = [*LABEL_PARAMS, *run.extras]
    max_q = max((int(num(c.get("questions")) or 0) for c in run.configs), default=0)
    show_q = any(int(num(c.get("questions")) or max_q) < max_q for c in run.configs)
    th = ['<th data-sort="t">config</th>']
    th += [
        f'<th data-sort="{"t" if p == "rag.template" else "n"}" title="{escape(p)}">'
        f"{escape(tunables.label(p))}</th>"
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
        tds = [f'<td data-v="{escape(str(c.get("id", "")))}">{id_code(c)}{badge}</td>']
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
        f"primary metric (★). Under each mean: the difference from the baseline with its {run.ci}, "
        "green when better beyond noise, red when worse. Click a heading to sort.</p>"
        f'<div class="scroll"><table class="sortable cfg"><thead><tr>{"".join(th)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div></section>"
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


def questions_section(run: Run) -> str:
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
