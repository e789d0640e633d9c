"""The rate-limit table under a flood of distinct clients: its size, memory and cost per request.

A client who spent its budget, then a flood of ``--clients`` new addresses (what rotating
X-Forwarded-For did before forwarded headers were believed from trusted proxies only), then the
spent client again. Per table cap: how many buckets are kept, the memory they hold (tracemalloc),
microseconds per ``take()``, and whether the spent client was still refused (it must be: the
table forgets only full buckets). ``unbounded`` is a cap as large as the flood, the old table.

    .venv/bin/python bench/ratelimit.py [--clients 200000] [--per-minute 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.ratelimit import RateLimiter  # noqa: E402


def flood(cap: int, clients: int, per_minute: int) -> dict[str, Any]:
    # The limiter's clock stands still, so the flood is one instant however long it takes to
    # run here: no budget refills, and "still refused" and "allowed" are exact.
    limiter = RateLimiter(per_minute, cap, clock=lambda: 0.0)
    while limiter.take("spent") == 0:
        pass
    tracemalloc.start()
    started = time.perf_counter()
    allowed = sum(limiter.take(f"203.0.{i >> 8 & 255}.{i & 255}#{i}") == 0 for i in range(clients))
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "cap": cap,
        "flood_clients": clients,
        "buckets_kept": len(limiter),
        "flood_requests_allowed": allowed,
        "peak_mib": round(peak / 2**20, 1),
        "us_per_take": round(seconds / clients * 1e6, 2),
        "spent_client_still_refused": limiter.take("spent") > 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=200_000)
    parser.add_argument("--per-minute", type=int, default=60)
    args = parser.parse_args()
    rows = [flood(cap, args.clients, args.per_minute) for cap in (1_000, 10_000, args.clients)]
    rows[-1]["cap"] = "unbounded"
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))
    out = ROOT / "bench" / "results" / "ratelimit.json"
    out.write_text(json.dumps({"per_minute": args.per_minute, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
