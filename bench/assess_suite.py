"""Benchmark: `bastion assess` against IBM ART called directly (issue 15, Benchmarks).

    .venv/bin/python bench/assess_suite.py                # the medium suite, as shipped
    .venv/bin/python bench/assess_suite.py --quick        # 50 samples, 5 black-box samples
    .venv/bin/python bench/assess_suite.py --json out.json

Two targets, each with its baseline in the same run:

1. **The default medium-risk suite** (``bastion assess policy init --risk medium``) on the
   digits CNN (``bench/poisoning``'s ``Net``, a ``state_dict`` loaded with ``--arch
   poisoning.models:Net``) and on a scikit-learn ``MLPClassifier`` (pickled), both trained
   here deterministically on the digits training split and attacked on its test split
   (``X``, ``y`` in an ``.npz``). Three timings per model:

   * **command**: ``bastion assess run`` as a subprocess, start to exit (interpreter start-up,
     imports, the scan, loading, every test, the JSON report); target < 120 s.
   * **library**: :func:`bastion.assess.assess` in process (per test: the result's
     ``seconds``).
   * **ART**: the same attacks written by hand against ART's API, with the parameters
     Bastion passes (``bastion/assess/evasion.py``, ``_blackbox.py``, ``_art.py``): the same
     sample (the policy's seeded, class-interleaved draw), clip range, ε values, steps, batch
     size 128, seeding before every ε (white-box) and every sample (black-box, seed + its
     position), HopSkipJump from the same seeded misclassified start under the same query
     cap, the closest misclassified query kept as the perturbation found.
     ``PyTorchClassifier`` + ``FastGradientMethod`` / ``ProjectedGradientDescent`` /
     ``AutoProjectedGradientDescent``; ``BlackBoxClassifier`` + ``HopSkipJump`` /
     ``SquareAttack`` over the model's probabilities (float32).

   Target: library / ART overhead ≤ 10 % and robust accuracy identical at every ε (the
   command's figures are checked against the library's too). The scikit-learn MLP has no
   gradients through Bastion's predictors, so its white-box tests are *not run* by design:
   only its black-box tests are compared.

2. **PGD throughput**: Bastion's PGD (L∞) test against ART's ``ProjectedGradientDescent`` on
   the same CNN, samples, batch (128), ε values and steps; samples attacked per second (each
   ε counts its samples once), best of ``--repeat`` runs taken in turns.

The command runs with torch's default thread count; in process both sides use ``--threads``
(default 1: these networks are tiny, and on a shared machine a second thread spins more than
it computes, which makes the timings noisy). Nothing here asserts a time; the last lines say
met or not met, with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bastion.assess import Attack, EvasionResult, Norm, Policy, assess
from bastion.assess.policy import AttackSpec
from bastion.assess.runner import sample_order
from bastion.models import load_model
from poisoning.attacks import load
from poisoning.models import Net, train

BENCH = Path(__file__).resolve().parent
BATCH = 128
"""The batch Bastion's white-box tests pass to ART (``evasion._white_box``)."""
TARGET_SECONDS = 120.0
TARGET_OVERHEAD = 0.10


# ------------------------------------------------------------------------ ART, by hand


class Spent(Exception):  # noqa: N818 - a signal, as Bastion's BudgetSpent
    """The query cap is reached."""


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def art_norm(spec: AttackSpec) -> float:
    return math.inf if spec.norm is Norm.LINF else 2.0


