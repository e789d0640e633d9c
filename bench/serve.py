"""Serving cost of the embedded model: ragtune's chat API vs its engine and llama-cpp-python.

One data directory is built from ../shared/data/corpus with the real ingest pipeline; the questions
are those of ../shared/data/qa/dev.jsonl. ``ragtune serve`` runs as a subprocess on 127.0.0.1 and
is driven by the official ``openai`` client (streaming, temperature 0, fixed seed). Measured:

1. Direct vs service, per question, paired. The direct side plans the answer exactly as the service
   does (``rag.plan_answer`` over the same index, template and settings), then times
   ``Llama.create_completion`` on its own ``Llama`` (same GGUF, n_ctx and threads) fed the token ids
   the service's llamacpp backend sends (BOS + ``tokenize(special=False)``) and the same sampling
   parameters. The service side times the HTTP request from send to ``[DONE]``. Time to first token
   counts to the first non-blank text on both sides (the service strips leading whitespace).
   A third side, "engine", is ragtune's own in-process backend (``LlamaCppLLM.load`` +
   ``stream``, its own ``Llama``) on the same planned prompt, without HTTP: the deterministic
   decoding rule of issue 11 (64-token prompt blocks, only whole blocks kept from the previous
   prompt) costs model time that is not serving. "Added" is service minus direct end-to-end;
   "decoding" is engine minus direct; "overhead" is service minus engine minus the pipeline's
   own stages the service reports in ``ragtune.timings`` (retrieval, prompt assembly and the
   citation check, ``verify``). It splits into "model slower in the server"
   (``ragtune.timings.generation`` minus the engine's time: the cores are shared with the event
   loop and, on a small machine, with this client) and the serving overhead proper: HTTP, JSON,
   SSE and thread hand-offs. The sides run one after the other, never together: llama.cpp's
   OpenMP threads slow down ~50x when another busy process shares the cores. Each side has its
   own model and sees the same prompt history.
2. Retrieval + prompt assembly: ``ragtune.timings`` of the service answers, ``plan_answer`` in this
   process, and the round trip of ``POST /v1/retrieve``.
3. Throughput with 1, 4 and 16 concurrent clients, then 16 again (threads sharing one ``openai``
   client, no retries): requests/s, latency, errors, and the server's resident memory (VmRSS,
   VmHWM) around each level; memory counts as bounded when the repeated level barely grows it.
   The model generates one answer at a time; the bench sets the queue size and wait explicitly.

Targets (issues 3 and 14): serving overhead (HTTP, JSON, SSE, hand-offs) under 5% of end-to-end
time and under 20 ms p50; no errors under concurrency; memory bounded.

    .venv/bin/python bench/serve.py [--quick] [--max-tokens 64] [--out bench/results/serve.json]

``--quick`` (5 questions, 8 requests per level) takes under a minute; the full run about three on
two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from openai import OpenAI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest.embed import Embedder, load_embedder  # noqa: E402
from ingest.index import VectorIndex  # noqa: E402
from ingest.pipeline import Ingestor  # noqa: E402
from prompts.registry import TemplateRegistry, builtin_dir  # noqa: E402
from service import rag  # noqa: E402
from service.fence_key import load_fence_key  # noqa: E402
from service.llm.llama_server import free_port  # noqa: E402
from service.llm.llamacpp import LlamaCppLLM, sampling_kwargs  # noqa: E402
from service.llm.settings import LLMSettings  # noqa: E402
from service.settings import Settings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SEED = 1234
LEVELS = (1, 4, 16, 16)  # the top level twice: a steady state must not keep growing the RSS
BOUNDED_GROWTH = 0.02  # RSS may grow by this share of itself during the repeated top level
PAUSE_S = 0.05  # lets the other process's OpenMP threads stop spinning before the next run


def write_result(out: Path, payload: dict[str, Any]) -> None:
    """A bench's JSON at ``out``, with the machine it ran on first."""
    machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, **payload}, indent=1) + "\n")
    print(f"wrote {out}")


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(xs, p)) if xs else float("nan")


