"""First load of the web console: ``/ui`` and its static assets from a warm ``ragtune serve``.

The server runs as a subprocess on 127.0.0.1 over an empty data directory (the console's pages
hold no data, so what is indexed does not change them) with the packaged Gemma, the quickest model
to load; it is warmed with a few loads first. Two measures, each over ``--loads`` cold loads:

1. Chromium (Debian's, through Playwright): a fresh browser context per load, so nothing is cached;
   the navigation timing's ``loadEventEnd`` (request sent to the load event, with the HTML, CSS
   and scripts fetched, parsed and run) and the bytes it transferred.
2. httpx: the HTML, then every asset it links, one after another over one connection, with no
   browser work at all: the server's share of the first load.

Target (issue 12): under 300 ms p50 on this machine.

    .venv/bin/python bench/ui.py [--loads 20] [--out bench/results/ui.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serve import serve_process  # noqa: E402  (bench/ is sys.path[0])

from service.routes.ui import PAGES as CONSOLE  # noqa: E402

PAGES = tuple(path for path, _, _ in CONSOLE)  # every section of the console

TARGET_MS = 300.0
WARMUP = 3


def start_server(home: Path, model: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGTUNE_")}
    env.update(PYTHONPATH=str(ROOT), RAGTUNE_LLM__MODEL=model, RAGTUNE_LLM__THREADS="1")
    return serve_process(home, env, log)


def stats(ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "max_ms": float(max(ms)),
    }


def httpx_loads(base: str, path: str, loads: int) -> dict[str, Any]:
    times, size = [], 0
    for i in range(WARMUP + loads):
        with httpx.Client(base_url=base, timeout=10) as client:
            t0 = time.perf_counter()
            page = client.get(path)
            page.raise_for_status()
            size = len(page.content)
            for asset in re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page.text):
                r = client.get(asset)
                r.raise_for_status()
                size += len(r.content)
            if i >= WARMUP:
                times.append((time.perf_counter() - t0) * 1000)
    return {**stats(times), "bytes": size, "loads": loads}


def chromium_loads(base: str, path: str, loads: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed (`make browser`)")
    times, size = [], 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--disable-gpu"])
        for i in range(WARMUP + loads):
            context = browser.new_context()  # a cold cache every time
            page = context.new_page()
            page.goto(base + path, wait_until="load")
            nav = page.evaluate(
                "() => { const n = performance.getEntriesByType('navigation')[0];"
                " const r = performance.getEntriesByType('resource');"
                " return {load: n.loadEventEnd - n.startTime,"
                " bytes: n.transferSize + r.reduce((s, e) => s + e.transferSize, 0)}; }"
            )
            context.close()
            if i >= WARMUP:
                times.append(float(nav["load"]))
                size = int(nav["bytes"])
        browser.close()
    return {**stats(times), "bytes": size, "loads": loads}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--loads", type=int, default=20)
    ap.add_argument("--model", default="gemma-3-270m", help="preset the server loads")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ui.json")
    args = ap.parse_args()

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ragtune-ui-bench-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        proc, base = start_server(home, args.model, Path(tmp) / "serve.log")
        try:
            for path in PAGES:
                rows.append(
                    {"page": path, "via": "chromium", **chromium_loads(base, path, args.loads)}
                )
                rows.append({"page": path, "via": "httpx", **httpx_loads(base, path, args.loads)})
        finally:
            proc.terminate()
            proc.wait(30)

    print(
        f"First load of the console, {args.loads} cold loads each (target p50 < {TARGET_MS:.0f} ms)"
    )
    print(f"{'page':<15} {'via':<9} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'bytes':>8}")
    for r in rows:
        print(
            f"{r['page']:<15} {r['via']:<9} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} "
            f"{r['max_ms']:>8.1f} {r['bytes']:>8d}"
        )
    meets = all(r["p50_ms"] < TARGET_MS for r in rows)
    print(f"target met: {meets}")
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "config": {"loads": args.loads, "warmup": WARMUP, "model": args.model},
        "target_ms": TARGET_MS,
        "meets_target": meets,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
