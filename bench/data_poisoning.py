"""Benchmark: poisoning detection across trigger families it was not tuned for.

The sweep of :mod:`poisoning.configs` (11 attack families on scikit-learn digits and breast
cancer, a CNN and two MLPs, poison rates 0–15 %, two seeds), split into a development half
and a held-out half before any tuning. Each run plants its attack
(:mod:`poisoning.attacks`), trains its model (:mod:`poisoning.models`, cached under
``bench/.work/poisoning/``), and runs Bastion's default with the model, Bastion with no model,
and ART's ActivationDefence and SpectralSignatureDefense (defaults, and the penultimate layer)
on the same poisoned set (:mod:`poisoning.detectors`). The tables give, per half and family,
median precision and recall and the share of runs meeting the target (recall ≥ 0.9,
precision ≥ 0.8) at ≥ 5 % poisoning, the same below 5 %, and the controls' false alarms;
the last line is the issue's done-when measure (held-out, patch and blend families).

    .venv/bin/python bench/data_poisoning.py --half dev --no-baselines   # tuning loop
    .venv/bin/python bench/data_poisoning.py --json out.json --markdown out.md   # full
    .venv/bin/python bench/data_poisoning.py --families blend --rates 0.1 --asr --limit 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from poisoning.configs import HALVES, RATES, configs
from poisoning.detectors import BASTION
from poisoning.sweep import ALL_DETECTORS, Options, done_when_line, markdown, run_all


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--half", choices=[*HALVES, "both"], default="both")
    p.add_argument("--families", nargs="+", help="only these families (e.g. blend wanet)")
    p.add_argument("--datasets", nargs="+", choices=["digits", "cancer"])
    p.add_argument("--rates", nargs="+", type=float, help=f"only these of {RATES}")
    p.add_argument("--seeds", nargs="+", type=int, help="only these seeds")
    p.add_argument("--limit", type=int, help="the first N runs of the selection only")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (results do not "
                   "depend on it)")
    p.add_argument("--no-baselines", action="store_true", help="Bastion's detectors only")
    p.add_argument("--asr", action="store_true", help="retrain on Bastion's cleaned sets "
                   "and the best ART defence's, and report the attack success rate after "
                   "(about 3× the training)")
    p.add_argument("--no-cache", action="store_true", help="retrain every model (the cache "
                   "is bench/.work/poisoning/)")
    p.add_argument("--json", type=Path, help="write every run's record here")
    p.add_argument("--markdown", type=Path, help="write the tables here")
    p.add_argument("--quiet", action="store_true", help="no line per run on stderr")
    return p


def _select(args: argparse.Namespace) -> list[Any]:
    chosen = [c for c in configs(None if args.half == "both" else args.half)
              if (not args.families or c.variant.family in args.families)
              and (not args.datasets or c.variant.dataset in args.datasets)
              and (not args.rates or any(abs(c.rate - r) < 1e-9 for r in args.rates))
              and (args.seeds is None or c.seed in args.seeds)]
    if args.limit is not None:
        # Spread a limited run over the families (one each in turn, highest rates first),
        # not the first variant's rates only.
        queues: dict[tuple[str, str], list[Any]] = {}
        for c in sorted(chosen, key=lambda c: (c.seed, -c.rate, c.variant.id)):
            queues.setdefault((c.variant.dataset, c.variant.family), []).append(c)
        spread = [q[i] for i in range(max(map(len, queues.values())))
                  for q in queues.values() if i < len(q)]
        chosen = spread[:args.limit]
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    warnings.filterwarnings("ignore")
    chosen = _select(args)
    if not chosen:
        print("no configuration matches", file=sys.stderr)
        return 2
    detectors = BASTION if args.no_baselines else ALL_DETECTORS
    started = time.perf_counter()

    def progress(done: int, total: int, record: dict[str, Any]) -> None:
        if args.quiet:
            return
        asr = record["asr_before"]
        cells = []
        for name, e in record["detectors"].items():
            if e["status"] != "ok":
                cells.append(f"{name} {e['status']}")
            elif "recall" in e:
                cells.append(f"{name} P{e['precision']:.2f} R{e['recall']:.2f}")
            else:
                cells.append(f"{name} {e['flagged']} flagged")
        print(f"[{done}/{total} {time.perf_counter() - started:.0f}s] {record['id']} "
              f"poisoned {record['poisoned']} acc {record['clean_acc']:.2f} "
              f"ASR {'-' if asr is None else f'{asr:.2f}'} | " + ", ".join(cells),
              file=sys.stderr, flush=True)

    options = Options(detectors, asr_after=args.asr, cache=not args.no_cache)
    records = run_all(chosen, options, args.jobs, progress)
    elapsed = time.perf_counter() - started
    table = markdown(records, detectors)
    line = done_when_line(records, detectors)
    footer = (f"{len(records)} runs in {elapsed:.0f} s with {args.jobs} worker(s) "
              f"({elapsed * args.jobs / len(records):.1f} s of a worker per run).")
    print(table)
    print(line)
    print(footer)
    if args.markdown:
        args.markdown.write_text(f"{table}\n{line}\n\n{footer}\n")
    if args.json:
        args.json.write_text(json.dumps({"detectors": list(detectors), "seconds": elapsed,
                                         "jobs": args.jobs, "runs": records}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
