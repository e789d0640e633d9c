"""Soak: a real ``ragtune serve`` under mixed concurrent load for a bounded time, then a ledger check.

``ragtune serve`` (the embedded default model, llama.cpp in process) runs on 127.0.0.1 over a
fresh data directory. For ``--duration`` seconds, worker threads at once:

- chat, plain and streaming, through the official ``openai`` client (``max_tokens`` small);
- ``POST /v1/retrieve``;
- upload a small generated document (a unique marker word in each) and delete some of them;
- rate answers with ``POST /v1/feedback``.

Reported: requests and errors per operation, errors by kind (HTTP status and code, or exception
type), p50/p95 latency per operation, and the server's RSS sampled every few seconds. At the end
the ledger is checked: every upload the server acknowledged and no acknowledged delete removed is
listed once and found by retrieval of its marker word; no deleted one is listed; every
acknowledged feedback row is stored. A 503 with ``Retry-After`` (model queue full) is load being
shed, counted as an error kind like any other and not as a loss.

    .venv/bin/python bench/soak.py [--duration 180] [--out bench/results/soak.json]

Writes its table to stdout and JSON to ``--out``. Run it alone: it loads the cores fully.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from openai import APIError, OpenAI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serve import DATA, memory_mb, pct, serve_process  # noqa: E402  (bench/ is sys.path[0])

SAMPLE_S = 5.0  # RSS sampling period
MAX_TOKENS = 24
QUESTIONS = (
    "What does zpipe.c define CHUNK as?",
    "In Multi-Query Attention, what is shared across all attention heads?",
    "What does deflateInit do?",
    "How are keys and values cached during decoding?",
)


class Ledger:
    """What the server acknowledged, and every operation's outcome and latency."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {}
        self.errors: Counter[str] = Counter()
        self.seeded: set[str] = set()  # corpus documents uploaded first, never deleted
        self.kept: dict[str, str] = {}  # doc id -> marker word (uploaded, not deleted)
        self.deleted: set[str] = set()
        self.responses: list[str] = []  # chat ids that can be rated
        self.feedback: set[int] = set()

    def timed(self, op: str, call: Callable[[], Any]) -> Any:
        """Run ``call``; record its latency when it succeeds, its error kind when it fails."""
        started = time.perf_counter()
        try:
            out = call()
        except httpx.HTTPStatusError as e:
            self.error(op, e.response.status_code, _code(e.response))
            return None
        except APIError as e:
            status = getattr(e, "status_code", None)
            code = e.body.get("code") if isinstance(e.body, dict) else None
            self.error(op, status, code or type(e).__name__)
            return None
        except Exception as e:  # a soak counts every failure by its kind
            self.error(op, None, type(e).__name__)
            return None
        with self.lock:
            self.latency.setdefault(op, []).append(time.perf_counter() - started)
        return out

    def error(self, op: str, status: int | None, code: str | None) -> None:
        with self.lock:
            self.errors[f"{op} {status or '-'} {code or ''}".strip()] += 1


