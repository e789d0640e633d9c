"""Serving replicas over one index: ``POST /v1/retrieve`` on one and on two ``ragtune serve``
processes sharing one data directory, and how long a commit takes to reach the other replica.

One data directory is built from ../shared/data/corpus with the real ingest pipeline; the queries
are the questions of ../shared/data/qa/dev.jsonl. Four ``ragtune serve`` processes run on
127.0.0.1 over it, as compose.yaml's ``scale`` profile runs replicas over one volume: A and B
with the default encoder threads (one per core), C and D with one each. The clients are asyncio
tasks on one ``httpx.AsyncClient`` (keep-alive, as a load balancer's upstream connections are),
each sending its next request when the last one is answered. "1 replica" sends every request to
A; "2 replicas" alternates them between A and B, as a round-robin balancer would (no proxy
process is measured); the "1 encoder thread" rows do the same with C and D, which on two cores
is one encoder thread per core in all. Every configuration sends the same queries in the same
order at the same concurrency, alternated per level (``--rounds`` times each) so that drift on a
shared machine falls on all of them; an idle server costs nothing but its memory. Ratios are
against "1 replica" measured in the same run. The clients, the servers and this script share the
machine's cores: on two cores the load generator takes a real share of them (its CPU time is
reported). Per level, "cores" is what the servers and this script used together, "client" the
script alone, and "other" what the rest of the machine used meanwhile (from /proc/stat), so a
level that shared the machine with other work shows it.

Then the propagation of a new version: a small document is uploaded through one replica and the
other is polled (``/v1/retrieve`` in BM25 mode every 20 ms) until it returns it; the time from
the upload's 201 to that answer is what a client of the other replica waits. Each trial first
waits a random part of the poll interval (seeded), so the commits fall at different points of
it. Directions alternate (A to B, B to A).

    .venv/bin/python bench/replicas.py [--quick] [--out bench/results/replicas.json]

``--quick`` (one round of 64 requests per level, 4 trials) takes about a minute; the full run
about three. Run it alone: every process here competes for the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serve import (  # noqa: E402
    DATA,
    build_home,
    memory_mb,
    pct,
    questions,
    serve_process,
    server_env,
    write_result,
)
from ingest.embed import load_embedder  # noqa: E402
from service.app import REFRESH_INTERVAL_S  # noqa: E402
from service.llm.settings import LLMSettings  # noqa: E402
from service.settings import Settings  # noqa: E402

SEED = 1234
LEVELS = (1, 4, 16)
K = 5
# Retrieval needs no model, but `ragtune serve` loads one: the smallest packaged preset.
MODEL = "gemma-3-270m"


def cpu_ticks(pids: list[int]) -> tuple[int, int]:
    """Busy clock ticks of the whole machine and of ``pids`` (this script and the servers).

    Their difference over a level is CPU that other work on the machine took meanwhile: a
    shared machine skews every number here, and this shows by how much.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    mine = 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        mine += int(stat[11]) + int(stat[12])  # utime, stime
    return user + nice + system + irq + softirq + steal, mine


async def run_level(
    http: httpx.AsyncClient,
    bases: tuple[str, ...],
    qs: list[str],
    clients: int,
    n: int,
    pids: list[int],
) -> dict[str, Any]:
    """``n`` requests from ``clients`` concurrent clients, request ``i`` to ``bases[i % len]``."""
    latencies: list[float] = []
    errors: list[str] = []
    issued = 0

    async def client() -> None:
        nonlocal issued
        while issued < n:
            i = issued
            issued += 1
            body = {"query": qs[i % len(qs)], "k": K}
            started = time.perf_counter()
            try:
                resp = await http.post(f"{bases[i % len(bases)]}/v1/retrieve", json=body)
                resp.raise_for_status()
                if not resp.json()["data"]:
                    raise ValueError("no passages")
                latencies.append((time.perf_counter() - started) * 1000)
            except (httpx.HTTPError, ValueError) as e:  # counted and reported; the level goes on
                errors.append(f"{type(e).__name__}: {e}")

    cpu = time.process_time()
    machine, mine = cpu_ticks(pids)
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - started
    machine_end, mine_end = cpu_ticks(pids)
    return {
        "wall_s": wall,
        "our_cpu_s": (mine_end - mine) / os.sysconf("SC_CLK_TCK"),
        "other_cpu_s": ((machine_end - machine) - (mine_end - mine)) / os.sysconf("SC_CLK_TCK"),
        "client_cpu_s": time.process_time() - cpu,
        "latencies_ms": latencies,
        "errors": errors,
    }


@dataclass(frozen=True)
class Config:
    """Which servers a configuration sends to, and the encoder threads each of them runs."""

    name: str
    bases: tuple[str, ...]
    encoder_threads: int


