"""Scanner speed and memory: Bastion vs picklescan and modelscan, same files, same run.

    .venv/bin/python bench/scan_speed.py          # builds ~4 GB in bench/.work, then deletes it
    .venv/bin/python bench/scan_speed.py --small  # 1/16 of the sizes, for a quick look

Workloads: a 1 GB pickle of a NumPy array, a 2 GB PyTorch zip checkpoint, a 1 GB legacy-format
checkpoint, and a directory of 2,000 small pickles. Each tool runs as a child process on warm
files; wall time and the child's peak RSS (``wait4``) are reported, with Bastion's ratio to the
fastest peer. Bastion is timed twice: with SHA-256 digests of every file (the default, which
reads every byte) and without (``digest=False``: opcodes and archive members only).

Targets (issue 3): >= 5x faster than the fastest peer on the large files, not slower on the
many small files, peak memory < 100 MB whatever the size. Peers are installed into their own
venv under ``bench/.peers/`` if missing.
"""

from __future__ import annotations

import argparse
import collections
import pickle
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "scan_speed"
PEERS = HERE / ".peers" / "venv"
PYTHON = sys.executable
MB = 1 << 20


@dataclass(frozen=True)
class Run:
    tool: str
    seconds: float
    peak_mb: float
    rc: int
    note: str


def ensure_peers() -> None:
    """picklescan and modelscan in their own venv (never in the project's)."""
    if (PEERS / "bin" / "picklescan").exists() and (PEERS / "bin" / "modelscan").exists():
        return
    print("installing picklescan and modelscan into", PEERS, file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    subprocess.run([str(PEERS / "bin" / "pip"), "install", "-q", "picklescan", "modelscan"],
                   check=True)


def build(scale: float) -> dict[str, Path]:
    """Write the workloads (skipping any already there)."""
    import torch

    WORK.mkdir(parents=True, exist_ok=True)
    out = {
        "1 GB numpy pickle": WORK / "array.pkl",
        "2 GB torch zip": WORK / "checkpoint.pt",
        "1 GB torch legacy": WORK / "legacy.pt",
        "2,000 small pickles": WORK / "small",
    }
    if not out["1 GB numpy pickle"].exists():
        array = np.ones(int(scale * (1 << 30)) // 8)
        with out["1 GB numpy pickle"].open("wb") as f:
            pickle.dump(array, f, protocol=4)
        del array
    if not out["2 GB torch zip"].exists():
        n = max(1, int(16 * scale))
        torch.save({f"layer{i}.weight": torch.ones(32 * MB) for i in range(n)}
                   | {"meta": {"epoch": 3}}, out["2 GB torch zip"])
    if not out["1 GB torch legacy"].exists():
        n = max(1, int(8 * scale))
        torch.save({f"layer{i}.weight": torch.ones(32 * MB) for i in range(n)},
                   out["1 GB torch legacy"], _use_new_zipfile_serialization=False)
    small = out["2,000 small pickles"]
    if not small.exists():
        small.mkdir()
        rng = np.random.default_rng(0)
        for i in range(2000):
            obj = {"w": rng.random((16, 16)), "meta": collections.OrderedDict(step=i)}
            (small / f"model_{i:04d}.pkl").write_bytes(pickle.dumps(obj, protocol=4))
    return out


def warm(path: Path) -> None:
    """Read every file once so all tools meet the same (cached) disk."""
    files = [path] if path.is_file() else sorted(path.iterdir())
    for f in files:
        with f.open("rb") as fh:
            while fh.read(16 * MB):
                pass


def timed(tool: str, argv: list[str], note: str = "") -> Run:
    """Run ``argv`` under /usr/bin/time (a small parent, so the peak RSS is the tool's own)."""
    rss_file = WORK / "rss.txt"
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *argv],
                          capture_output=True, check=False)
    seconds = time.perf_counter() - start
    output = (proc.stdout + proc.stderr).decode(errors="replace").strip().splitlines()
    peak_kb = int(rss_file.read_text().split()[-1])
    last = (output[-1:] or [""])[0][:60]
    return Run(tool, seconds, peak_kb / 1024, proc.returncode, note or last)


_BASTION = (
    "import sys; from bastion.scan import scan; "
    "r = scan(sys.argv[1], digest=sys.argv[2] == '1'); "
    "print(len(r.files), 'files,', sum(f.severity.rank >= 3 for f in r.findings), 'high+')"
)


def runs_for(path: Path, repeat: int) -> list[Run]:
    """Each tool ``repeat`` times, interleaved; the fastest run of each is kept (a busy
    machine only ever adds time)."""
    tools = {
        "bastion": [PYTHON, "-c", _BASTION, str(path), "1"],
        "bastion (no digest)": [PYTHON, "-c", _BASTION, str(path), "0"],
        "picklescan": [str(PEERS / "bin" / "picklescan"), "--path", str(path)],
        "modelscan": [str(PEERS / "bin" / "modelscan"), "-p", str(path)],
    }
    best: dict[str, Run] = {}
    for _ in range(repeat):
        for tool, argv in tools.items():
            run = timed(tool, argv)
            if tool not in best or run.seconds < best[tool].seconds:
                best[tool] = Run(tool, run.seconds, max(run.peak_mb, best.get(tool, run).peak_mb),
                                 run.rc, run.note)
    return list(best.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1/16 of the sizes")
    parser.add_argument("--keep", action="store_true", help="keep bench/.work afterwards")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool (fastest kept)")
    args = parser.parse_args()
    ensure_peers()
    try:
        workloads = build(1 / 16 if args.small else 1.0)
        print(f"{'workload':22} {'tool':20} {'time s':>8} {'peak MB':>8} {'vs fastest peer':>16}"
              "  output")
        for name, path in workloads.items():
            warm(path)
            runs = runs_for(path, args.repeat)
            peers = [r for r in runs if not r.tool.startswith("bastion")]
            fastest = min(r.seconds for r in peers)
            for r in runs:
                ratio = f"{fastest / r.seconds:6.1f}x faster" if r.tool.startswith("bastion") \
                    else ""
                print(f"{name:22} {r.tool:20} {r.seconds:8.2f} {r.peak_mb:8.0f} {ratio:>16}"
                      f"  {r.note}")
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
