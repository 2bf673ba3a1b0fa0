"""Scanner speed and memory: Bastion vs picklescan and modelscan, same files, same run.

    .venv/bin/python bench/scan_speed.py          # builds ~5.5 GB in bench/.work, then deletes it
    .venv/bin/python bench/scan_speed.py --small  # 1/16 of the bytes (same tensor counts)

Workloads (issue 3): a 1 GB pickle of a NumPy array; a 2 GB PyTorch zip checkpoint and the
same checkpoint in the legacy format; a directory of 2,000 small pickles. The checkpoints have
a real training checkpoint's shape: a 16-layer GPT-2-style model (196 parameters, 153 M
floats) with its AdamW state, 784 tensors in all, so the pickle inside is what such files
really hold (about 30,000 opcodes) rather than a handful of giant tensors.

Two measurements per tool, both on warm files:

* **scan work**: the tool's own Python API called in a process where it is already imported
  (``bastion.scan.scan``, picklescan's ``scan_file_path`` / ``scan_directory_path``,
  modelscan's ``ModelScan().scan``); the best of ``--repeat`` x ``--burst`` calls after one
  warm-up call, with the median beside it. Best-of is timeit's convention: on a shared machine
  noise only ever adds time, and it adds the same milliseconds to a fast tool as to a slow
  one, so medians understate the ratio between them. This is the cost of scanning, which is
  what a tool can change.
* **command**: the tool's command line as a user runs it, interpreter start-up and imports
  included (the best of ``--repeat`` runs), with the child's peak RSS. A bare
  ``python -c pass`` is timed too: no Python tool can finish faster than that.

The tools take turns, round by round (a burst of calls or one run of each, then the next
round): this machine's speed drifts over minutes, and timing each tool's repeats back to back
would compare one tool's slow minute with another's fast one. Each round's calls come in a
burst of ``--burst`` (3) back to back, as when a tool scans one file after another: a worker
that has just woken from waiting on the others runs its first few milliseconds markedly slower
on this virtual machine (Bastion's legacy scan: 5.0 ms back to back, 6.4 ms after 30 ms
asleep, measured alike), a fixed cost that would weigh on a 5 ms scan five times as much as on
a 25 ms one. The best and the median are over every call.

Bastion runs without digests (the default); ``--digest`` adds a run with SHA-256 of every
file, which reads every byte. Targets (issue 3): >= 5x faster than the fastest peer on the
large files, not slower on the many small files, peak memory < 100 MB whatever the size. Peers
are installed into their own venv under ``bench/.peers/`` if missing.
"""

from __future__ import annotations

import argparse
import collections
import pickle
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "scan_speed"
PEERS = HERE / ".peers" / "venv"
PYTHON = sys.executable
PEER_PYTHON = str(PEERS / "bin" / "python")
BASTION_CLI = str(Path(sys.executable).parent / "bastion")
MB = 1 << 20
NOT_A_BASELINE = {
    ("2 GB torch legacy", "modelscan"):
        "reads 1 of the 5 pickles torch.load unpickles (a payload in the model is missed)",
}
"""Peers whose run on a workload skips the work that matters: shown, but not a baseline."""


@dataclass(frozen=True)
class Timing:
    tool: str
    work_s: float | None
    """Best in-process scan time (``None`` when the tool failed in-process)."""
    work_median_s: float | None
    command_s: float
    peak_mb: float
    note: str


def compile_bastion() -> None:
    """Byte-compile Bastion as ``pip install`` does for the peers (an editable install in an
    environment with PYTHONDONTWRITEBYTECODE would otherwise recompile it on every run)."""
    import compileall

    import bastion

    compileall.compile_dir(Path(bastion.__file__).parent, quiet=1)