def _code(resp: httpx.Response) -> str | None:
    try:
        return str(resp.json()["error"].get("code") or resp.json()["error"].get("type"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def chat_worker(base: str, ledger: Ledger, stop: threading.Event, stream: bool) -> None:
    client = OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=120)
    op = "chat-stream" if stream else "chat"

    def ask(question: str) -> str:
        messages: Any = [{"role": "user", "content": question}]
        if not stream:
            return client.chat.completions.create(
                model="ragtune", messages=messages, max_tokens=MAX_TOKENS, temperature=0
            ).id
        rid = ""
        for chunk in client.chat.completions.create(
            model="ragtune", messages=messages, max_tokens=MAX_TOKENS, stream=True
        ):
            rid = chunk.id
        return rid

    for i in itertools.count():
        if stop.is_set():
            return
        rid = ledger.timed(op, partial(ask, QUESTIONS[i % len(QUESTIONS)]))
        if rid:
            with ledger.lock:
                ledger.responses.append(rid)


def retrieve_worker(base: str, ledger: Ledger, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=60) as http:
        for i in itertools.count():
            if stop.is_set():
                return
            query = {"query": QUESTIONS[i % len(QUESTIONS)]}
            ledger.timed("retrieve", partial(_call, http, "POST", "/v1/retrieve", json=query))


def documents_worker(base: str, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    """Upload a unique small document; every third round delete one kept upload instead."""
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=120) as http:
        for i in itertools.count():
            if stop.wait(0.5):
                return
            with ledger.lock:
                ours = sorted(ledger.kept)
            if i % 3 == 2 and ours:
                doc_id = rng.choice(ours)
                if ledger.timed(
                    "delete", partial(_call, http, "DELETE", f"/v1/documents/{doc_id}")
                ):
                    with ledger.lock:
                        ledger.kept.pop(doc_id, None)
                        ledger.deleted.add(doc_id)
                continue
            marker = f"soakmarker{seed}x{i}q{rng.randrange(16**6):06x}"
            text = f"Soak note {i}.\n\nThe keyword {marker} appears only in this note.\n"
            files = {"file": (f"note-{i}.txt", text.encode(), "text/plain")}
            body = ledger.timed(
                "upload", partial(_call, http, "POST", "/v1/documents", files=files)
            )
            if body:
                with ledger.lock:
                    ledger.kept[body["id"]] = marker


def feedback_worker(base: str, ledger: Ledger, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=60) as http:
        for i in itertools.count():
            if stop.wait(1.0):
                return
            with ledger.lock:
                rid = ledger.responses.pop() if ledger.responses else None
            if rid is None:
                continue
            rating = "up" if i % 2 else "down"
            body = {"response_id": rid, "rating": rating, "comment": f"soak {i}"}
            row = ledger.timed("feedback", partial(_call, http, "POST", "/v1/feedback", json=body))
            if row:
                with ledger.lock:
                    ledger.feedback.add(int(row["id"]))


def _ok(resp: httpx.Response) -> Any:
    resp.raise_for_status()
    return resp.json()


def _call(http: httpx.Client, method: str, url: str, **kw: Any) -> Any:
    return _ok(http.request(method, url, **kw))


def sample_rss(pid: int, stop: threading.Event, out: list[dict[str, float]]) -> None:
    started = time.monotonic()
    while True:
        out.append({"t_s": round(time.monotonic() - started, 1), **memory_mb(pid)})
        if stop.wait(SAMPLE_S):
            return


def check_ledger(base: str, ledger: Ledger) -> dict[str, Any]:
    """Nothing acknowledged is lost, nothing deleted is back, nothing is there twice."""
    with httpx.Client(base_url=base, timeout=120) as http:
        listed = [d["id"] for d in _ok(http.get("/v1/documents"))["data"]]
        missing = sorted((set(ledger.kept) | ledger.seeded) - set(listed))
        resurrected = sorted(ledger.deleted & set(listed))
        unretrievable = []
        for doc_id, marker in sorted(ledger.kept.items()):
            hits = _ok(http.post("/v1/retrieve", json={"query": marker, "k": 3}))["data"]
            if doc_id not in {h["doc_id"] for h in hits}:
                unretrievable.append(doc_id)
        stored = {
            int(f["id"]) for f in _ok(http.get("/v1/feedback", params={"limit": 500}))["data"]
        }
    lost_feedback = sorted(ledger.feedback - stored)
    return {
        "uploads_kept": len(ledger.kept),
        "uploads_deleted": len(ledger.deleted),
        "documents_listed": len(listed),
        "missing": missing,
        "duplicates": len(listed) - len(set(listed)),
        "resurrected": resurrected,
        "unretrievable": unretrievable,
        "feedback_acknowledged": len(ledger.feedback),
        "feedback_lost": lost_feedback,
        "nothing_lost": not (missing or resurrected or unretrievable or lost_feedback)
        and len(listed) == len(set(listed)),
    }


def seed_corpus(base: str, ledger: Ledger) -> None:
    """Two corpus documents so retrieval and chat have something to ground on from the start."""
    with httpx.Client(base_url=base, timeout=300) as http:
        for name in ("llm-guide.txt", "zlib-usage.html"):
            path = DATA / "corpus" / name
            body = _ok(http.post("/v1/documents", files={"file": (name, path.read_bytes())}))
            ledger.seeded.add(body["id"])


def report(ledger: Ledger, rss: list[dict[str, float]], check: dict[str, Any], secs: float) -> dict:
    ops = {}
    print(f"Soak of ragtune serve for {secs:.0f} s on {os.cpu_count()} CPUs")
    print(f"{'operation':<12} {'ok':>6} {'errors':>7} {'p50 ms':>9} {'p95 ms':>9}")
    for op in ("chat", "chat-stream", "retrieve", "upload", "delete", "feedback"):
        xs = [x * 1000 for x in ledger.latency.get(op, [])]
        errs = sum(n for kind, n in ledger.errors.items() if kind.split(" ", 1)[0] == op)
        ops[op] = {"ok": len(xs), "errors": errs, "p50_ms": pct(xs, 50), "p95_ms": pct(xs, 95)}
        print(f"{op:<12} {len(xs):>6} {errs:>7} {pct(xs, 50):>9.0f} {pct(xs, 95):>9.0f}")
    print("errors by kind:", dict(ledger.errors) or "none")
    print("server RSS MB over time:", ", ".join(f"{r['t_s']:.0f}s {r['VmRSS']:.0f}" for r in rss))
    print(
        f"ledger: {check['uploads_kept']} uploads kept, {check['uploads_deleted']} deleted, "
        f"{check['feedback_acknowledged']} feedback rows; missing {len(check['missing'])}, "
        f"resurrected {len(check['resurrected'])}, unretrievable {len(check['unretrievable'])}, "
        f"duplicates {check['duplicates']}, feedback lost {len(check['feedback_lost'])}"
    )
    print(f"nothing lost: {check['nothing_lost']}")
    return ops


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--duration", type=float, default=180.0, help="seconds of load")
    ap.add_argument("--model", default="", help="preset the server loads (default: its default)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = ap.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGTUNE_")}
    env.update(PYTHONPATH=str(ROOT), RAGTUNE_LLM__THREADS="1", HF_HUB_OFFLINE="1")
    if args.model:
        env["RAGTUNE_LLM__MODEL"] = args.model
    ledger = Ledger()
    rss: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="ragtune-soak-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        proc, base = serve_process(home, env, Path(tmp) / "serve.log")
        try:
            seed_corpus(base, ledger)
            stop = threading.Event()
            workers = [
                threading.Thread(target=chat_worker, args=(base, ledger, stop, False)),
                threading.Thread(target=chat_worker, args=(base, ledger, stop, True)),
                threading.Thread(target=retrieve_worker, args=(base, ledger, stop)),
                threading.Thread(target=retrieve_worker, args=(base, ledger, stop)),
                threading.Thread(target=documents_worker, args=(base, ledger, stop, 1)),
                threading.Thread(target=documents_worker, args=(base, ledger, stop, 2)),
                threading.Thread(target=feedback_worker, args=(base, ledger, stop)),
                threading.Thread(target=sample_rss, args=(proc.pid, stop, rss)),
            ]
            started = time.monotonic()
            for w in workers:
                w.start()
            time.sleep(args.duration)
            stop.set()
            for w in workers:
                w.join(180)
            secs = time.monotonic() - started
            rss.append({"t_s": round(secs, 1), **memory_mb(proc.pid)})
            check = check_ledger(base, ledger)
        finally:
            proc.terminate()
            proc.wait(30)
    ops = report(ledger, rss, check, secs)
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "config": {"duration_s": args.duration, "model": args.model or "default",
                   "max_tokens": MAX_TOKENS, "rss_sample_s": SAMPLE_S},
        "seconds": round(secs, 1),
        "operations": ops,
        "errors_by_kind": dict(ledger.errors),
        "rss_mb": rss,
        "ledger": check,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if check["nothing_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
