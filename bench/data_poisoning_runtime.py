"""Benchmark: `bastion data poisoning` end to end on digits with a CNN, as a user runs it.

The issue's target: under 60 s on 2 cores. One poisoned digits set (a blended trigger at 10 %,
from the sweep's development half) is written as an NCHW ``X.npy`` / ``y.npy`` with the CNN's
``state_dict``; the command (``--model weights.pt --arch poisoning.models:Net``: scan of the
weights, the user's architecture, layout inference, the detector, a JSON report) runs as a
subprocess, timed from start to exit. Baselines in the same run, on the same array and model:
ART's ActivationDefence and SpectralSignatureDefense (penultimate layer), in process (so their
figure leaves out Python's and torch's start-up, which the command's includes).

    .venv/bin/python bench/data_poisoning_runtime.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from poisoning.attacks import poison
from poisoning.configs import configs
from poisoning.detectors import Run, detect
from poisoning.models import train

BENCH = Path(__file__).resolve().parent


def main() -> int:
    warnings.filterwarnings("ignore")
    config = next(c for c in configs("dev") if c.variant.dataset == "digits"
                  and c.variant.family == "blend" and c.variant.model == "cnn"
                  and c.rate == 0.1 and c.seed == 0)
    p = poison(config)
    net = train("cnn", p.x_train, p.y_train, config.seed, p.n_classes)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        np.save(work / "X.npy", p.x_train.astype(np.float32))  # (n, 1, 8, 8): NCHW
        np.save(work / "y.npy", p.y_train)
        torch.save(net.state_dict(), work / "weights.pt")
        bastion = Path(sys.executable).with_name("bastion")
        command = [str(bastion), "data", "poisoning", str(work / "X.npy"),
                   "--model", str(work / "weights.pt"), "--arch",
                   "poisoning.models:Net", "--format", "json", "--fail-on", "critical"]
        env = {**os.environ, "PYTHONPATH": str(BENCH)}
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=BENCH,
                              check=False)
        seconds = time.perf_counter() - started
        if done.returncode not in (0, 1):
            print(done.stderr, file=sys.stderr)
            return 1
        summary = json.loads(done.stdout)["summary"]
    flagged = np.asarray(summary["suspicious"], dtype=np.int64)
    tp = int(p.truth[flagged].sum())
    print(f"digits, CNN, blend 10 % ({int(p.truth.sum())} poisoned of {len(p.y_train)}), "
          f"{os.cpu_count()} CPUs")
    print(f"bastion data poisoning (command, end to end): {seconds:.1f} s, method "
          f"{summary['method']}, flagged {len(flagged)}, precision "
          f"{tp / max(len(flagged), 1):.2f}, recall {tp / p.truth.sum():.2f} (target < 60 s)")
    run = Run(p, "cnn", net, "digits", config.seed)
    for name in ("art-AC-penult", "art-SS-penult"):
        outcome = detect(name, run)
        rows = getattr(outcome, "rows", np.array([], np.int64))
        tp = int(p.truth[rows].sum())
        print(f"{name} (in process): {outcome.seconds:.1f} s, flagged {len(rows)}, precision "
              f"{tp / max(len(rows), 1):.2f}, recall {tp / p.truth.sum():.2f}; "
              f"bastion / this = {seconds / outcome.seconds:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