async def throughput(
    configs: list[Config], qs: list[str], requests: int, rounds: int, pids: list[int]
) -> list[dict[str, Any]]:
    """Every level for every configuration, alternated ``rounds`` times; pooled per cell.

    The first configuration is the baseline each ratio is taken against.
    """
    limits = httpx.Limits(max_connections=2 * max(LEVELS), max_keepalive_connections=64)
    out = []
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        for base in {b for c in configs for b in c.bases}:  # first requests are not measured
            for q in qs:
                (
                    await http.post(f"{base}/v1/retrieve", json={"query": q, "k": K})
                ).raise_for_status()
        for clients in LEVELS:
            n = max(requests, clients)
            cells: dict[Config, list[dict[str, Any]]] = {c: [] for c in configs}
            for _ in range(rounds):
                for config in configs:
                    cells[config].append(await run_level(http, config.bases, qs, clients, n, pids))
            for config, runs in cells.items():
                lat = [x for r in runs for x in r["latencies_ms"]]
                wall = sum(r["wall_s"] for r in runs)
                errors = [e for r in runs for e in r["errors"]]
                out.append(
                    {
                        "config": config.name,
                        "replicas": len(config.bases),
                        "encoder_threads": config.encoder_threads,
                        "clients": clients,
                        "requests": n * len(runs),
                        "errors": len(errors),
                        "error_samples": sorted(set(errors))[:3],
                        "requests_per_s": len(lat) / wall,
                        "latency_p50_ms": pct(lat, 50),
                        "latency_p95_ms": pct(lat, 95),
                        "client_cpu_share": sum(r["client_cpu_s"] for r in runs) / wall,
                        # Cores the servers and this script used, of os.cpu_count().
                        "cpu_cores_used": sum(r["our_cpu_s"] for r in runs) / wall,
                        # Cores that other work on the machine used meanwhile (0: it was quiet).
                        "other_cpu_cores": max(0.0, sum(r["other_cpu_s"] for r in runs) / wall),
                    }
                )
    base = {r["clients"]: r["requests_per_s"] for r in out if r["config"] == configs[0].name}
    for r in out:
        r["throughput_vs_1_replica"] = r["requests_per_s"] / base[r["clients"]]
    return out


def note(i: int) -> tuple[str, bytes]:
    """A small Markdown document that only its own made-up word finds."""
    tag = f"replicanote{i}x{random.Random(i).randrange(10**6)}"
    text = f"# {tag}\n\nThe {tag} valve opens at {100 + i} kilopascals on the replica rig.\n"
    return tag, text.encode()


