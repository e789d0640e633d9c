"""A model selection for people: models.md (also printed) and models.html, from models.json.

Both lead with the pick and show the whole matrix under it, each cell as raw value and normalized
value, with each factor's weight and direction in its heading: a weighted score is only
believable when the reader can see what it is made of. The page uses the sweep report's style and
SVG helpers, so it is self-contained the same way (inline CSS and SVG, data escaped).
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from eval.report_data import by_path
from eval.report_html import CSS, SCRIPT
from eval.svg import Bar, bar_chart

Sel = Mapping[str, Any]
EXTRA_CSS = "table.mq{width:100%;table-layout:fixed}table.mq th:first-child{width:26%}"


def raw_text(factor: str, unit: str, v: Any) -> str:
    """A raw value in its factor's own terms: 0.612, 812 ms, 41.3 tokens/s, 4,096 tokens."""
    if v is None:
        return "n/a"
    if unit == "mean":
        return f"{v:.3f}"
    if factor == "tokens_per_s":
        return f"{v:.1f}"
    if factor == "cost_per_1k_tokens":
        return f"{v:g}"
    return f"{v:,.0f}"


def _norm(v: Any) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def verdict(sel: Sel) -> str:
    """One sentence: who scored best, by how much, or who tied (plain text; callers escape).

    With budgets, the best is the best within them, and the candidates over one follow.
    """
    cands = sel["candidates"]
    best, tied = cands[0], sel.get("tied") or [cands[0]["name"]]
    over = [c for c in cands if c.get("over_budget")]
    outside = "".join(
        f" Over budget: {c['name']}, score {c['score']:.3f} ({'; '.join(c['over_budget'])})."
        for c in over
    )
    if over and best in over:
        return f"No candidate is within every budget.{outside}"
    within = " within budget" if sel.get("budgets") else ""
    if len(cands) == 1:
        return f"{best['name']} is the only candidate (score {best['score']:.3f})."
    if len(tied) > 1:
        return (
            f"Tie for first{within}: {', '.join(tied)} (score {best['score']:.3f} each).{outside}"
        )
    rivals = [c for c in cands[1:] if c not in over]
    nxt = f" (next: {rivals[0]['name']}, {rivals[0]['score']:.3f})" if rivals else ""
    return f"Best{within}: {best['name']}, score {best['score']:.3f}{nxt}.{outside}"


def _legend(sel: Sel) -> list[str]:
    return [
        f"{f} {i['direction']} ({i['unit']}), weight {i['weight']:g}: {i['description']}"
        for f, i in sel["factors"].items()
    ]


def _arrow(info: Mapping[str, Any]) -> str:
    return "↑" if info["higher_is_better"] else "↓"


