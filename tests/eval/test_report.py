"""report.html: self-contained, escaped, verdict first, and rendered by a real browser.

The results are synthetic (2 templates × 3 temperatures × 2 top-k × 2 retrieval-k, 5 questions,
values from a formula) so the expected winner, margin and plot count are known exactly.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import time
from html import unescape
from html.parser import HTMLParser
from itertools import product
from pathlib import Path
from typing import Any

import pytest

from eval.report import main, write_report
from tests.conftest import chromium_path

REPO = Path(__file__).resolve().parents[2]
TEMPLATES, TEMPS, TOP_KS, RKS = (
    ["grounded-qa@1", "grounded-qa@2"],
    [0.0, 0.3, 0.7],
    [20, 40],
    [3, 5],
)
METRIC_NAMES = ["semantic_similarity", "rouge_l", "hit_rate", "mrr"]
XSS = "<script>alert(1)</script>"
QUESTIONS = [
    "In Multi-Query Attention, what is shared across all attention heads?",
    f"Does the report escape {XSS} in a question?",
    "Which positional encoding extrapolates better, ALiBi or RoPE?",
    "What does zlib's deflateInit2 windowBits control?",
    "Why is the FAISS index committed atomically?",
]
BASELINE = {"template": "grounded-qa@1", "temperature": 0.0, "top_k": 40, "retrieval_k": 5}
WINNER = {"template": "grounded-qa@2", "temperature": 0.3, "top_k": 40, "retrieval_k": 5}
PLOTS = len(TEMPLATES) * len(METRIC_NAMES) + 1  # small multiples + the latency/tokens chart


def _row_metrics(p: dict[str, Any], idx: int, q: int) -> dict[str, float]:
    """A smooth optimum at T=0.3 on template 2, top-k 40, k=5; per question, some disagreement."""
    sem = (
        0.5
        + 0.06 * TEMPLATES.index(p["template"])
        + 0.05 * (p["top_k"] == 40)
        + 0.04 * (p["retrieval_k"] == 5)
        - 0.5 * (p["temperature"] - 0.3) ** 2
        + 0.03 * q
        + 0.04 * ((q * 7 + idx * 3) % 5 - 2)  # averages to 0 over the five questions
    )
    hit = 1.0 if q < (3 if p["retrieval_k"] == 3 else 4) else 0.0
    return {
        "semantic_similarity": round(sem, 4),
        "rouge_l": round(0.6 * sem, 4),
        "hit_rate": hit,
        "mrr": hit / (1 + q % 2),
    }


def synthetic_results() -> dict[str, Any]:
    grid: list[dict[str, Any]] = [
        {"template": t, "temperature": T, "top_k": k, "retrieval_k": rk}
        for t, T, k, rk in product(TEMPLATES, TEMPS, TOP_KS, RKS)
    ]
    configs: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for idx, p in enumerate(grid):
        cid = f"cfg{idx:02d}" + "".join(f"{p['temperature']:g}".split("."))
        for q, question in enumerate(QUESTIONS):
            passages = [
                {
                    "n": n,
                    "source": f"docs/guide-{n}.md",
                    "score": 0.9 - 0.1 * n,
                    "text": f"Passage {n} for q{q}: keys & values <b>shared</b>; see https://example.com",
                }
                for n in range(1, p["retrieval_k"] + 1)
            ]
            rows.append(
                {
                    "config": cid,
                    "case": f"dev-{q + 1:02d}",
                    "question": question,
                    "ground_truth": "Keys and values.",
                    "template": p["template"],
                    "params": {**p, "top_p": 1.0, "max_tokens": 128, "seed": 0},
                    "passages": passages,
                    "answer": f"Answer of {cid} to q{q} <i>[1]</i>",
                    "cited": [1],
                    "metrics": _row_metrics(p, idx, q),
                    "latency_s": round(0.8 + 0.1 * p["retrieval_k"] + p["temperature"], 3),
                    "completion_tokens": 20 + 2 * q + idx % 5,
                }
            )
        configs.append({"id": cid, **p, "top_p": 1.0, "max_tokens": 128, "seed": 0})
    base = next(c for c in configs if all(c[k] == v for k, v in BASELINE.items()))
    for c in configs:
        mine = [r for r in rows if r["config"] == c["id"]]
        theirs = [r for r in rows if r["config"] == base["id"]]
        c["baseline"] = c is base
        c["questions"] = len(mine)
        c["metrics"] = {m: sum(r["metrics"][m] for r in mine) / len(mine) for m in METRIC_NAMES}
        c["vs_baseline"] = {}
        for m in METRIC_NAMES:
            diff = sum(
                a["metrics"][m] - b["metrics"][m] for a, b in zip(mine, theirs, strict=True)
            ) / len(mine)
            lo, hi = diff - 0.03, diff + 0.03
            c["vs_baseline"][m] = {
                "n": 5,
                "diff": diff,
                "ci_low": lo,
                "ci_high": hi,
                "better": lo > 0,
                "worse": hi < 0,
            }
        c["latency_p50"] = mine[0]["latency_s"]
        c["tokens_mean"] = sum(r["completion_tokens"] for r in mine) / len(mine)
    better = [c for c in configs if c["vs_baseline"]["semantic_similarity"]["better"]]
    winner = max(better, key=lambda c: c["metrics"]["semantic_similarity"])
    return {
        "run": {
            "dataset": "dev.jsonl",
            "created": 1764000000.0,
            "model": "gemma-3-270m",
            "index_version": 3,
            "judge": None,
            "primary_metric": "semantic_similarity",
            "cache": {
                "retrieval_hits": 90,
                "retrieval_misses": 30,
                "generation_hits": 60,
                "generation_misses": 60,
            },
            "seconds": 312.4,
        },
        "configs": configs,
        "winner": winner["id"],
        "rows": rows,
    }


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return synthetic_results()


@pytest.fixture(scope="module")
def report(results: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_report(results, tmp_path_factory.mktemp("run"))


def _config(results: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in results["configs"] if all(c[k] == v for k, v in params.items()))


def test_synthetic_winner_is_the_designed_one(results: dict[str, Any]) -> None:
    assert results["winner"] == _config(results, WINNER)["id"]


def test_report_is_self_contained(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(html)
    for tag, attrs in parser.tags:
        for name in ("src", "href", "xlink:href", "action", "data"):
            assert not re.match(r"\s*(https?:)?//", attrs.get(name, "")), (tag, attrs)
        assert not (tag == "script" and "src" in attrs), attrs
        assert not (tag == "link" and "stylesheet" in attrs.get("rel", "")), attrs
        assert tag not in ("iframe", "img", "object", "embed"), tag
    assert not re.search(r"url\(|@import", html), "CSS must not load anything"


def test_verdict_names_the_winner_with_margin_and_ci(report: Path, results: dict[str, Any]) -> None:
    html = report.read_text(encoding="utf-8")
    winner = _config(results, WINNER)
    cmp = winner["vs_baseline"]["semantic_similarity"]
    assert winner["id"] in html
    sentence = (
        f"grounded-qa@2, T=0.3, top-k 40, k=5 beats the serving configuration on semantic "
        f"similarity by {cmp['diff']:+.3f} [{cmp['ci_low']:.3f}, {cmp['ci_high']:.3f}]."
    )
    assert sentence in html
    # the verdict comes before any plot or table
    assert html.index(sentence) < html.index("<svg") < html.index("<table")


def test_one_svg_per_plot(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    ids = re.findall(r'<svg class="plot[^"]*" data-plot="([^"]+)"', html)
    expected = {f"{t}/{m}" for t in TEMPLATES for m in METRIC_NAMES} | {"costs"}
    assert html.count("<svg") == len(ids) == PLOTS
    assert set(ids) == expected
    # every point has a hover value; 24 configurations on each metric's plots
    assert html.count('<circle class="pt"') == len(METRIC_NAMES) * 24


def test_data_is_escaped(report: Path) -> None:
    html = report.read_text(encoding="utf-8")
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>shared</b>" not in html and "<i>[1]</i>" not in html
    assert html.count("<script") == 1  # the page's own sorting script, inline


def test_no_winner_says_so(results: dict[str, Any], tmp_path: Path) -> None:
    plain = json.loads(json.dumps(results))
    plain["winner"] = next(c["id"] for c in plain["configs"] if c["baseline"])
    html = write_report(plain, tmp_path).read_text(encoding="utf-8")
    assert "No configuration beats the baseline beyond noise on semantic similarity." in html
    assert "best candidate" in html


def test_minimal_results_still_render(tmp_path: Path) -> None:
    """Missing optional keys (no rows, no cache, no vs_baseline) do not break the page."""
    results = {
        "run": {},
        "configs": [
            {
                "id": "only",
                "baseline": True,
                "template": "t@1",
                "temperature": 0.2,
                "retrieval_k": 4,
                "metrics": {"rouge_l": 0.4},
            }
        ],
    }
    html = write_report(results, tmp_path).read_text(encoding="utf-8")
    assert "Only the serving configuration was evaluated" in html
    assert html.count("<svg") == 2


def test_cli_regenerates_the_report(results: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "results.json"
    src.write_text(json.dumps(results), encoding="utf-8")
    assert main([str(src)]) == 0
    assert (tmp_path / "report.html").stat().st_size > 10_000
    assert main([]) == 2


# --- a real browser ------------------------------------------------------------------------------

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1400,3000",
    "--enable-logging=stderr",
    "--v=0",
]

# Injected into a copy of the page: records errors and layout into the DOM that --dump-dom prints.
PROBE_HEAD = """<script>window.__errors = [];
window.addEventListener("error", function (e) { window.__errors.push(String(e.message)); });
["error", "warn"].forEach(function (k) { var f = console[k]; console[k] = function () {
  window.__errors.push(k + ": " + Array.prototype.join.call(arguments, " ")); f.apply(console, arguments); }; });