def questions(limit: int | None) -> list[str]:
    lines = (DATA / "qa" / "dev.jsonl").read_text().splitlines()
    qs = [json.loads(line)["question"] for line in lines if line.strip()]
    return qs[:limit] if limit else qs


def build_home(settings: Settings, embedder: Embedder) -> int:
    """Ingest the corpus into ``settings.home`` with the real pipeline; returns the chunk count."""
    index = VectorIndex.open(
        settings.index_dir, settings.index, embed_model=embedder.name, dim=embedder.dim
    )
    try:
        return (
            Ingestor(index, embedder, settings.chunk, settings.ingest).run([DATA / "corpus"]).chunks
        )
    finally:
        index.close()


def server_env(settings: Settings) -> dict[str, str]:
    """The bench's settings, spelled as the server's environment, so both sides agree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGTUNE_")}
    llm = settings.llm
    env.update(
        PYTHONPATH=str(ROOT),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        RAGTUNE_EMBED__CACHE_DIR=str(settings.embed.cache_dir),
        RAGTUNE_LLM__THREADS=str(llm.threads),
        RAGTUNE_LLM__N_CTX=str(llm.n_ctx),
        RAGTUNE_LLM__QUEUE_SIZE=str(llm.queue_size),
        RAGTUNE_LLM__QUEUE_TIMEOUT_S=str(llm.queue_timeout_s),
    )
    return env


def start_server(settings: Settings, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    return serve_process(settings.home, server_env(settings), log)


def serve_process(
    home: Path, env: dict[str, str], log: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """``ragtune serve`` on a free loopback port with ``env``, once /readyz answers 200."""
    port = free_port()
    cmd = [sys.executable, "-m", "service.cli", "serve", "--home", str(home)]
    # cwd is the data directory: no stray ./ragtune.toml can change the server's settings.
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)],
        env=env,
        cwd=home,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ragtune serve exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("ragtune serve was not ready within 180 s")


def memory_mb(pid: int) -> dict[str, float]:
    """Resident set now and its peak (VmHWM), in MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


# --- one answer, each side ---------------------------------------------------------------------


def load_llama(llm: LLMSettings, model_path: str) -> Any:
    """A plain llama-cpp-python model of the engine's GGUF, with llama-cpp-python's defaults."""
    from llama_cpp import LLAMA_DEFAULT_SEED, Llama

    return Llama(
        model_path=model_path,
        n_ctx=llm.n_ctx,
        n_threads=llm.threads,
        n_threads_batch=llm.threads,
        seed=LLAMA_DEFAULT_SEED,
        verbose=False,
    )


def direct_once(llama: Any, tokens: list[int], params: Any) -> dict[str, Any]:
    """One streamed completion of the token ids the service's backend sends for the prompt."""
    t0 = time.perf_counter()
    ttft, parts = None, []
    for chunk in llama.create_completion(
        tokens,
        **sampling_kwargs(params),  # exactly what the service's backend passes
        seed=params.seed,
        stream=True,
    ):
        text = chunk["choices"][0]["text"]
        if ttft is None and text.strip():
            ttft = time.perf_counter() - t0
        parts.append(text)
    total = time.perf_counter() - t0
    answer = "".join(parts)
    n = len(llama.tokenize(answer.encode("utf-8"), add_bos=False, special=False))
    return {
        "ttft": ttft or total,
        "total": total,
        "tokens": n,
        "prompt_tokens": len(tokens),
        "text": answer.strip(),
    }


def engine_once(engine: LlamaCppLLM, plan: Any) -> dict[str, Any]:
    """ragtune's in-process backend on the planned prompt, timed as ``direct_once`` is."""
    t0 = time.perf_counter()
    ttft, parts, last = None, [], None
    for delta in engine.stream(plan.prompt, plan.params):
        if ttft is None and delta.text.strip():
            ttft = time.perf_counter() - t0
        parts.append(delta.text)
        last = delta
    total = time.perf_counter() - t0
    return {
        "ttft": ttft or total,
        "total": total,
        "tokens": last.completion_tokens if last else 0,
        "prompt_tokens": last.prompt_tokens if last else 0,
        "text": "".join(parts).strip(),
    }


