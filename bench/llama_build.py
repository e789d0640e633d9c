"""Two builds of llama-cpp-python on the same models: prompt reading and decoding speed.

The Makefile compiles llama.cpp with the SIMD levels /proc/cpuinfo lists (GGML_NATIVE=OFF, since
some CPUs advertise AMX that faults). This measures what a build's flags are worth where the
embedded model spends its time: reading a ~1,000-token prompt and decoding the answer.

Each build is a ``pip install --target DIR`` of llama-cpp-python, or else the llama_cpp this
interpreter imports (``.venv``'s, built by the Makefile). Each (build, model) runs in a child
process that loads the GGUF the way the service does (``PROMPT_BLOCK``-token batches, explicit
threads), reads the same prompt from an empty cache (after a first block that faults the
weights in; the best of two reads) and decodes greedily for a fixed number of tokens,
``--repeats`` times; builds alternate so that drift hits both. Reported: median prompt tokens/s,
decode tokens/s, the candidate/baseline ratios, and whether both builds decoded the same greedy
tokens (other kernels may round differently). The committed results compare an AVX-512-only
build (baseline) with the Makefile's flags (candidate):

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON" \\
        .venv/bin/pip install --no-deps --no-cache-dir --target /tmp/lcp-avx512 \\
        llama-cpp-python==0.3.36
    .venv/bin/python bench/llama_build.py --baseline /tmp/lcp-avx512   # vs the Makefile's build
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_file import write_results  # noqa: E402

CPUINFO = Path("/proc/cpuinfo")
PRESETS = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")


def child(model: str, prompt_tokens: int, decode: int, threads: int) -> dict[str, Any]:
    """One load, the prompt read from an empty cache, ``decode`` greedy tokens; timings."""
    import llama_cpp
    import numpy as np
    from llama_cpp import Llama

    from service.llm.llamacpp import PROMPT_BLOCK
    from service.llm.presets import model_file, preset

    llama = Llama(
        model_path=str(model_file(preset(model))),
        n_ctx=2048,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=PROMPT_BLOCK,
        n_ubatch=PROMPT_BLOCK,
        verbose=False,
    )
    text = (ROOT / "README.md").read_text()
    tokens = llama.tokenize(text.encode(), add_bos=True)[:prompt_tokens]
    # A first block faults the memory-mapped weights in; then the best of two full reads.
    llama.eval(tokens[:PROMPT_BLOCK])
    reads = []
    for _ in range(2):
        llama.reset()  # an empty cache: eval() drops the KV entries from position 0 on
        start = time.perf_counter()
        llama.eval(tokens)
        reads.append(time.perf_counter() - start)
    read_s = min(reads)
    out: list[int] = []
    start = time.perf_counter()
    for _ in range(decode):
        # Greedy over the last logits, always decode: the same number of tokens for every build.
        last = llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1)
        out.append(int(np.ctypeslib.as_array(last, shape=(llama.n_vocab(),)).argmax()))
        llama.eval([out[-1]])
    decode_s = time.perf_counter() - start
    info = llama_cpp.llama_print_system_info().decode()
    return {
        "prompt_tps": len(tokens) / read_s,
        "decode_tps": decode / decode_s,
        "tokens": out,
        "system_info": info.strip(),
        "module": llama_cpp.__file__,
    }


def run_child(build: str | None, model: str, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env.pop("PYTHONPATH", None)
    if build:
        env["PYTHONPATH"] = build
    cmd = [sys.executable, __file__, "--child", model, "--prompt-tokens", str(args.prompt_tokens)]
    cmd += ["--decode", str(args.decode), "--threads", str(args.threads)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--baseline", help="a `pip install --target` directory (default: .venv's)")
    ap.add_argument("--candidate", help="a `pip install --target` directory (default: .venv's)")
    ap.add_argument("--models", nargs="+", default=list(PRESETS))
    ap.add_argument("--prompt-tokens", type=int, default=1024)
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "llama_build.json")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.prompt_tokens, args.decode, args.threads)))
        return 0
    if not args.baseline and not args.candidate:
        ap.error("name --baseline or --candidate (the other is .venv's llama_cpp)")
    builds = {"baseline": args.baseline, "candidate": args.candidate}
    rows = []
    print(f"{'model':30} {'build':10} {'prompt tok/s':>13} {'decode tok/s':>13}")
    for model in args.models:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in builds}
        for _ in range(args.repeats):
            for name, build in builds.items():
                runs[name].append(run_child(build, model, args))
        row: dict[str, Any] = {"model": model}
        for name in builds:
            got = runs[name]
            prompt = statistics.median(r["prompt_tps"] for r in got)
            dec = statistics.median(r["decode_tps"] for r in got)
            row[name] = {
                "prompt_tps": round(prompt, 1),
                "decode_tps": round(dec, 2),
                "runs": [
                    {
                        "prompt_tps": round(r["prompt_tps"], 1),
                        "decode_tps": round(r["decode_tps"], 2),
                    }
                    for r in got
                ],
                "system_info": got[0]["system_info"],
                "module": got[0]["module"],
            }
            print(f"{model:30} {name:10} {prompt:13.1f} {dec:13.2f}")
        base, cand = row["baseline"], row["candidate"]
        row["prompt_ratio"] = round(cand["prompt_tps"] / base["prompt_tps"], 3)
        row["decode_ratio"] = round(cand["decode_tps"] / base["decode_tps"], 3)
        same = runs["baseline"][0]["tokens"] == runs["candidate"][0]["tokens"]
        row["same_greedy_tokens"] = same
        print(
            f"{model:30} {'ratio':10} {row['prompt_ratio']:13.3f} {row['decode_ratio']:13.3f}"
            f"  same greedy tokens: {same}"
        )
        rows.append(row)
    body = {
        "prompt_tokens": args.prompt_tokens,
        "decode_tokens": args.decode,
        "threads": args.threads,
        "repeats": args.repeats,
        "cpu": next(
            (
                ln.split(":", 1)[1].strip()
                for ln in CPUINFO.read_text().splitlines()
                if "model name" in ln
            ),
            "",
        ),
        "rows": rows,
    }
    write_results(args.out, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