def propagation(a: str, b: str, trials: int) -> list[dict[str, Any]]:
    """Seconds from an upload's 201 on one replica to the other retrieving it."""
    rng = random.Random(SEED)
    rows = []
    with httpx.Client(timeout=120) as http:
        for i in range(trials):
            writer, reader = (a, b) if i % 2 == 0 else (b, a)
            time.sleep(rng.uniform(0, REFRESH_INTERVAL_S))
            tag, data = note(i)
            started = time.perf_counter()
            resp = http.post(f"{writer}/v1/documents", files={"file": (f"{tag}.md", data)})
            resp.raise_for_status()
            committed = time.perf_counter()
            doc_id = resp.json()["id"]
            # BM25: the notes are near-duplicates that only the made-up word tells apart, and
            # the dense side ranks them by chance; both sides load with the same version.
            question = f"At what pressure does the {tag} valve open?"
            query = {"query": question, "k": K, "mode": "bm25"}
            while True:
                hits = http.post(f"{reader}/v1/retrieve", json=query).json()["data"]
                if any(h["doc_id"] == doc_id for h in hits):
                    break
                if time.perf_counter() - committed > 30:
                    raise RuntimeError(f"{tag} never reached {reader}")
                time.sleep(0.02)
            rows.append(
                {
                    "direction": "A->B" if writer == a else "B->A",
                    "upload_ms": (committed - started) * 1000,
                    "lag_s": time.perf_counter() - committed,
                    "version": resp.json()["version"],
                }
            )
    return rows


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def report(levels: list[dict[str, Any]], trials: list[dict[str, Any]], lag: dict[str, Any]) -> None:
    print(
        f"\n{'clients':>7s} {'configuration':34s} {'reqs':>5s} {'errors':>6s} {'req/s':>7s} "
        f"{'p50':>8s} {'p95':>8s} {'vs 1':>6s} {'cores':>5s} {'client':>6s} {'other':>6s}"
    )
    for r in levels:
        print(
            f"{r['clients']:7d} {r['config']:34s} {r['requests']:5d} {r['errors']:6d} "
            f"{r['requests_per_s']:7.1f} {r['latency_p50_ms']:6.1f}ms {r['latency_p95_ms']:6.1f}ms "
            f"{r['throughput_vs_1_replica']:5.2f}x {r['cpu_cores_used']:5.2f} "
            f"{r['client_cpu_share']:6.2f} {r['other_cpu_cores']:6.2f}"
        )
        for e in r["error_samples"]:
            print(f"        error: {e[:200]}")
    print(
        f"\nnew version on the other replica ({len(trials)} trials, poll interval "
        f"{REFRESH_INTERVAL_S:g} s): p50 {lag['p50_s']:.2f} s, max {lag['max_s']:.2f} s -> "
        f"{'within' if lag['within_interval'] else 'NOT within'} the interval plus "
        f"{lag['load_allowance_s']:g} s to load it; upload (commit) p50 {lag['upload_p50_ms']:.0f} ms"
    )
    for t in trials:
        print(f"  {t['direction']}  upload {t['upload_ms']:6.0f} ms  lag {t['lag_s']:.2f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round of 64 requests, 4 trials")
    ap.add_argument("--requests", type=int, help="requests per level and round (default 400)")
    ap.add_argument(
        "--rounds", type=int, help="runs of every configuration per level, alternated (default 2)"
    )
    ap.add_argument("--trials", type=int, help="propagation trials (default 12)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "replicas.json")
    args = ap.parse_args()
    requests = args.requests or (64 if args.quick else 400)
    rounds = args.rounds or (1 if args.quick else 2)
    trials = args.trials or (4 if args.quick else 12)
    qs = questions(None)
    for key in [k for k in os.environ if k.startswith("RAGTUNE_")]:
        del os.environ[key]  # the bench defines the servers' configuration
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="ragtune-bench-replicas-") as tmp:
        settings = Settings(home=Path(tmp) / "home", llm=LLMSettings(model=MODEL, threads=2))
        chunks = build_home(settings, load_embedder(settings.embed))
        print(f"indexed {DATA / 'corpus'}: {chunks} chunks")
        env = {**server_env(settings), "RAGTUNE_LLM__MODEL": MODEL}
        cores = os.cpu_count() or 1
        procs: list[subprocess.Popen[bytes]] = []
        bases: list[str] = []
        try:
            # A and B with the default encoder threads (one per core), C and D with one each.
            for name, threads in (("A", 0), ("B", 0), ("C", 1), ("D", 1)):
                own_env = {**env, "RAGTUNE_EMBED__THREADS": str(threads)}
                proc, base = serve_process(settings.home, own_env, Path(tmp) / f"{name}.log")
                procs.append(proc)
                bases.append(base)
                print(f"replica {name} ready at {base} (encoder threads {threads or cores})")
            a, b, c, d = bases
            configs = [
                Config("1 replica", (a,), cores),
                Config("2 replicas", (a, b), cores),
                Config("1 replica, 1 encoder thread", (c,), 1),
                Config("2 replicas, 1 encoder thread each", (c, d), 1),
            ]
            pids = [os.getpid(), *(p.pid for p in procs)]
            levels = asyncio.run(throughput(configs, qs, requests, rounds, pids))
            rss = [memory_mb(p.pid) for p in procs]
            rows = propagation(a, b, trials)
        finally:
            for proc in procs:
                stop(proc)
    lags = [r["lag_s"] for r in rows]
    allowance = 1.0
    lag = {
        "poll_interval_s": REFRESH_INTERVAL_S,
        "p50_s": pct(lags, 50),
        "max_s": max(lags),
        "min_s": min(lags),
        "upload_p50_ms": pct([r["upload_ms"] for r in rows], 50),
        "load_allowance_s": allowance,
        "within_interval": max(lags) <= REFRESH_INTERVAL_S + allowance,
    }
    report(levels, rows, lag)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    write_result(
        args.out,
        {
            "config": {
                "quick": args.quick,
                "chunks": chunks,
                "queries": len(qs),
                "k": K,
                "levels": list(LEVELS),
                "requests_per_level_and_round": requests,
                "rounds": rounds,
                "model_loaded_by_each_replica": MODEL,
                "configurations": [
                    {"name": c.name, "replicas": len(c.bases), "encoder_threads": c.encoder_threads}
                    for c in configs
                ],
                "seed": SEED,
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            },
            # Other work on the machine skews every number here: the load before and after.
            "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
            "throughput": levels,
            "replica_rss_mb": rss,
            "propagation": {**lag, "trials": rows},
            "bench_cpu_s": usage.ru_utime + usage.ru_stime,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
