"""Detections and false positives: Bastion beside modelscan, picklescan (±--strict), fickling.

    .venv/bin/python bench/scan_peers.py             # all fixtures, a table per tool and per file
    .venv/bin/python bench/scan_peers.py --jobs 1    # one process at a time (slower, quieter)

Builds the project's fixtures (``tests/scan/corpus.py`` for pickle-based formats and archives,
``tests/scan/corpus_formats.py`` for Keras, ONNX, SavedModel, safetensors and GGUF) into
``bench/.work/scan_peers/`` and runs every tool on every fixture, each as its users would from the
command line. The peers live in their own venv under ``bench/.peers/`` (made if missing; shared
with ``scan_speed.py``), never in the project's.

A *detection* is the tool's "unsafe" verdict on a malicious fixture: exit code 1 for every tool
(modelscan: issues found; picklescan: dangerous globals; fickling --check-safety: unsafe;
``bastion scan --fail-on medium``: a finding at medium or above). The same verdict on a benign
fixture is a *false positive*. A crash or "cannot scan" is counted as an error, never as a
detection. The canary file that malicious payloads would create is checked after every run.
Times include each tool's start-up (Bastion's CLI imports its whole command set), so they are
not a speed comparison: ``scan_speed.py`` is.

modelscan is run as installed by ``pip install modelscan`` plus h5py: its ``.keras`` and
SavedModel scanners need the ``tensorflow`` extra (over 500 MB) and report an error without it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "scan_peers"
PEERS = HERE / ".peers" / "venv"
BASTION = Path(sys.executable).parent / "bastion"
TIMEOUT_S = 120

sys.path.insert(0, str(ROOT))  # the fixture builders live with the tests


@dataclass(frozen=True)
class Fixture:
    name: str
    family: str
    path: Path
    expected: str | None
    """The rule Bastion should report; ``None`` for benign."""


@dataclass(frozen=True)
class Verdict:
    outcome: str
    """``flagged``, ``clean`` or ``error``."""
    seconds: float


def ensure_peers() -> None:
    """modelscan, picklescan and fickling in their own venv (h5py lets modelscan read .h5)."""
    pip = PEERS / "bin" / "pip"
    wanted = ["modelscan", "picklescan", "fickling", "typing_extensions", "h5py"]
    if not (PEERS / "bin" / "python").exists():
        print("creating", PEERS, file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    freeze = subprocess.run([str(pip), "list", "--format=freeze"], capture_output=True,
                            text=True, check=True).stdout
    have = {line.split("==")[0].lower().replace("-", "_") for line in freeze.splitlines()}
    missing = [w for w in wanted if w.lower() not in have]
    if missing:
        print("installing", ", ".join(missing), "into", PEERS, file=sys.stderr)
        # fickling 0.1.x imports typing_extensions without declaring it.
        subprocess.run([str(pip), "install", "-q", *missing], check=True)


def build() -> tuple[list[Fixture], Path]:
    from tests.scan.corpus import write_corpus
    from tests.scan.corpus_formats import write_format_corpus

    shutil.rmtree(WORK, ignore_errors=True)
    canary = WORK / "CANARY-was-executed"
    fixtures = []
    for written in (write_corpus(WORK / "pickles", canary)
                    + write_format_corpus(WORK / "formats", canary)):
        fixtures.append(Fixture(written.case.name, written.case.family, written.path,
                                written.case.rule))
    canary.unlink(missing_ok=True)
    return fixtures, canary


Done = subprocess.CompletedProcess[str]


def _run(command: list[str], crashed: Callable[[Done], bool]) -> Verdict:
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S,
                              cwd=WORK, check=False)
    except subprocess.TimeoutExpired:
        return Verdict("error", TIMEOUT_S)
    seconds = time.perf_counter() - start
    if crashed(done):
        return Verdict("error", seconds)
    return Verdict({0: "clean", 1: "flagged"}.get(done.returncode, "error"), seconds)


def _traceback(done: Done) -> bool:
    return "Traceback (most recent call last)" in done.stderr


def tools() -> dict[str, Callable[[Path], Verdict]]:
    bin_ = PEERS / "bin"

    def modelscan(path: Path) -> Verdict:
        return _run([str(bin_ / "modelscan"), "-p", str(path)], _traceback)

    def picklescan(path: Path) -> Verdict:
        return _run([str(bin_ / "picklescan"), "-p", str(path)], _traceback)

    def picklescan_strict(path: Path) -> Verdict:
        return _run([str(bin_ / "picklescan"), "--strict", "-p", str(path)], _traceback)

    def fickling(path: Path) -> Verdict:
        # fickling's CLI takes one file; a directory fixture is judged file by file.
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        verdicts = [_run([str(bin_ / "fickling"), "--check-safety", str(f)], _traceback)
                    for f in files]
        outcome = ("flagged" if any(v.outcome == "flagged" for v in verdicts)
                   else "error" if any(v.outcome == "error" for v in verdicts) else "clean")
        return Verdict(outcome, sum(v.seconds for v in verdicts))

    def bastion(path: Path) -> Verdict:
        return _run([str(BASTION), "scan", str(path), "--format", "json", "--fail-on",
                     "medium"], lambda done: done.returncode not in (0, 1))

    return {"bastion": bastion, "modelscan": modelscan, "picklescan": picklescan,
            "picklescan --strict": picklescan_strict, "fickling": fickling}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="parallel tool runs")
    args = parser.parse_args(argv)
    ensure_peers()
    fixtures, canary = build()
    runners = tools()
    jobs = [(f, t) for f in fixtures for t in runners]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(jobs, pool.map(lambda job: runners[job[1]](job[0].path), jobs),
                           strict=True))
    executed = canary.exists()

    malicious = [f for f in fixtures if f.expected]
    benign = [f for f in fixtures if not f.expected]
    print(f"\n{len(malicious)} malicious and {len(benign)} benign fixtures "
          f"({len({f.family for f in fixtures})} families)\n")
    header = (f"{'tool':<22}{'detected':>12}{'missed':>8}{'false pos.':>12}{'errors':>8}"
              f"{'time s':>9}")
    print(header)
    print("-" * len(header))
    for tool in runners:
        tp = sum(results[(f, tool)].outcome == "flagged" for f in malicious)
        fp = sum(results[(f, tool)].outcome == "flagged" for f in benign)
        err = sum(results[(f, tool)].outcome == "error" for f in fixtures)
        secs = sum(results[(f, tool)].seconds for f in fixtures)
        print(f"{tool:<22}{f'{tp}/{len(malicious)}':>12}{len(malicious) - tp:>8}"
              f"{f'{fp}/{len(benign)}':>12}{err:>8}{secs:>9.1f}")

    print("\nPer family (detected malicious / false positives on benign):")
    families = sorted({f.family for f in fixtures})
    print(f"{'family':<14}" + "".join(f"{t:>22}" for t in runners))
    for family in families:
        mal = [f for f in malicious if f.family == family]
        ben = [f for f in benign if f.family == family]
        cells = []
        for tool in runners:
            tp = sum(results[(f, tool)].outcome == "flagged" for f in mal)
            fp = sum(results[(f, tool)].outcome == "flagged" for f in ben)
            cells.append(f"{tp}/{len(mal)} · {fp}/{len(ben)}")
        print(f"{family:<14}" + "".join(f"{c:>22}" for c in cells))

    mark = {"flagged": "FLAG", "clean": "-", "error": "ERR"}
    print("\nPer fixture (FLAG = reported unsafe, - = passed as clean, ERR = could not scan):")
    print(f"{'fixture':<46}{'expected':<28}" + "".join(f"{t[:12]:>13}" for t in runners))
    for f in fixtures:
        row = "".join(f"{mark[results[(f, t)].outcome]:>13}" for t in runners)
        print(f"{f.name[:45]:<46}{(f.expected or 'benign')[:27]:<28}{row}")
    print(f"\ncanary created by any tool: {'YES' if executed else 'no'}")
    return 1 if executed else 0


if __name__ == "__main__":
    sys.exit(main())
