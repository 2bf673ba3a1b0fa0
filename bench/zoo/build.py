"""Build the benign zoo: files that ML libraries write through their own save paths.

    /work/zoo/.venv/bin/python bench/zoo/build.py                  # every library
    /work/zoo/.venv/bin/python bench/zoo/build.py --only numpy torch
    /work/zoo/.venv/bin/python bench/zoo/build.py --out /tmp/zoo

Run it in the zoo's own virtualenv (``bench/zoo/requirements.txt``), never the project's. Each
library in ``libraries.toml`` has recipes in ``recipes/``; each writes small, seeded, realistic
files (a fitted estimator saved with ``joblib.dump``, a training checkpoint with ``torch.save``, a
model folder from ``save_pretrained``) into ``DIR/<half>/<library>/``. ``DIR/manifest.json`` lists
every file with its library, half, recipe, saver and library version. A recipe that fails prints
``SKIP library/recipe: reason`` and the others go on. Nothing here reaches the network: models
are built from tiny local configs, never fetched. Nothing here scans the files either.

``--only`` rebuilds the libraries named and keeps the other libraries' entries in the manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / ".work" / "zoo"
RECIPE_SECONDS = 240

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "KERAS_BACKEND": "torch",
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "OPENBLAS_NUM_THREADS": "2",
    "NUMBA_NUM_THREADS": "2",
    "PYTHONHASHSEED": "0",
    "WANDB_DISABLED": "true",
    "WANDB_MODE": "disabled",
    "OPTUNA_DISABLE_TELEMETRY": "1",
}

# Distribution names where the library's name in libraries.toml is not one.
DISTRIBUTIONS = {"xgboost": ("xgboost", "xgboost-cpu")}

sys.path.insert(0, str(HERE))
from recipes import RECIPES, Zoo, load_all, recipe_name, time_limit  # noqa: E402
from split import halves  # noqa: E402


@dataclass
class Outcome:
    library: str
    half: str
    version: str
    records: list[dict[str, object]] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)
    seconds: float = 0.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="zoo folder")
    parser.add_argument("--only", nargs="+", metavar="LIB", help="build only these libraries")
    args = parser.parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") != OFFLINE["PYTHONHASHSEED"]:
        # Set and frozenset order follows the string hash seed, fixed only at start-up: run
        # again under a fixed one so the pickles of sets come out the same every time.
        os.environ.update(OFFLINE)
        os.execv(sys.executable, [sys.executable, __file__, *argv])
    os.environ.update(OFFLINE)
    quiet()
    torchvision_without_ops()
    load_all()

    half_of = {lib: h for h, libs in halves().items() for lib in libs}
    wanted = args.only or list(half_of)
    unknown = [lib for lib in wanted if lib not in half_of]
    if unknown:
        parser.error(f"not in libraries.toml: {', '.join(unknown)}")
    missing = [lib for lib in half_of if lib not in RECIPES]
    if missing:
        print(f"no recipes for: {', '.join(missing)}")

    out = args.out.resolve()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="zoo-") as scratch:
        outcomes = [build(lib, half_of[lib], out, Path(scratch)) for lib in wanted]
    write_manifest(out, outcomes, replace=args.only is not None)
    summary(outcomes, time.monotonic() - start)
    return 0


def build(library: str, half: str, out: Path, scratch: Path) -> Outcome:
    outcome = Outcome(library, half, version(library))
    folder = out / half / library
    shutil.rmtree(folder, ignore_errors=True)
    zoo = Zoo(library=library, dir=folder, scratch=scratch / library)
    zoo.scratch.mkdir(parents=True)
    print(f"== {library} {outcome.version} ({half})", flush=True)
    start = time.monotonic()
    cwd = Path.cwd()
    os.chdir(zoo.scratch)  # side files some libraries drop in the working directory stay out
    try:
        for fn in RECIPES.get(library, []):
            zoo.recipe = recipe_name(fn)
            seed()
            try:
                with time_limit(RECIPE_SECONDS):
                    fn(zoo)
            except Exception as exc:
                zoo.skip(zoo.recipe, exc)
    finally:
        os.chdir(cwd)
    outcome.skips = zoo.skips
    outcome.records = records(zoo, outcome, out)
    prune(folder, {Path(r["path"]) for r in zoo.records})
    outcome.seconds = time.monotonic() - start
    return outcome


def records(zoo: Zoo, outcome: Outcome, out: Path) -> list[dict[str, object]]:
    """The manifest's entries for what the recipes recorded and is still on disk."""
    seen: dict[str, dict[str, object]] = {}
    for record in zoo.records:
        path = Path(record["path"])
        if not path.is_file():
            continue
        data = path.read_bytes()
        seen[path.relative_to(out).as_posix()] = {
            "path": path.relative_to(out).as_posix(),
            "library": outcome.library,
            "half": outcome.half,
            "recipe": record["recipe"],
            "saver": record["saver"],
            "version": outcome.version,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    return sorted(seen.values(), key=lambda r: str(r["path"]))


def prune(folder: Path, kept: set[Path]) -> None:
    """Remove what a failed recipe left half-written (anything not recorded), then empty
    folders."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file() and path not in kept:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


def write_manifest(out: Path, outcomes: list[Outcome], *, replace: bool) -> None:
    manifest = out / "manifest.json"
    built = {o.library for o in outcomes}
    files: list[dict[str, object]] = []
    skips: list[str] = []
    if replace and manifest.is_file():
        old = json.loads(manifest.read_text("utf-8"))
        files = [f for f in old["files"] if f["library"] not in built]
        skips = [s for s in old.get("skips", []) if s.split("/", 1)[0] not in built]
    for outcome in outcomes:
        files += outcome.records
        skips += outcome.skips
    body = {
        "python": platform.python_version(),
        "files": sorted(files, key=lambda f: str(f["path"])),
        "skips": sorted(skips),
    }
    out.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(body, indent=1) + "\n", "utf-8")


def summary(outcomes: list[Outcome], seconds: float) -> None:
    print(f"\n{'library':24} {'half':9} {'files':>5} {'KiB':>8} {'skips':>5} {'s':>6}")
    for o in outcomes:
        kib = sum(int(str(r["bytes"])) for r in o.records) / 1024
        print(
            f"{o.library:24} {o.half:9} {len(o.records):5} {kib:8.0f} {len(o.skips):5}"
            f" {o.seconds:6.1f}"
        )
    files = sum(len(o.records) for o in outcomes)
    mib = sum(int(str(r["bytes"])) for o in outcomes for r in o.records) / 2**20
    print(f"{'total':34} {files:5} {mib:7.1f}M {sum(len(o.skips) for o in outcomes):5}")
    with_files = sum(1 for o in outcomes if o.records)
    print(f"{with_files}/{len(outcomes)} libraries have files; {seconds:.0f}s")


def version(library: str) -> str:
    if library == "python-stdlib":
        return platform.python_version()
    for dist in DISTRIBUTIONS.get(library, (library,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def seed() -> None:
    random.seed(0)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(0)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(0)


def quiet() -> None:
    """No warnings or library logs: a few libraries reset the warning filters, so warnings are
    not shown at all."""
    warnings.filterwarnings("ignore")
    warnings.showwarning = lambda *args, **kwargs: None
    import logging

    logging.disable(logging.WARNING)


def torchvision_without_ops() -> None:
    """Let torchvision's Python half import when its compiled ops cannot load.

    PyPI's torchvision wheel is built against CUDA torch; beside a CPU torch its ``_C`` extension
    fails to load, and its import then dies registering fake kernels for two ops it never
    declared. timm, transformers and lightning import torchvision's pure-Python parts only, so
    declaring those two op schemas is enough for them (the ops themselves stay unusable).
    """
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    import torch

    extension = next(Path(spec.submodule_search_locations[0]).glob("_C*.so"), None)
    try:
        if extension is not None:
            torch.ops.load_library(str(extension))
            return
    except OSError:
        pass
    schema = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
    for op in ("nms", "qnms"):
        torch.library.define(f"torchvision::{op}", schema)
    print("torchvision: compiled ops unavailable (CUDA wheel beside CPU torch); Python parts only")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
