"""False positives on the benign zoo, per half, beside picklescan in the same run.

Every file in the zoo was written by a library's own save path, so every file flagged at high or
above is a false positive. Run in the zoo's environment (see bench/zoo/README.md)::

    python bench/zoo/build.py                 # once: writes bench/.work/zoo
    python bench/zoo/run.py                   # counts per half
    python bench/zoo/run.py --details dev     # which files, rules and imports (dev half only
                                              # while the allowlist is being tuned)

Held-out details are printed only when asked for (``--details held-out``): the held-out half
measures the allowlist, it must not shape it.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

from bastion.findings import Severity
from bastion.scan import Policy, scan

ZOO = Path(__file__).resolve().parents[1] / ".work" / "zoo"
HALVES = ("dev", "held-out")
USERS_OWN = ("recipes.*",)
"""The zoo's own model classes (bench/zoo/recipes: a TinyNet, a dataclass, a custom Keras
layer) stand in for a user's: a user allows their own module (``--allow mypkg.*``); no
built-in list can."""


def flagged_by_bastion(root: Path) -> tuple[dict[str, list[str]], float]:
    """Top-level files with a finding at high or above -> the findings' summaries."""
    start = time.perf_counter()
    report = scan(root, policy=Policy.default().allowing(USERS_OWN))
    elapsed = time.perf_counter() - start
    flagged: dict[str, list[str]] = collections.defaultdict(list)
    for f in report.findings:
        if f.severity >= Severity.HIGH:
            what = f.evidence.get("global") or f.evidence.get("callable") or ""
            flagged[str(Path(f.location.path).relative_to(root))].append(
                f"{f.severity.value} {f.rule} {what}".strip())
    return flagged, elapsed


def flagged_by_picklescan(root: Path) -> tuple[set[str], float]:
    """Files picklescan reports dangerous globals in (its directory walk, per file)."""
    from picklescan.scanner import scan_file_path

    start = time.perf_counter()
    flagged: set[str] = set()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            result = scan_file_path(str(path))
        except Exception:  # picklescan raises on some valid files: not a flag
            continue
        if result.infected_files or result.issues_count:
            flagged.add(str(path.relative_to(root)))
    return flagged, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", type=Path, default=ZOO)
    parser.add_argument("--details", choices=HALVES, action="append", default=[])
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    figures: dict[str, dict[str, object]] = {}
    print(f"{'half':9} {'libraries':>9} {'files':>6} {'bastion >=high':>15} "
          f"{'picklescan':>11} {'bastion s':>10} {'picklescan s':>13}")
    for half in HALVES:
        root = args.zoo / half
        files = [p for p in root.rglob("*") if p.is_file()]
        libraries = {p.relative_to(root).parts[0] for p in files}
        ours, our_s = flagged_by_bastion(root)
        theirs, their_s = flagged_by_picklescan(root)
        print(f"{half:9} {len(libraries):>9} {len(files):>6} {len(ours):>15} "
              f"{len(theirs):>11} {our_s:>10.2f} {their_s:>13.2f}")
        figures[half] = {"libraries": len(libraries), "files": len(files),
                         "bastion_flagged": len(ours), "picklescan_flagged": len(theirs),
                         "bastion_s": round(our_s, 2), "picklescan_s": round(their_s, 2)}
        if half in args.details:
            by_library = collections.Counter(Path(p).parts[0] for p in ours)
            print(f"  flagged by library: {dict(by_library.most_common())}")
            for path, summaries in sorted(ours.items()):
                print(f"  {path}")
                for line in sorted(set(summaries))[:8]:
                    print(f"      {line}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