def service_once(client: OpenAI, model: str, question: str, max_tokens: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    ttft, parts, usage, info = None, [], None, {}
    for chunk in client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        stream=True,
        temperature=0,
        max_tokens=max_tokens,
        seed=SEED,
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            ttft = ttft or time.perf_counter() - t0
            parts.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
        info = (chunk.model_extra or {}).get("ragtune", info)
    total = time.perf_counter() - t0
    return {
        "ttft": ttft or total,
        "total": total,
        "tokens": usage.completion_tokens if usage else 0,
        "prompt_tokens": usage.prompt_tokens if usage else 0,
        "text": "".join(parts).strip(),
        "timings": info.get("timings", {}),
    }


def decode_rate(r: dict[str, Any]) -> float:
    """Tokens per second after the first one (prompt processing is in the TTFT)."""
    return (r["tokens"] - 1) / (r["total"] - r["ttft"]) if r["tokens"] > 1 else float("nan")


# --- the three measurements --------------------------------------------------------------------


def compare(
    settings: Settings,
    embedder: Embedder,
    llama: Any,
    engine: LlamaCppLLM,
    client: OpenAI,
    model: str,
    qs: list[str],
    max_tokens: int,
) -> tuple[list[dict], list[float]]:
    """Direct, engine and service answers per question, rotating which goes first."""
    index = VectorIndex.open(
        settings.index_dir, settings.index, embed_model=embedder.name, dim=embedder.dim
    )
    registry = TemplateRegistry([builtin_dir(), settings.home / "prompts"])
    params = rag.sampling_params(settings.rag, temperature=0, max_tokens=max_tokens, seed=SEED)
    plans, plan_ms, banks = [], [], {}
    for q in qs:
        t = time.perf_counter()
        plan = rag.plan_answer(
            question=q,
            embedder=embedder,
            index=index,
            llm=engine,  # token counts and the context window, as the service's
            registry=registry,
            rag=settings.rag,
            params=params,
            banks=banks,
            fence_key=load_fence_key(settings.home),  # the key the service renders with
        )
        plan_ms.append((time.perf_counter() - t) * 1000)
        plans.append(plan)
    index.close()
    warm = plans[-1]  # both sides see the same prompt history, so KV prefix reuse is symmetric
    direct_once(llama, engine.prompt_tokens(warm.prompt), warm.params)
    engine_once(engine, warm)
    service_once(client, model, warm.question, max_tokens)
    sides = ("direct", "engine", "service")
    rows = []
    for i, plan in enumerate(plans):
        if not plan.grounded:  # the service answers "don't know" without the model: nothing to pair
            rows.append({"question": plan.question, "skipped": "nothing retrieved"})
            continue
        runs: dict[str, dict[str, Any]] = {}
        for side in sides[i % 3 :] + sides[: i % 3]:
            time.sleep(PAUSE_S)
            if side == "direct":
                runs[side] = direct_once(llama, engine.prompt_tokens(plan.prompt), plan.params)
            elif side == "engine":
                runs[side] = engine_once(engine, plan)
            else:
                runs[side] = service_once(client, model, plan.question, max_tokens)
        d, e, s = runs["direct"], runs["engine"], runs["service"]
        rows.append(
            {
                "question": plan.question,
                "prompt_tokens": d["prompt_tokens"],
                "same_prompt": s["prompt_tokens"] == d["prompt_tokens"],
                "same_answer": s["text"] == d["text"],
                "same_answer_as_engine": s["text"] == e["text"],
                "direct": {k: v for k, v in d.items() if k != "text"},
                "engine": {k: v for k, v in e.items() if k != "text"},
                "service": {k: v for k, v in s.items() if k != "text"},
                **paired_fields(d, e, s),
            }
        )
    return rows, plan_ms


STAGES = ("retrieval", "prompt", "verify")  # the answer pipeline's own work, timed by the service


def paired_fields(d: dict[str, Any], e: dict[str, Any], s: dict[str, Any]) -> dict[str, float]:
    """One question's differences in ms: direct ``d``, engine ``e`` and service ``s`` timings."""
    stages = sum(s["timings"].get(k, 0.0) for k in STAGES)
    model_added = s["timings"].get("generation", 0.0) - e["total"]
    overhead = s["total"] - e["total"] - stages
    return {
        "stages_ms": stages * 1000,
        "added_ms": (s["total"] - d["total"]) * 1000,
        "decoding_ms": (e["total"] - d["total"]) * 1000,
        "overhead_ms": overhead * 1000,
        "ttft_added_ms": (s["ttft"] - e["ttft"]) * 1000,
        # overhead split: the model running slower inside the server (cores shared with the
        # event loop and, here, the client) vs the rest (HTTP, JSON, SSE, thread hand-offs)
        "model_added_ms": model_added * 1000,
        "transport_ms": (overhead - model_added) * 1000,
    }


def retrieve_latency(base: str, qs: list[str], repeats: int) -> list[float]:
    out = []
    with httpx.Client(base_url=base, timeout=30) as http:
        http.post("/v1/retrieve", json={"query": qs[0], "k": 5}).raise_for_status()
        for _ in range(repeats):
            for q in qs:
                t = time.perf_counter()
                http.post("/v1/retrieve", json={"query": q, "k": 5}).raise_for_status()
                out.append((time.perf_counter() - t) * 1000)
    return out


def load_level(
    client: OpenAI, model: str, qs: list[str], clients: int, n: int, max_tokens: int, pid: int
) -> dict[str, Any]:
    before = memory_mb(pid)
    errors: list[str] = []

    def one(i: int) -> dict[str, Any] | None:
        try:
            return service_once(client, model, qs[i % len(qs)], max_tokens)
        except Exception as e:  # counted and reported; the level goes on
            errors.append(f"{type(e).__name__}: {e}")
            return None

    t = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = [r for r in pool.map(one, range(n)) if r is not None]
    wall = time.perf_counter() - t
    after = memory_mb(pid)
    lat = [r["total"] * 1000 for r in done]
    return {
        "clients": clients,
        "requests": n,
        "errors": len(errors),
        "error_samples": errors[:3],
        "seconds": wall,
        "requests_per_s": len(done) / wall,
        "tokens_per_s": sum(r["tokens"] for r in done) / wall,
        "latency_p50_ms": pct(lat, 50),
        "latency_p95_ms": pct(lat, 95),
        "ttft_p50_ms": pct([r["ttft"] * 1000 for r in done], 50),
        "latencies_ms": [round(x, 1) for x in lat],
        "rss_before_mb": before["VmRSS"],
        "rss_after_mb": after["VmRSS"],
        "peak_rss_mb": after["VmHWM"],
    }


# --- report -------------------------------------------------------------------------------------


def summarize(rows: list[dict]) -> dict[str, Any]:
    paired = [r for r in rows if "skipped" not in r]
    out: dict[str, Any] = {"questions": len(paired), "skipped": len(rows) - len(paired)}
    for side in ("direct", "engine", "service"):
        rs = [r[side] for r in paired]
        out[side] = {
            "ttft_p50_ms": pct([r["ttft"] * 1000 for r in rs], 50),
            "ttft_p95_ms": pct([r["ttft"] * 1000 for r in rs], 95),
            "e2e_p50_ms": pct([r["total"] * 1000 for r in rs], 50),
            "decode_tokens_per_s_p50": float(np.nanmedian([decode_rate(r) for r in rs])),
            "tokens_mean": float(np.mean([r["tokens"] for r in rs])),
        }
    for key in ("added", "decoding", "overhead", "transport"):
        ms = [r[f"{key}_ms"] for r in paired]
        share = [r[f"{key}_ms"] / (r["service"]["total"] * 1000) * 100 for r in paired]
        out[key] = {"p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "p50_pct": pct(share, 50)}
    # The target is serving's own cost (HTTP, JSON, SSE, hand-offs): "added" also holds the
    # pipeline's stages and the decoding rule, "overhead" the model's time on shared cores.
    out["transport"]["meets_target"] = out["transport"]["p50_ms"] < 20 and (
        out["transport"]["p50_pct"] < 5
    )
    for key in ("ttft_added", "model_added", "transport", "stages"):
        out[f"{key}_p50_ms"] = pct([r[f"{key}_ms"] for r in paired], 50)
    out["same_prompt"] = sum(r["same_prompt"] for r in paired)
    out["same_answer"] = sum(r["same_answer"] for r in paired)
    out["same_answer_as_engine"] = sum(r["same_answer_as_engine"] for r in paired)
    return out


def dist(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "p50_ms": pct(xs, 50), "p95_ms": pct(xs, 95)}


def memory_verdict(levels: list[dict]) -> dict[str, Any]:
    repeat = levels[-1]
    growth = repeat["rss_after_mb"] - repeat["rss_before_mb"]
    return {
        "growth_over_levels_mb": levels[-1]["rss_after_mb"] - levels[0]["rss_before_mb"],
        "growth_in_repeat_mb": growth,
        "bounded": growth < BOUNDED_GROWTH * repeat["rss_before_mb"],
    }


def report(summary: dict, latency: dict, levels: list[dict], memory: dict[str, Any]) -> None:
    yes = {True: "meets target", False: "MISSES target"}
    print(
        f"\ndirect (llama-cpp-python) vs engine (ragtune's backend) vs service, "
        f"{summary['questions']} questions (paired, same prompt and seed)"
    )
    print(f"{'':8s} {'TTFT p50':>9s} {'TTFT p95':>9s} {'tok/s p50':>10s} {'e2e p50':>9s}")
    for name in ("direct", "engine", "service"):
        r = summary[name]
        print(
            f"{name:8s} {r['ttft_p50_ms']:7.0f}ms {r['ttft_p95_ms']:7.0f}ms "
            f"{r['decode_tokens_per_s_p50']:10.1f} {r['e2e_p50_ms']:7.0f}ms"
        )
    print(
        f"identical prompts {summary['same_prompt']}/{summary['questions']}, "
        f"identical answers to direct {summary['same_answer']}/{summary['questions']}, "
        f"to engine {summary['same_answer_as_engine']}/{summary['questions']}, "
        f"TTFT added over the engine p50 {summary['ttft_added_p50_ms']:.1f} ms"
    )
    print(
        f"overhead split, p50: model slower in the server {summary['model_added_p50_ms']:.1f} ms, "
        f"HTTP/SSE/hand-offs {summary['transport_p50_ms']:.1f} ms"
    )
    for key, label in (
        ("added", "service - direct, incl. the stages"),
        ("decoding", "engine - direct: the deterministic decoding"),
        ("overhead", "service - engine - retrieval/prompt/verify"),
        ("transport", "serving overhead: HTTP, JSON, SSE, hand-offs"),
    ):
        r = summary[key]
        verdict = f"  -> {yes[r['meets_target']]} (<20 ms and <5%)" if "meets_target" in r else ""
        print(
            f"{label:46s} p50 {r['p50_ms']:6.1f} ms ({r['p50_pct']:.2f}% of e2e), "
            f"p95 {r['p95_ms']:6.1f} ms{verdict}"
        )
    print(f"\n{'retrieval + prompt assembly':40s} {'n':>4s} {'p50':>8s} {'p95':>8s}")
    for name, r in latency.items():
        print(f"{name:40s} {r['n']:4d} {r['p50_ms']:6.1f}ms {r['p95_ms']:6.1f}ms")
    print(
        f"\n{'clients':>7s} {'reqs':>5s} {'errors':>6s} {'req/s':>6s} {'tok/s':>6s} "
        f"{'p50':>8s} {'p95':>8s} {'RSS MB':>7s} {'peak MB':>8s}"
    )
    for i, r in enumerate(levels):
        label = f"{r['clients']}{'*' if i and r['clients'] == levels[i - 1]['clients'] else ''}"
        print(
            f"{label:>7s} {r['requests']:5d} {r['errors']:6d} {r['requests_per_s']:6.2f} "
            f"{r['tokens_per_s']:6.1f} {r['latency_p50_ms']:6.0f}ms {r['latency_p95_ms']:6.0f}ms "
            f"{r['rss_after_mb']:7.0f} {r['peak_rss_mb']:8.0f}"
        )
        for e in r["error_samples"]:
            print(f"        error: {e[:200]}")
    errors = sum(r["errors"] for r in levels)
    print(
        f"errors under load: {errors} -> {yes[errors == 0]}; server RSS "
        f"{memory['growth_over_levels_mb']:+.0f} MB over all levels, "
        f"{memory['growth_in_repeat_mb']:+.0f} MB in the repeated top level (*) -> "
        f"{'bounded' if memory['bounded'] else 'STILL GROWING'} "
        f"(< {BOUNDED_GROWTH:.0%} growth in the repeat)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 questions, 8 requests per level")
    ap.add_argument("--max-tokens", type=int, default=64, help="answer budget, direct vs service")
    ap.add_argument("--load-max-tokens", type=int, default=32, help="answer budget under load")
    ap.add_argument("--requests", type=int, help="requests per level (default 32)")
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads, both sides")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "serve.json")
    args = ap.parse_args()
    n_requests = args.requests or (8 if args.quick else 32)
    qs = questions(5 if args.quick else None)
    # The bench defines both sides' configuration; a stray RAGTUNE_* would make them differ.
    for key in [k for k in os.environ if k.startswith("RAGTUNE_")]:
        del os.environ[key]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ragtune-bench-serve-") as tmp:
        llm = LLMSettings(threads=args.threads, queue_size=max(LEVELS), queue_timeout_s=600)
        settings = Settings(home=Path(tmp) / "home", llm=llm)
        embedder = load_embedder(settings.embed)
        chunks = build_home(settings, embedder)
        print(f"indexed {DATA / 'corpus'}: {chunks} chunks")
        proc, base = start_server(settings, Path(tmp) / "serve.log")
        try:
            client = OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=900)
            model = client.models.list().data[0].id
            rss_start = memory_mb(proc.pid)
            engine = LlamaCppLLM.load(llm)
            llama = load_llama(llm, engine.model_path)
            rows, plan_ms = compare(
                settings, embedder, llama, engine, client, model, qs, args.max_tokens
            )
            llama.close()  # frees the direct models before the load levels
            engine.close()
            summary = summarize(rows)
            paired = [r for r in rows if "skipped" not in r]
            latency = {
                "service ragtune.timings (retrieval+prompt+verify)": dist(
                    [r["stages_ms"] for r in paired]
                ),
                "in-process rag.plan_answer": dist(plan_ms),
                "POST /v1/retrieve round trip (k=5)": dist(
                    retrieve_latency(base, qs, 1 if args.quick else 3)
                ),
            }
            levels = []
            for c in LEVELS:
                n = max(n_requests, c)
                levels.append(load_level(client, model, qs, c, n, args.load_max_tokens, proc.pid))
            rss_end = memory_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(60)
    memory = memory_verdict(levels)
    report(summary, latency, levels, memory)
    payload = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "config": {
            "quick": args.quick,
            "model": model,
            "threads": args.threads,
            "n_ctx": llm.n_ctx,
            "queue_size": llm.queue_size,
            "queue_timeout_s": llm.queue_timeout_s,
            "template": settings.rag.template,
            "max_tokens": args.max_tokens,
            "load_max_tokens": args.load_max_tokens,
            "seed": SEED,
            "chunks": chunks,
        },
        "summary": summary,
        "retrieval_prompt": latency,
        "concurrency": levels,
        "server_memory_mb": {"start": rss_start, "end": rss_end, **memory},
        "per_question": rows,
        "seconds": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))
    print(f"took {payload['seconds']:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