def ensure_peers() -> None:
    """picklescan and modelscan in their own venv (never in the project's)."""
    if (PEERS / "bin" / "picklescan").exists() and (PEERS / "bin" / "modelscan").exists():
        return
    print("installing picklescan and modelscan into", PEERS, file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    subprocess.run([str(PEERS / "bin" / "pip"), "install", "-q", "picklescan", "modelscan"],
                   check=True)


def training_checkpoint(scale: float) -> dict[str, object]:
    """A GPT-2-style model's state dict and its AdamW state (784 tensors; ~1.8 GB at scale 1).

    ``scale`` shrinks the widths, not the number of tensors, so the pickle stays the same.
    """
    import torch

    d = max(8, int(768 * scale ** 0.5))
    vocab = max(8, int(50257 * scale ** 0.5))
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (vocab, d), "wpe.weight": (1024, d)}
    for i in range(16):
        for name, shape in {
            "ln_1.weight": (d,), "ln_1.bias": (d,), "attn.c_attn.weight": (d, 3 * d),
            "attn.c_attn.bias": (3 * d,), "attn.c_proj.weight": (d, d), "attn.c_proj.bias": (d,),
            "ln_2.weight": (d,), "ln_2.bias": (d,), "mlp.c_fc.weight": (d, 4 * d),
            "mlp.c_fc.bias": (4 * d,), "mlp.c_proj.weight": (4 * d, d), "mlp.c_proj.bias": (d,),
        }.items():
            shapes[f"h.{i}.{name}"] = shape
    shapes |= {"ln_f.weight": (d,), "ln_f.bias": (d,)}
    model = collections.OrderedDict((k, torch.zeros(s)) for k, s in shapes.items())
    state = {
        i: {"step": torch.tensor(1000.0), "exp_avg": torch.zeros(s), "exp_avg_sq": torch.zeros(s)}
        for i, s in enumerate(shapes.values())
    }
    groups = [{"lr": 3e-4, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1,
               "amsgrad": False, "foreach": None, "maximize": False, "capturable": False,
               "differentiable": False, "fused": None, "params": list(range(len(shapes)))}]
    return {"model": model, "optimizer": {"state": state, "param_groups": groups},
            "epoch": 3, "step": 1000}


def build(scale: float) -> dict[str, Path]:
    """Write the workloads (skipping any already there: each scale has its own folder, so a
    ``--small`` run's files are never timed as the full-size ones)."""
    import torch

    work = WORK / ("full" if scale == 1 else f"scale-{scale:g}")
    work.mkdir(parents=True, exist_ok=True)
    out = {
        "1 GB numpy pickle": work / "array.pkl",
        "2 GB torch zip": work / "checkpoint.pt",
        "2 GB torch legacy": work / "legacy.pt",
        "2,000 small pickles": work / "small",
    }
    if not out["1 GB numpy pickle"].exists():
        array = np.ones(int(scale * (1 << 30)) // 8)
        with out["1 GB numpy pickle"].open("wb") as f:
            pickle.dump(array, f, protocol=4)
        del array
    if not out["2 GB torch zip"].exists() or not out["2 GB torch legacy"].exists():
        checkpoint = training_checkpoint(scale)
        torch.save(checkpoint, out["2 GB torch zip"])
        torch.save(checkpoint, out["2 GB torch legacy"], _use_new_zipfile_serialization=False)
        del checkpoint
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


# A worker per tool, in the tool's own interpreter: import, one warm-up call, then one timed
# call per line read from stdin, its seconds printed back ("fail" when it raised).
_WORKER = textwrap.dedent("""
    import os, sys, time
    tool, path = sys.argv[1], sys.argv[2]
    if tool == "picklescan":
        from picklescan.scanner import scan_directory_path, scan_file_path
        call = (lambda: scan_directory_path(path)) if os.path.isdir(path) else \\
            (lambda: scan_file_path(path))
    elif tool == "modelscan":
        import logging
        logging.disable(logging.CRITICAL)
        from modelscan.modelscan import ModelScan
        call = lambda: ModelScan().scan(path)
    else:
        from bastion.scan import scan
        digest = tool.endswith("digest")
        call = lambda: scan(path, digest=digest)
    try:
        call()
        ok = True
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        ok = False
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        if ok:
            call()
        print(time.perf_counter() - start if ok else "fail", flush=True)
""")


class _Worker:
    """A tool's worker process, timed one call at a time."""

    def __init__(self, tool: str, path: Path) -> None:
        python = PYTHON if tool.startswith("bastion") else PEER_PYTHON
        self.tool = tool
        self.proc = subprocess.Popen(
            [python, "-c", _WORKER, tool.replace(" --", " "), str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self.ok = self.stdout.readline().strip() == "ready"
        self.times: list[float] = []

    def calls(self, burst: int) -> None:
        """``burst`` timed calls, back to back (the worker reads the next request at once)."""
        if not self.ok:
            return
        self.stdin.write("\n" * burst)
        self.stdin.flush()
        for _ in range(burst):
            answer = self.stdout.readline().strip()
            if answer in ("", "fail"):
                self.ok = False
                return
            self.times.append(float(answer))

    def close(self) -> tuple[float | None, float | None]:
        """The best and the median call (``None`` when the tool failed in-process)."""
        self.stdin.close()
        self.proc.wait()
        if not self.ok or not self.times:
            assert self.proc.stderr is not None
            print(f"  {self.tool} failed in-process: {self.proc.stderr.read().strip()[-200:]}",
                  file=sys.stderr)
            return None, None
        return min(self.times), statistics.median(self.times)


def command(argv: list[str]) -> tuple[float, float, str]:
    """One run under /usr/bin/time: wall time, peak RSS, the output's last line."""
    rss_file = WORK / "rss.txt"
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *argv],
                          capture_output=True, check=False)
    seconds = time.perf_counter() - start
    lines = (proc.stdout + proc.stderr).decode(errors="replace").strip().splitlines()
    last = (lines[-1:] or [""])[0].strip()[:50]
    return seconds, int(rss_file.read_text().split()[-1]) / 1024, last


def timings(path: Path, repeat: int, burst: int, digest: bool) -> list[Timing]:
    """Every tool on ``path``, taking turns round by round: the machine's speed drifts, and a
    tool timed in a slow minute would otherwise be compared with one timed in a fast one."""
    commands = {
        "bastion": [BASTION_CLI, "scan", str(path)],
        "picklescan": [str(PEERS / "bin" / "picklescan"), "--path", str(path)],
        "modelscan": [str(PEERS / "bin" / "modelscan"), "-p", str(path)],
    }
    if digest:
        commands["bastion --digest"] = [BASTION_CLI, "scan", "--digest", str(path)]
    workers = {tool: _Worker(tool, path) for tool in commands}
    for _ in range(repeat):
        for worker in workers.values():
            worker.calls(burst)
    best_command = dict.fromkeys(commands, float("inf"))
    peak = dict.fromkeys(commands, 0.0)
    note = dict.fromkeys(commands, "")
    for _ in range(repeat):
        for tool, argv in commands.items():
            seconds, rss, note[tool] = command(argv)
            best_command[tool] = min(best_command[tool], seconds)
            peak[tool] = max(peak[tool], rss)
    return [Timing(tool, *workers[tool].close(), best_command[tool], peak[tool], note[tool])
            for tool in commands]


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1000:8.1f}ms" if seconds is not None else "      fail"