def summary_markdown(sel: Sel) -> str:
    """models.md: the pick, the matrix (raw → normalized), the factors' directions, warnings."""
    run, factors = sel["run"], sel["factors"]
    cfg = by_path(run["config"])
    lines = [
        f"# Model selection on {run.get('dataset') or 'the dataset'}",
        "",
        f"{run['cases']} questions, each candidate with the serving configuration "
        f"({cfg['rag.template']}, k={cfg['rag.retrieval.k']} {cfg.get('rag.retrieval.mode') or 'dense'}, "
        f"T={cfg['rag.sampling.temperature']:g}, max_tokens={cfg['rag.sampling.max_tokens']}), "
        f"index v{run['index_version']}.",
        "",
        f"**{verdict(sel)}**",
        "",
        "| rank | candidate | score | "
        + " | ".join(f"{f} {_arrow(i)} ×{i['weight']:g}" for f, i in factors.items())
        + " |",
        "|---:|---|---:|" + "---|" * len(factors),
    ]
    for c in sel["candidates"]:
        cells = [
            f"{raw_text(f, i['unit'], c['raw'][f])} → {_norm(c['normalized'][f])}"
            for f, i in factors.items()
        ]
        lines.append(
            f"| {c['rank']} | `{c['name']}`{' (over budget)' if c.get('over_budget') else ''} | "
            f"{c['score']:.3f} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "Each cell: raw value → normalized (min-max across candidates, 1 = best on that factor, "
        "equal values 1 for all). Score = Σ weight × normalized / Σ weight. Factors:",
        "",
        *(f"- {line}" for line in _legend(sel)),
    ]
    if sel.get("warnings"):
        lines += ["", "Warnings:", "", *(f"- {w}" for w in sel["warnings"])]
    return "\n".join(lines) + "\n"


def backend_text(profile: Mapping[str, Any]) -> str:
    """``llamacpp: gemma.gguf`` or ``openai: model @ http://host/v1``: what a candidate runs."""
    if profile.get("backend") == "openai":
        model = profile.get("model") or "the server's model"
        return f"openai: {model} @ {profile.get('base_url')}"
    path = profile.get("model_path")
    return f"llamacpp: {Path(path).name if path else profile.get('model') or 'gemma-3-270m'}"


def _shade(t: float | None) -> str:
    return "" if t is None else f' style="background:rgba(0,114,178,{0.04 + 0.42 * t:.2f})"'


def _matrix(sel: Sel) -> str:
    factors = sel["factors"]
    th = ['<th data-sort="n">rank</th>', '<th data-sort="t">candidate</th>']
    th.append('<th data-sort="n">score</th>')
    for f, i in factors.items():
        tip = escape(f"{i['direction']}; {i['description']}")
        th.append(
            f'<th data-sort="n" title="{tip}">{escape(f)} {_arrow(i)}<br>'
            f'<span class="d">{escape(i["unit"])} · weight {i["weight"]:g}</span></th>'
        )
    body = []
    for c in sel["candidates"]:
        mark = "winner" if c["name"] == sel["winner"] else ""
        badge = f' <span class="badge {mark}">best</span>' if mark else ""
        if c.get("over_budget"):
            badge += (
                f' <span class="badge">over budget: {escape("; ".join(c["over_budget"]))}</span>'
            )

        model = escape(backend_text(c.get("profile") or {}))
        tds = [
            f'<td class="n" data-v="{c["rank"]}">{c["rank"]}</td>',
            f'<td data-v="{escape(c["name"])}"><code>{escape(c["name"])}</code>{badge}'
            f'<div class="d">{model}</div></td>',
            f'<td class="n" data-v="{c["score"]}"><b>{c["score"]:.3f}</b></td>',
        ]
        for f, i in factors.items():
            raw, norm = c["raw"][f], c["normalized"][f]
            part = c["contributions"][f]
            tds.append(
                f'<td class="n" data-v="{"" if raw is None else raw}"{_shade(norm)}>'
                f"{escape(raw_text(f, i['unit'], raw))}"
                f'<div class="d">normalized {_norm(norm)} · adds {part:.3f}</div></td>'
            )
        body.append(f'<tr class="{mark}">{"".join(tds)}</tr>')
    bars = [
        Bar(c["name"], (c["score"],), "winner" if c["name"] == sel["winner"] else None)
        for c in sel["candidates"]
    ]
    chart = bar_chart(bars, [("weighted score", "0..1")], "scores", aria="weighted score")
    legend = "".join(f"<li>{escape(line)}</li>" for line in _legend(sel))
    return (
        '<section id="matrix"><h2>Weighted-factors matrix</h2><p class="note">Each cell: the '
        "raw value, then its normalized value (min-max across candidates; 1 is the best "
        "candidate on that factor whichever way it counts, equal values are 1 for all) and what "
        "it adds to the score. Score = Σ weight × normalized / Σ weight. ↑ higher is better, "
        "↓ lower is better. A missing value counts as 0.</p>"
        f'<div class="scroll"><table class="sortable cfg"><thead><tr>{"".join(th)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
        f'<h3>Score</h3><div class="scroll">{chart}</div><h3>Factors</h3><ul>{legend}</ul>'
        "</section>"
    )


def _questions(sel: Sel) -> str:
    """Each question with every candidate's answer, its quality scores and its time."""
    names = [c["name"] for c in sel["candidates"]]
    quality = [f for f, i in sel["factors"].items() if i["unit"] == "mean"]
    by: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in sel["rows"]:
        by.setdefault(str(r["case"]), {})[r["candidate"]] = r
    trs = []
    for case, rows in by.items():
        first = next(iter(rows.values()))
        cells = []
        for n in names:
            r = rows.get(n)
            if r is None:
                cells.append('<td class="ans missing">not answered</td>')
                continue
            scores = "".join(
                f'<span class="sc">{escape(f)} {r["metrics"][f]:.2f}</span>'
                for f in quality
                if r["metrics"].get(f) is not None
            )
            took = f"{1000 * r['latency_s']:.0f} ms, {r['completion_tokens']} tokens"
            cells.append(
                f'<td class="ans"><div class="text">{escape(str(r["answer"]))}</div>{scores}'
                f'<span class="sc cost">{took if r.get("called") else "model not called"}'
                "</span></td>"
            )
        trs.append(
            f'<tr><td><div class="cid">{escape(case)}</div><div class="q">'
            f'{escape(str(first["question"]))}</div><div class="gt">Reference: '
            f"{escape(str(first.get('ground_truth', '')))}</div></td>{''.join(cells)}</tr>"
        )
    heads = "".join(f"<th>{escape(n)}</th>" for n in names)
    return (
        '<section id="questions"><h2>Question by question</h2><div class="scroll">'
        f'<table class="mq"><thead><tr><th>question</th>{heads}</tr></thead>'
        f"<tbody>{''.join(trs)}</tbody></table></div></section>"
    )


def render(sel: Sel) -> str:
    """models.html as one string: header facts, the pick, the matrix, the answers."""
    run = sel["run"]
    facts = [
        ("Dataset", str(run.get("dataset") or "–")),
        ("Questions", str(run.get("cases", "–"))),
        ("Template", str(by_path(run["config"]).get("rag.template"))),
        ("Index version", str(run.get("index_version", "–"))),
        ("Date", str(run.get("created", "–"))),
        ("Judge", str((run.get("judge") or {}).get("model") or "none")),
        ("Run time", f"{run.get('seconds', 0):.1f} s"),
    ]
    cards = "".join(
        f'<div class="fact"><span>{escape(k)}</span><b>{escape(v)}</b></div>' for k, v in facts
    )
    warn = "".join(f"<p>⚠ {escape(w)}</p>" for w in sel.get("warnings") or [])
    title = escape(f"ragtune model selection: {run.get('dataset') or 'report'}")
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}{EXTRA_CSS}</style></head><body><main><header><h1>{title}</h1>"
        f'<div class="facts">{cards}</div></header>'
        f'<section class="verdict win" id="verdict"><p class="big">{escape(verdict(sel))}</p>'
        f"{warn}</section>{_matrix(sel)}{_questions(sel)}</main>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_html(sel: Sel, out_dir: Path) -> Path:
    """``out_dir/models.html``, replaced atomically."""
    path = out_dir / "models.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(sel), encoding="utf-8")
    tmp.replace(path)
    return path