</script>"""
PROBE_TAIL = """<script>(function () {
  var boxes = Array.prototype.map.call(document.querySelectorAll("svg"), function (s) {
    var r = s.getBoundingClientRect(); return [s.getAttribute("data-plot"), r.width, r.height]; });
  var points = Array.prototype.filter.call(document.querySelectorAll("svg circle.pt"), function (c) {
    var r = c.getBoundingClientRect(); return r.width > 0 && r.height > 0; }).length;
  var th = document.querySelector("table.cfg th[data-sort]"), body = th.closest("table").tBodies[0];
  var first = body.rows[0].cells[0].getAttribute("data-v"); th.click();
  var sorted = body.rows[0].cells[0].getAttribute("data-v");
  var out = document.createElement("pre"); out.id = "probe";
  out.textContent = JSON.stringify({boxes: boxes, points: points, errors: window.__errors,
                                    first: first, sorted: sorted});
  document.body.appendChild(out); })();</script>"""


def _run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    cmd = [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    shot = tmp_path / "report.png"
    proc = _run_chromium([f"--screenshot={shot}", report.as_uri()], tmp_path / "profile-1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # --enable-logging prints every console message and uncaught error as a CONSOLE line; the
    # page logs nothing, so any such line is a failure.
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not console, console
    assert _png_size(shot) == (1400, 3000)
    assert shot.stat().st_size > 100_000, "the screenshot looks blank"

    html = report.read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    head = html.index("<head>") + len("<head>")
    probed.write_text(
        html[:head] + PROBE_HEAD + html[head:].replace("</body>", PROBE_TAIL + "</body>"),
        encoding="utf-8",
    )
    dom = _run_chromium(["--dump-dom", probed.as_uri()], tmp_path / "profile-2")
    assert dom.returncode == 0, dom.stderr[-3000:]
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S)
    assert match, "the probe did not run: " + dom.stdout[-2000:]
    probe = json.loads(unescape(match.group(1)))
    assert probe["errors"] == []
    assert len(probe["boxes"]) == PLOTS
    for plot_id, width, height in probe["boxes"]:
        assert width > 100 and height > 100, (plot_id, width, height)
    assert probe["points"] == len(METRIC_NAMES) * 24
    assert probe["first"] != probe["sorted"], "clicking a heading did not sort the table"
    print(f"chromium: screenshot and DOM probe in {time.monotonic() - t0:.1f} s", file=sys.stderr)


def test_halving_judge_and_lower_is_better(results: dict[str, Any], tmp_path: Path) -> None:
    """What eval.run writes beyond the basics: a metric catalogue, judge stats, early exits."""
    data = json.loads(json.dumps(results))
    data["metrics"] = {
        "dont_know": {"description": "says it does not know", "higher_is_better": False}
    }
    data["run"]["judge"] = {
        "base_url": "http://127.0.0.1:8001/v1",
        "model": "tiny-judge",
        "stats": {
            "calls": 40,
            "failures": 3,
            "timeouts": 1,
            "unparsable": 2,
            "errors": ["unparsable: <verdict>maybe</verdict>"],
        },
    }
    dropped = data["configs"][-1]
    dropped.update(questions=2, eliminated=True, latency_p50=None, vs_baseline={})
    for c in data["configs"]:
        c["metrics"]["dont_know"] = 0.4 if c is dropped else 0.1
    html = write_report(data, tmp_path).read_text(encoding="utf-8")
    assert "tiny-judge" in html and "failures 3" in html
    assert "&lt;verdict&gt;maybe&lt;/verdict&gt;" in html
    assert "2 (dropped early)" in html
    assert "dont know ↓" in html
    assert 'href="http' not in html  # the judge's URL is shown as text, never linked
