"""report.html: a sweep's results as one self-contained page, verdict first.

A prompt engineer should see in seconds whether anything beat the serving configuration, and by
how much beyond noise; the plots, tables and per-question answers are there to make that verdict
believable. ``eval.report_html`` assembles the page (its tables in ``eval.report_tables``, its
charts in ``eval.plots``); this module writes it atomically, so nobody opens half a page.

``python -m eval.report RESULTS_JSON [OUT_DIR]`` regenerates the page from a results.json.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eval.report_html import render


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