def torch_proba(net: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def proba(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(net(torch.as_tensor(x, dtype=torch.float32)), 1).numpy()
    return proba


@dataclass
class Curve:
    """One test's figures, from whichever side ran it."""

    seconds: float
    clean: float
    robust: list[float]
    """Robust accuracy at each ε (cumulative, as Bastion's curve)."""
    median_perturbation: float | None = None


def art_white_box(spec: AttackSpec, net: torch.nn.Module, x: np.ndarray, y: np.ndarray,
                  clip: tuple[float, float], seed: int, n_classes: int) -> Curve:
    from art.attacks.evasion import (
        AutoProjectedGradientDescent,
        FastGradientMethod,
        ProjectedGradientDescent,
    )
    from art.estimators.classification import PyTorchClassifier

    start = time.perf_counter()
    net.eval()
    clf = PyTorchClassifier(model=net, loss=torch.nn.CrossEntropyLoss(),
                            input_shape=tuple(x.shape[1:]), nb_classes=n_classes,
                            clip_values=clip, device_type="cpu")

    def correct(v: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(v)).argmax(1).numpy() == y

    clean = correct(x)
    robust, curve = clean.copy(), []
    norm = art_norm(spec)
    for eps in spec.eps:
        if eps > 0:
            seed_all(seed)
            if spec.attack is Attack.FGSM:
                attack: Any = FastGradientMethod(clf, norm=norm, eps=eps, eps_step=eps,
                                                 batch_size=BATCH)
            elif spec.attack is Attack.AUTOPGD:
                attack = AutoProjectedGradientDescent(
                    clf, norm=norm, eps=eps, eps_step=2 * eps, max_iter=spec.steps,
                    nb_random_init=1, batch_size=BATCH, loss_type="cross_entropy",
                    verbose=False)
            else:
                attack = ProjectedGradientDescent(
                    clf, norm=norm, eps=eps, eps_step=eps * spec.step_size,
                    max_iter=spec.steps, num_random_init=1 if spec.random_init else 0,
                    batch_size=BATCH, verbose=False)
            robust &= correct(attack.generate(x, y=y).astype(np.float32))
        curve.append(float(robust.mean()))
    return Curve(time.perf_counter() - start, float(clean.mean()), curve)


class Counter:
    """The model's probabilities for one sample's attack: counts queries, stops at the cap,
    keeps the closest misclassified query (what Bastion reports as the perturbation)."""

    def __init__(self, proba: Callable[[np.ndarray], np.ndarray], origin: np.ndarray,
                 label: int, limit: int, norm: Norm,
                 back: Callable[[np.ndarray], np.ndarray] = lambda v: v) -> None:
        self.proba, self.origin, self.label, self.limit = proba, origin, label, limit
        self.norm, self.back = norm, back
        self.queries, self.best, self.found = 0, math.inf, False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.queries + len(x) > self.limit:
            raise Spent
        self.queries += len(x)
        x = self.back(x)
        p = self.proba(x)
        wrong = p.argmax(1) != self.label
        if wrong.any():
            d = np.asarray(x[wrong] - self.origin[None], np.float64).reshape(int(wrong.sum()), -1)
            size = (np.abs(d).max(1) if self.norm is Norm.LINF else np.linalg.norm(d, axis=1))
            if size.min() < self.best:
                self.best, self.found = float(size.min()), True
        return np.asarray(p, np.float32)


def art_hopskipjump(spec: AttackSpec, proba: Callable[[np.ndarray], np.ndarray],
                    x: np.ndarray, y: np.ndarray, clip: tuple[float, float], seed: int,
                    n_classes: int) -> Curve:
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import BlackBoxClassifier

    start = time.perf_counter()
    n = min(spec.samples or len(y), len(y))
    x, y = x[:n], y[:n]
    clean = proba(x).argmax(1) == y
    sizes = []
    for i in range(n):
        counter = Counter(proba, x[i], int(y[i]), spec.max_queries, spec.norm)
        if clean[i]:
            seed_all(seed + i)
            attack = HopSkipJump(BlackBoxClassifier(counter, input_shape=x.shape[1:],
                                                    nb_classes=n_classes, clip_values=clip),
                                 targeted=False, norm=art_norm(spec), max_iter=100,
                                 max_eval=100, init_eval=10, init_size=100, batch_size=64,
                                 verbose=False)
            onehot = np.eye(n_classes, dtype=np.float32)[y[i:i + 1]]
            try:
                rng = np.random.default_rng(seed + i)
                for _ in range(100):  # a misclassified uniform start, from the seed
                    init = rng.uniform(*clip, size=x[i].shape).astype(np.float32)
                    if int(counter(init[None]).argmax(1)[0]) != y[i]:
                        attack.generate(x[i:i + 1], y=onehot, x_adv_init=init[None])
                        break
            except Spent:
                pass
        sizes.append(counter.best if clean[i] else 0.0)
    found = np.asarray(sizes)
    curve = [float((clean & (found > eps)).mean()) for eps in spec.eps]
    median = float(np.median(found[clean])) if clean.any() else math.inf
    return Curve(time.perf_counter() - start, float(clean.mean()), curve,
                 median if math.isfinite(median) else None)


def art_square(spec: AttackSpec, proba: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
               y: np.ndarray, clip: tuple[float, float], seed: int, n_classes: int) -> Curve:
    from art.attacks.evasion import SquareAttack
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    start = time.perf_counter()
    n = min(spec.samples or len(y), len(y))
    x, y = x[:n], y[:n]
    shape = x.shape[1:]
    if len(shape) == 3 and shape[0] in (1, 3, 4):  # channels-first images already
        images, back = x.astype(np.float32), (lambda v: v)
    else:  # rows laid out in a square image, padded with the low end of the range
        width = int(np.prod(shape))
        side = max(3, math.ceil(math.sqrt(width)))
        flat = np.full((n, side * side), clip[0], np.float32)
        flat[:, :width] = x.reshape(n, -1)
        images = flat.reshape(n, 1, side, side)

        def back(v: np.ndarray) -> np.ndarray:
            return np.asarray(v).reshape(len(v), -1)[:, :width].reshape(len(v), *shape)
    clean = proba(x).argmax(1) == y
    robust, curve = clean.copy(), []
    for eps in spec.eps:
        this = clean.copy()
        for i in np.flatnonzero(robust):
            counter = Counter(proba, x[i], int(y[i]), spec.max_queries, spec.norm, back)
            if eps > 0:
                seed_all(seed + int(i))
                attack = SquareAttack(BlackBoxClassifierNeuralNetwork(
                    counter, input_shape=images.shape[1:], nb_classes=n_classes,
                    channels_first=True, clip_values=clip), norm=art_norm(spec), eps=eps,
                    max_iter=spec.max_queries, p_init=0.3, batch_size=1, verbose=False)
                with contextlib.suppress(Spent):
                    attack.generate(images[i:i + 1],
                                    y=np.eye(n_classes, dtype=np.float32)[y[i:i + 1]])
            if counter.found:
                this[i] = False
        robust &= this
        curve.append(float(robust.mean()))
    return Curve(time.perf_counter() - start, float(clean.mean()), curve)


def art_suite(policy: Policy, model: Any, x: np.ndarray, y: np.ndarray,
              n_classes: int) -> tuple[dict[str, Curve], float]:
    """Every test of ``policy`` through ART directly (white-box ones only on a torch
    network); the total seconds, sampling included."""
    start = time.perf_counter()
    chosen = sample_order(y, policy.seed)[:policy.sample_size]
    clip = (float(x.min()), float(x.max()))  # Bastion's "data" range: no policy/model range
    xs, ys = np.clip(x[chosen], *clip).astype(np.float32), y[chosen]
    torch_net = isinstance(model, torch.nn.Module)
    proba = torch_proba(model) if torch_net else model.predict_proba
    out = {}
    for spec in policy.tests:
        if spec.attack.white_box:
            if torch_net:
                out[spec.attack.value] = art_white_box(spec, model, xs, ys, clip, policy.seed,
                                                       n_classes)
        elif spec.attack is Attack.HOPSKIPJUMP:
            out[spec.attack.value] = art_hopskipjump(spec, proba, xs, ys, clip, policy.seed,
                                                     n_classes)
        else:
            out[spec.attack.value] = art_square(spec, proba, xs, ys, clip, policy.seed,
                                                n_classes)
    return out, time.perf_counter() - start


# ------------------------------------------------------------------------ Bastion


def bastion_curves(tests: list[dict[str, Any]]) -> dict[str, Curve | None]:
    """Curves from an assessment's JSON form (``None``: not run)."""
    out: dict[str, Curve | None] = {}
    for t in tests:
        if t.get("skipped"):
            out[t["attack"]] = None
            continue
        out[t["attack"]] = Curve(t["seconds"], t["clean_accuracy"],
                                 [p["robust_accuracy"] for p in t["curve"]],
                                 t.get("median_perturbation"))
    return out


def run_command(model: Path, data: Path, policy: Path, arch: str | None,
                ) -> tuple[float, dict[str, Curve | None], int]:
    bastion = Path(sys.executable).with_name("bastion")
    argv = [str(bastion), "assess", "run", str(model), "--no-cache", "--data", str(data),
            "--policy", str(policy), "--format", "json", "--fail-on", "critical"]
    if arch:
        argv += ["--arch", arch]
    env = {**os.environ, "PYTHONPATH": str(BENCH)}
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=BENCH, check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"bastion assess run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, bastion_curves(json.loads(done.stdout)["summary"]["tests"]), done.returncode


def run_library(model: Path, x: np.ndarray, y: np.ndarray, policy: Policy, arch: Any,
                ) -> tuple[float, dict[str, Curve | None]]:
    start = time.perf_counter()
    loaded = load_model(model, arch=arch)
    done = assess(loaded.predictor, x, y, policy, source=str(model),
                  model_sha256=loaded.sha256)
    seconds = time.perf_counter() - start
    return seconds, bastion_curves([r.to_dict() for r in done.results])


# ------------------------------------------------------------------------ comparison


@dataclass
class Row:
    model: str
    test: str
    bastion_s: float | None
    art_s: float | None
    overhead: float | None
    match: bool | None
    mismatches: list[str] = field(default_factory=list)
    robust: list[float] = field(default_factory=list)
    """Bastion's robust accuracy at each ε."""


def compare(model: str, eps: dict[str, tuple[float, ...]], ours: dict[str, Curve | None],
            theirs: dict[str, Curve], command: dict[str, Curve | None]) -> list[Row]:
    rows = []
    for test, values in eps.items():
        mine = ours.get(test)
        if mine is None:
            rows.append(Row(model, test, None, None, None, None, ["not run (by design)"]))
            continue
        base = theirs[test]
        bad = [f"clean {mine.clean} vs ART {base.clean}"] if mine.clean != base.clean else []
        bad += [f"ε {e:g}: bastion {a} vs ART {b}"
                for e, a, b in zip(values, mine.robust, base.robust, strict=True) if a != b]
        if base.median_perturbation is not None or mine.median_perturbation is not None:
            a, b = mine.median_perturbation, base.median_perturbation
            if a is None or b is None or not math.isclose(a, b, rel_tol=1e-6):
                bad.append(f"median perturbation: bastion {a} vs ART {b}")
        cli = command.get(test)
        if cli is None or cli.robust != mine.robust:
            bad.append(f"command's curve {cli and cli.robust} vs library's {mine.robust}")
        rows.append(Row(model, test, mine.seconds, base.seconds,
                        mine.seconds / base.seconds - 1, not bad, bad, mine.robust))
    return rows


def in_turns(library: Callable[[], tuple[float, dict[str, Curve | None]]],
             art: Callable[[], tuple[dict[str, Curve], float]], repeat: int,
             ) -> tuple[float, dict[str, Curve | None], float, dict[str, Curve], bool]:
    """Both sides ``repeat`` times, taking turns (each goes first every other round: this
    machine's speed drifts, and it is shared); each test's best time, the first run's
    figures, and whether every run gave the same figures."""
    ours: list[tuple[float, dict[str, Curve | None]]] = []
    theirs: list[tuple[dict[str, Curve], float]] = []
    for i in range(repeat):
        if i % 2:
            theirs.append(art())
        ours.append(library())
        if not i % 2:
            theirs.append(art())

    def robust(c: Curve | None) -> list[float] | None:
        return None if c is None else c.robust

    stable = all({k: robust(c) for k, c in run.items()}
                 == {k: robust(c) for k, c in ours[0][1].items()} for _, run in ours)
    stable &= all({k: c.robust for k, c in run.items()}
                  == {k: c.robust for k, c in theirs[0][0].items()} for run, _ in theirs)
    best_ours = {k: None if c is None else Curve(min(r[k].seconds for _, r in ours
                                                     if r[k] is not None),
                                                 c.clean, c.robust, c.median_perturbation)
                 for k, c in ours[0][1].items()}
    best_theirs = {k: Curve(min(r[k].seconds for r, _ in theirs), c.clean, c.robust,
                            c.median_perturbation) for k, c in theirs[0][0].items()}
    return (min(s for s, _ in ours), best_ours, min(s for _, s in theirs), best_theirs,
            stable)


def pgd_throughput(net: torch.nn.Module, x: np.ndarray, y: np.ndarray, weights: Path,
                   samples: int, repeat: int) -> dict[str, Any]:
    """Bastion's PGD (L∞) test against ART's PGD on the same samples, batch, ε and steps."""
    body = {"version": 1, "seed": 0, "sample_size": samples, "max_seconds": 600,
            "tests": {"pgd_linf": {"eps": [0.05, 0.1], "steps": 20, "step_size": 0.1,
                                   "random_init": True}}}
    policy = Policy.from_mapping(body, source="pgd-throughput")
    spec = policy.tests[0]
    predictor = load_model(weights, arch=Net).predictor
    n = min(samples, len(y))
    attacked = n * sum(1 for e in spec.eps if e > 0)
    ours, theirs = [], []

    def bastion() -> None:
        result = assess(predictor, x, y, policy).results[0]
        assert isinstance(result, EvasionResult)
        ours.append(result.seconds)

    def art() -> None:
        theirs.append(art_suite(policy, net, x, y, 10)[0]["pgd_linf"].seconds)

    for i in range(repeat):  # in turns, each first every other time: the machine's speed drifts
        for side in ((bastion, art) if i % 2 == 0 else (art, bastion)):
            side()
    b, a = attacked / min(ours), attacked / min(theirs)
    return {"samples": n, "eps": list(spec.eps), "steps": spec.steps, "batch": BATCH,
            "bastion_samples_per_s": b, "art_samples_per_s": a, "ratio": b / a,
            "bastion_s": min(ours), "art_s": min(theirs), "repeat": repeat}


def warm_up(net: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> None:
    """Import ART's attacks and run one tiny attack, so neither side pays the first call."""
    spec = Policy.from_mapping({"version": 1, "sample_size": 4, "tests": {
        "pgd_linf": {"eps": [0.1], "steps": 2}}}).tests[0]
    art_white_box(spec, net, x[:4], y[:4], (0.0, 1.0), 0, 10)
    import art.attacks.evasion  # noqa: F401


def fmt_s(v: float | None) -> str:
    return f"{v:7.2f}" if v is not None else "      -"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="50 samples (5 black-box), for a fast check")
    parser.add_argument("--risk", default="medium", choices=["low", "medium", "high"],
                        help="the preset suite (the issue's target is medium)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="in-process runs per side, in turns (the best is reported)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads in process, both sides (the command keeps "
                             "torch's default)")
    parser.add_argument("--json", metavar="OUT", type=Path, help="write the figures here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    command_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)

    x_tr, x_te, y_tr, y_te = load("digits", 0)
    cnn = train("cnn", x_tr, y_tr, 0, 10)
    mlp = train("sklearn-mlp", x_tr, y_tr, 0, 10)
    rows: list[Row] = []
    report: dict[str, Any] = {"risk": args.risk, "quick": args.quick, "cpus": os.cpu_count(),
                              "torch_threads": {"command": command_threads,
                                                "in_process": args.threads}, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        policy_file = work / "policy.yaml"
        subprocess.run([str(Path(sys.executable).with_name("bastion")), "assess", "policy",
                        "init", "--risk", args.risk, "--output", str(policy_file)],
                       check=True, capture_output=True)
        if args.quick:
            body = yaml.safe_load(policy_file.read_text())
            body["sample_size"] = 50
            for test in body["tests"].values():
                if "samples" in test:
                    test["samples"] = 5
            policy_file.write_text(yaml.safe_dump(body, sort_keys=False))
        policy = Policy.from_file(policy_file)
        eps = {t.attack.value: t.eps for t in policy.tests}
        torch.save(cnn.state_dict(), work / "cnn.pt")
        (work / "mlp.pkl").write_bytes(pickle.dumps(mlp, protocol=4))
        x_cnn = x_te.astype(np.float32)  # (n, 1, 8, 8): NCHW
        x_mlp = x_cnn.reshape(len(x_cnn), -1)
        np.savez(work / "cnn.npz", X=x_cnn, y=y_te)
        np.savez(work / "mlp.npz", X=x_mlp, y=y_te)
        warm_up(cnn, x_cnn, y_te)
        print(f"digits ({len(y_te)} test samples), {args.risk} preset"
              f"{' (quick: 50 samples, 5 black-box)' if args.quick else ''}: sample_size "
              f"{policy.sample_size}, tests {', '.join(eps)}; {os.cpu_count()} CPUs; torch "
              f"threads: {command_threads} in the command, {args.threads} in process")
        totals = {}
        for name, file, data, arch, x, model in (
                ("digits CNN", "cnn.pt", "cnn.npz", "poisoning.models:Net", x_cnn, cnn),
                ("sklearn MLP", "mlp.pkl", "mlp.npz", None, x_mlp, mlp)):
            command_s, command, code = run_command(work / file, work / data, policy_file, arch)
            library_s, ours, art_s, theirs, stable = in_turns(
                lambda file=file, x=x, arch=arch: run_library(work / file, x, y_te, policy,
                                                              Net if arch else None),
                lambda x=x, model=model: art_suite(policy, model, x, y_te, 10), args.repeat)
            if not stable:
                print(f"  {name}: figures changed between repeats (not deterministic)")
            model_rows = compare(name, eps, ours, theirs, command)
            rows += model_rows
            compared = [r for r in model_rows if r.art_s is not None]
            # the library's total against ART's, both over the tests ART ran
            art_total = sum(r.art_s or 0.0 for r in compared)
            ours_total = sum(r.bastion_s or 0.0 for r in compared)
            totals[name] = {"command_s": command_s, "command_exit": code, "stable": stable,
                            "library_s": library_s, "art_s": art_s,
                            "tests_bastion_s": ours_total, "tests_art_s": art_total,
                            "overhead_tests": ours_total / art_total - 1,
                            "overhead_total": library_s / art_s - 1}
    print(f"\n{'model':12} {'test':12} {'bastion s':>9} {'ART s':>7} {'overhead':>9}  "
          "robust accuracy per ε")
    for r in rows:
        if r.art_s is None:
            print(f"{r.model:12} {r.test:12} {'':>9} {'':>7} {'':>9}  not run: white-box, "
                  "no gradients through a scikit-learn model (by design)")
            continue
        verdict = ("identical: " + " ".join(f"{v:.3f}" for v in r.robust) if r.match
                   else "DIFFERS: " + "; ".join(r.mismatches))
        print(f"{r.model:12} {r.test:12} {fmt_s(r.bastion_s):>9} {fmt_s(r.art_s):>7} "
              f"{r.overhead:+8.1%}  {verdict}")
    for name, t in totals.items():
        print(f"{name:12} {'all tests':12} {fmt_s(t['tests_bastion_s']):>9} "
              f"{fmt_s(t['tests_art_s']):>7} {t['overhead_tests']:+8.1%}  library call "
              f"{t['library_s']:.1f} s (load + assess) vs ART {t['art_s']:.1f} s "
              f"({t['overhead_total']:+.1%}); command end to end {t['command_s']:.1f} s "
              f"(exit {t['command_exit']})")

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "cnn.pt"
        torch.save(cnn.state_dict(), weights)
        pgd = pgd_throughput(cnn, x_cnn, y_te, weights, 200 if args.quick else len(y_te),
                             max(args.repeat, 5))
    print(f"\nPGD L∞ throughput, digits CNN, {pgd['samples']} samples × ε {pgd['eps']}, "
          f"{pgd['steps']} steps, batch {pgd['batch']} (best of {pgd['repeat']}): bastion "
          f"{pgd['bastion_samples_per_s']:.0f} samples/s, ART "
          f"{pgd['art_samples_per_s']:.0f} samples/s, bastion / ART = {pgd['ratio']:.2f}")

    compared = [r for r in rows if r.art_s is not None]
    slowest = max(t["command_s"] for t in totals.values())
    worst = max(t["overhead_total"] for t in totals.values())
    same = all(r.match for r in compared)
    met1 = slowest < TARGET_SECONDS and worst <= TARGET_OVERHEAD and same
    print(f"\ntarget 1 ({args.risk} suite < {TARGET_SECONDS:.0f} s on {os.cpu_count()} cores, "
          f"overhead ≤ {TARGET_OVERHEAD:.0%}, identical robust accuracy): "
          f"{'met' if met1 else 'NOT MET'}: command "
          + ", ".join(f"{n} {t['command_s']:.1f} s" for n, t in totals.items())
          + f"; library call against ART: worst overhead {worst:+.1%}; robust accuracy "
          f"{'identical' if same else 'differs'} in "
          f"{sum(r.match for r in compared)}/{len(compared)} tests")
    met2 = pgd["ratio"] >= 1 / (1 + TARGET_OVERHEAD)
    print(f"target 2 (PGD samples/s against ART's PGD, same model and batch): "
          f"{'met' if met2 else 'NOT MET'}: {pgd['bastion_samples_per_s']:.0f} vs "
          f"{pgd['art_samples_per_s']:.0f} samples/s ({pgd['ratio']:.2f}×; within "
          f"{TARGET_OVERHEAD:.0%} of ART counts as met)")
    if args.json:
        report["models"] = totals
        report["tests"] = [asdict(r) for r in rows]
        report["pgd"] = pgd
        report["met"] = {"suite": met1, "pgd": met2}
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
