"""Print line and branch coverage of the last test run and fail below the line floor.

coverage.py's own ``fail_under`` applies to lines and branches taken together; the project's
floor is on lines (``make test`` passes it), with branch coverage reported beside it::

    python tools/coverage_floor.py --lines 94
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=float, required=True, help="line coverage floor, %%")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "coverage.json"
        subprocess.run([sys.executable, "-m", "coverage", "json", "-q", "-o", str(out)],
                       check=True)
        totals = json.loads(out.read_text())["totals"]
    lines = 100 * totals["covered_lines"] / max(totals["num_statements"], 1)
    branches = 100 * totals["covered_branches"] / max(totals["num_branches"], 1)
    print(f"coverage: lines {lines:.1f}% (floor {args.lines:g}%), branches {branches:.1f}%")
    if lines < args.lines:
        print(f"coverage: lines below the floor of {args.lines:g}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