def _ratio(peer: float | None, ours: float | None) -> str:
    return f"{peer / ours:5.1f}x" if peer and ours else "   - "


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1/16 of the bytes")
    parser.add_argument("--keep", action="store_true", help="keep bench/.work afterwards")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (command runs) per tool")
    parser.add_argument("--burst", type=int, default=3,
                        help="scan-work calls per tool per round, back to back")
    parser.add_argument("--digest", action="store_true", help="also time bastion --digest")
    parser.add_argument("--only", metavar="TEXT",
                        help="only the workloads whose name contains TEXT (e.g. legacy)")
    args = parser.parse_args()
    ensure_peers()
    compile_bastion()
    try:
        workloads = build(1 / 16 if args.small else 1.0)
        bare = min(command([PYTHON, "-c", "pass"])[0] for _ in range(args.repeat))
        print(f"bare interpreter start-up (python -c pass): {bare * 1000:.0f} ms\n")
        print(f"{'workload':20} {'tool':17} {'scan work':>10} {'(median)':>10} {'command':>9}"
              f" {'peak MB':>8} {'work vs fastest peer':>21} {'command vs fastest':>19}  output")
        for name, path in workloads.items():
            if args.only and args.only not in name:
                continue
            warm(path)
            runs = timings(path, args.repeat, args.burst, args.digest)
            peers = [r for r in runs if not r.tool.startswith("bastion")
                     and (name, r.tool) not in NOT_A_BASELINE]
            peer_work = min((r.work_s for r in peers if r.work_s), default=None)
            peer_median = min((r.work_median_s for r in peers if r.work_median_s), default=None)
            peer_cmd = min(r.command_s for r in peers)
            for r in runs:
                mine = r.tool.startswith("bastion")
                ratio = f"{_ratio(peer_work, r.work_s)} ({_ratio(peer_median, r.work_median_s)})"
                print(f"{name:20} {r.tool:17} {_ms(r.work_s):>10} {_ms(r.work_median_s):>10}"
                      f" {r.command_s:8.2f}s {r.peak_mb:8.0f}"
                      f" {ratio if mine else '':>21}"
                      f" {_ratio(peer_cmd, r.command_s) if mine else '':>19}  "
                      f"{NOT_A_BASELINE.get((name, r.tool), r.note)}")
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
