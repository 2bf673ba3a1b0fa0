"""Benchmark: membership inference, Bastion's attacks beside ART's black-box attack called
directly (the membership test's Benchmarks).

    .venv/bin/python bench/assess_privacy.py                # about 2 minutes on 2 cores
    .venv/bin/python bench/assess_privacy.py --quick        # 4 shadow models, smaller sets
    .venv/bin/python bench/assess_privacy.py --json out.json --seed 1

What is measured: :func:`bastion.assess.assess` with a policy holding only the membership test
(attacks ``threshold``, ``confidence``, ``art_blackbox``, ``lira``; 16 shadow models, as the
high preset) against scikit-learn models through ``bastion.models.as_predictor``; per attack
its AUC, balanced accuracy and TPR at 1 % and 0.1 % FPR, and the seconds it took.

**The data.** Bastion draws at most ``samples`` members and at most ``samples`` non-members,
each side on its own, and a TPR at 0.1 % FPR needs at least 1,000 non-members (Bastion reports
it as not measurable, ``None``, below that). No larger real data set than digits loads
without the network (``sklearn.datasets.fetch_*`` download). So:

* **digits** (real): the 8×8 digits, pixels ``/ 16`` as 64 features, split by the seed
  (stratified) into 600 members (a small training set, which the overfitted MLP memorises)
  and 1,197 non-members: every figure, TPR at 0.1 % FPR included (ART's attack scores on half
  the non-members, 598: its 0.1 % rate is not measurable);
* **synthetic** (at scale): ``make_classification`` (5,000 rows, 20
  features of which 10 informative, 10 classes, 10 % of labels flipped, ``class_sep`` 2),
  2,000 members and 3,000 non-members, all scored (ART's attack, which trains on half of
  each, 1,000 and 1,500). Not digits with shifted copies: the copies of one digit would fall on
  both sides of LiRA's shadow split and flatter LiRA.

**The models** (scikit-learn, so LiRA's shadows are clones of the target's recipe):
``overfitted``, an ``MLPClassifier((64, 32), alpha=0)`` (no L2 penalty, up to 1,000 epochs:
100 % training accuracy); ``regularised``, a ``LogisticRegression(C=0.01)``; and, beside the
targets, ``forest``, a fully grown ``RandomForestClassifier(100)``, whose probabilities are
multiples of 1/100 with exact 0s and 1s (a case for LiRA's logit scaling).

**The baseline, in the same run**, on exactly Bastion's draw (the same members and
non-members, the same halves for ART's attack, the same seeding of NumPy before it fits):

* ART's ``MembershipInferenceBlackBox`` (``input_type="prediction"``, ``attack_model_type=
  "rf"``) twice: given the model's probabilities (``pred=``, what Bastion hands it), and
  querying the model itself through ART's own ``SklearnClassifier`` (which feeds the estimator
  float32 rows and returns float32 probabilities: slightly different features for ART's
  forest, so figures that differ by noise only);
* the loss attack (Yeom et al.): the log-probability of the true label, from the model's
  ``predict_proba`` directly;

all scored here with scikit-learn's ``roc_curve`` / ``roc_auc_score``, not Bastion's code.

**Targets.**

1. On the overfitted model (synthetic), LiRA's TPR at 0.1 % FPR is at least 3× the loss
   attack's.
2. The regularised model is near chance: every attack's AUC ≤ 0.55 (both data sets).
3. overfitted > regularised on every measurable figure of every attack (both data sets).
4. Bastion's ``art_blackbox`` figures are ART's given the same probabilities, and its
   ``threshold`` figures the loss attack's by hand: identical.
5. The default privacy suite, the high preset's membership test as it ships (its attacks,
   samples, shadow models, epochs, seed and time limit) in a policy of its own, on digits
   (the benchmarks' 75/25 split: 1,347 members, 450 non-members) against the digits CNN
   (``bench/poisoning``'s ``Net``; its shadows trained by Bastion's loop) and the
   scikit-learn MLP, takes under 3 minutes each (the library call, in process).

torch runs on one thread (as ``bench/assess_suite.py``). Everything is seeded: the same seed
gives the same figures. Nothing here asserts a time; the last lines say met or not met, with
the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bastion.assess import Policy, assess
from bastion.assess.interface import MembershipResult
from bastion.models import as_predictor
from poisoning.attacks import load
from poisoning.models import train

ATTACKS = ("threshold", "confidence", "art_blackbox", "lira")
FIGURES = ("auc", "balanced_accuracy", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr")
SHORT = {"auc": "AUC", "balanced_accuracy": "bal.acc", "tpr_at_1pct_fpr": "TPR@1%",
         "tpr_at_0_1pct_fpr": "TPR@0.1%"}
TARGET_RATIO = 3.0
CHANCE_AUC = 0.55
TARGET_SECONDS = 180.0
SHADOWS = 16
"""LiRA's shadow models, as the high preset."""


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------ data and models


@dataclass
class Split:
    name: str
    x_in: np.ndarray
    y_in: np.ndarray
    x_out: np.ndarray
    y_out: np.ndarray
    note: str


def digits(seed: int) -> Split:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    x_in, x_out, y_in, y_out = train_test_split(x, bunch.target.astype(np.int64),
                                                train_size=600, stratify=bunch.target,
                                                random_state=seed)
    return Split("digits", x_in, y_in, x_out, y_out, "scikit-learn digits, 600 members")


def synthetic(seed: int, quick: bool) -> Split:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    rows, members = (2500, 1000) if quick else (5000, 2000)
    x, y = make_classification(rows, 20, n_informative=10, n_redundant=5, n_classes=10,
                               n_clusters_per_class=1, flip_y=0.1, class_sep=2.0,
                               random_state=seed)
    x_in, x_out, y_in, y_out = train_test_split(x.astype(np.float32), y.astype(np.int64),
                                                train_size=members, stratify=y,
                                                random_state=seed)
    return Split("synthetic", x_in, y_in, x_out, y_out,
                 f"make_classification, {rows} rows, 10 classes, 10 % labels flipped")


def models(seed: int) -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    return {"overfitted": MLPClassifier((64, 32), alpha=0.0, max_iter=1000, random_state=seed),
            "regularised": LogisticRegression(C=0.01, max_iter=1000),
            "forest": RandomForestClassifier(100, random_state=seed, n_jobs=1)}


# ------------------------------------------------------------------------ figures, by hand


def roc_figures(scores: np.ndarray, truth: np.ndarray) -> dict[str, float | None]:
    """AUC, best balanced accuracy, TPR at 1 % and 0.1 % FPR (only with ≥ 100 and ≥ 1,000
    non-members: α × non-members ≥ 1), with scikit-learn's ROC."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(truth, scores, drop_intermediate=False)
    n_out = int((~truth).sum())

    def at(alpha: float) -> float | None:
        return float(tpr[fpr <= alpha].max()) if n_out * alpha >= 1 else None

    return {"auc": float(roc_auc_score(truth, scores)),
            "balanced_accuracy": float(np.max((tpr + 1 - fpr) / 2)),
            "tpr_at_1pct_fpr": at(0.01), "tpr_at_0_1pct_fpr": at(0.001)}


def bastion_draw(split: Split, samples: int, seed: int,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The members and non-members Bastion scores (``membership.run_membership``, step 1), as
    the model receives them there: float32 data (``assess`` reads it so), handed to the
    estimator as float64 (a scikit-learn predictor's input dtype). An MLP fitted on float32
    rows computes in float32 when given float32, and its probabilities then saturate at 1.0
    sooner: ties that blunt the loss attack at low FPR."""
    rng = np.random.default_rng(seed)
    pick_in = np.sort(rng.permutation(len(split.y_in))[:samples])
    pick_out = np.sort(rng.permutation(len(split.y_out))[:samples])
    as_given = [split.x_in[pick_in], split.x_out[pick_out]]
    x_in, x_out = (np.asarray(x, np.float32).astype(np.float64) for x in as_given)
    return x_in, split.y_in[pick_in], x_out, split.y_out[pick_out]


def art_by_hand(model: Any, x_in: np.ndarray, y_in: np.ndarray, x_out: np.ndarray,
                y_out: np.ndarray, seed: int, *, wrapper: bool,
                ) -> tuple[dict[str, float | None], float]:
    """ART's ``MembershipInferenceBlackBox`` (a random forest on the probabilities and the
    label), trained on the halves Bastion trains on (its ``default_rng([seed, 1])`` shuffle),
    NumPy seeded as Bastion seeds it, and scored on the other halves.

    ``wrapper``: ART queries the model itself through its own ``SklearnClassifier`` (which
    hands the estimator float32 rows and returns float32 probabilities); otherwise ART is
    given the model's probabilities (``pred=``, ``predict_proba`` on the rows as Bastion
    passes them), as Bastion gives them: the same features, so the same figures expected."""
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
    from art.estimators.classification import BlackBoxClassifier, SklearnClassifier

    start = time.perf_counter()
    rng = np.random.default_rng([seed, 1])
    halves = []
    for y in (y_in, y_out):
        order = rng.permutation(len(y))
        halves.append((order[:len(y) // 2], order[len(y) // 2:]))
    (fit_in, score_in), (fit_out, score_out) = halves
    if wrapper:
        estimator: Any = SklearnClassifier(model)
        given: dict[str, Any] = {}
    else:
        estimator = BlackBoxClassifier(lambda v: model.predict_proba(v).astype(np.float32),
                                       input_shape=x_in.shape[1:],
                                       nb_classes=len(model.classes_))
        p_in, p_out = model.predict_proba(x_in), model.predict_proba(x_out)
        given = {"pred": p_in[fit_in], "test_pred": p_out[fit_out]}
    attack = MembershipInferenceBlackBox(estimator, input_type="prediction",
                                         attack_model_type="rf")
    seed_all(seed)
    attack.fit(x=x_in[fit_in], y=y_in[fit_in], test_x=x_out[fit_out], test_y=y_out[fit_out],
               **given)
    scores = []
    for x, y, rows, p in ((x_in, y_in, score_in, None if wrapper else p_in),
                          (x_out, y_out, score_out, None if wrapper else p_out)):
        extra = {} if p is None else {"pred": p[rows]}
        scores.append(attack.infer(x[rows], y[rows], probabilities=True, **extra).ravel())
    truth = np.r_[np.ones(len(score_in), bool), np.zeros(len(score_out), bool)]
    return roc_figures(np.r_[scores[0], scores[1]], truth), time.perf_counter() - start


def loss_by_hand(model: Any, x_in: np.ndarray, y_in: np.ndarray, x_out: np.ndarray,
                 y_out: np.ndarray) -> tuple[dict[str, float | None], float]:
    """The loss attack: log p(true label), from the model's own ``predict_proba``."""
    start = time.perf_counter()
    x, y = np.r_[x_in, x_out], np.r_[y_in, y_out]
    p = model.predict_proba(x)[np.arange(len(y)), np.searchsorted(model.classes_, y)]
    scores = np.log(np.maximum(p, np.finfo(np.float64).tiny))
    truth = np.r_[np.ones(len(y_in), bool), np.zeros(len(y_out), bool)]
    return roc_figures(scores, truth), time.perf_counter() - start


# ------------------------------------------------------------------------ Bastion


def membership_policy(samples: int, shadows: int, seed: int) -> Policy:
    return Policy.from_mapping({"version": 1, "seed": seed, "max_seconds": 900, "tests": {
        "membership": {"attacks": list(ATTACKS), "samples": samples,
                       "shadow_models": shadows}}}, source="assess_privacy")


def figures_of(result: MembershipResult) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for f in result.attacks:
        if hasattr(f, "auc"):
            out[f.attack.value] = {k: getattr(f, k) for k in FIGURES} | {
                "seconds": f.seconds, "non_members": f.non_members}
        else:
            out[f.attack.value] = {"skipped": f.reason}
    return out


@dataclass
class Run:
    split: str
    model: str
    train_accuracy: float
    test_accuracy: float
    members: int
    non_members: int
    seconds: float
    bastion: dict[str, dict[str, Any]]
    art: dict[str, Any]
    """ART's attack given the model's probabilities (Bastion's inputs to it)."""
    art_wrapper: dict[str, Any]
    """ART's attack querying the model through ART's own ``SklearnClassifier``."""
    loss: dict[str, Any]


def run_one(split: Split, name: str, model: Any, samples: int, shadows: int,
            seed: int) -> Run:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: "trained long" is the point
        model.fit(split.x_in, split.y_in)
    policy = membership_policy(samples, shadows, seed)
    start = time.perf_counter()
    done = assess(as_predictor(model), split.x_out, split.y_out, policy,
                  members=(split.x_in, split.y_in), non_members=(split.x_out, split.y_out))
    seconds = time.perf_counter() - start
    result = done.results[0]
    if not isinstance(result, MembershipResult):
        sys.exit(f"{split.name}/{name}: the membership test did not run: {result}")
    drawn = bastion_draw(split, samples, seed)
    art, art_s = art_by_hand(model, *drawn, seed, wrapper=False)
    own, own_s = art_by_hand(model, *drawn, seed, wrapper=True)
    loss, loss_s = loss_by_hand(model, *drawn)
    return Run(split.name, name, float(model.score(split.x_in, split.y_in)),
               float(model.score(split.x_out, split.y_out)), result.members,
               result.non_members, seconds, figures_of(result),
               art | {"seconds": art_s}, own | {"seconds": own_s}, loss | {"seconds": loss_s})


def default_suite(seed: int) -> list[dict[str, Any]]:
    """The high preset's membership test, as it ships, alone in a policy, on the benchmarks'
    digits split: the CNN and the scikit-learn MLP."""
    body = Policy.preset("high").body
    policy = Policy.from_mapping({"version": 1, "seed": body.get("seed", 0),
                                  "max_seconds": body["max_seconds"],
                                  "tests": {"membership": body["tests"]["membership"]}},
                                 source="preset:high, membership only")
    x_tr, x_te, y_tr, y_te = load("digits", seed)
    out = []
    for name, kind in (("digits CNN", "cnn"), ("sklearn MLP", "sklearn-mlp")):
        model = train(kind, x_tr, y_tr, seed, 10)
        a, b = (x_tr, x_te) if kind == "cnn" else (x_tr.reshape(len(x_tr), -1),
                                                    x_te.reshape(len(x_te), -1))
        start = time.perf_counter()
        done = assess(as_predictor(model), b, y_te, policy, members=(a, y_tr))
        seconds = time.perf_counter() - start
        result = done.results[0]
        if not isinstance(result, MembershipResult):
            sys.exit(f"{name}: the membership test did not run: {result}")
        out.append({"model": name, "seconds": seconds, "complete": result.complete,
                    "members": result.members, "non_members": result.non_members,
                    "spec": body["tests"]["membership"], "max_seconds": body["max_seconds"],
                    "attacks": figures_of(result)})
    return out


# ------------------------------------------------------------------------ report


def fmt(v: float | None) -> str:
    return "    -" if v is None else f"{v:5.3f}"


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all((a[k] is None and b[k] is None) or (a[k] is not None and b[k] is not None
                                                   and math.isclose(a[k], b[k], abs_tol=1e-9))
               for k in FIGURES)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return math.inf if b == 0 and a > 0 else (a / b if b else None)


def times(v: float | None) -> str:
    if v is None:
        return "not measurable"
    return "∞ (the loss attack found none)" if math.isinf(v) else f"{v:.1f}×"


def print_runs(runs: list[Run]) -> None:
    print(f"\n{'data':9} {'model':11} {'train/test':>10}  {'attack':22} "
          + " ".join(f"{SHORT[k]:>8}" for k in FIGURES) + f" {'s':>6}")
    for r in runs:
        head = f"{r.split:9} {r.model:11} {r.train_accuracy:.2f}/{r.test_accuracy:.2f}"
        rows: list[tuple[str, dict[str, Any]]] = [(a, r.bastion[a]) for a in ATTACKS]
        rows += [("ART, model's probs", r.art), ("ART, SklearnClassifier", r.art_wrapper),
                 ("loss by hand", r.loss)]
        for label, f in rows:
            if "skipped" in f:
                print(f"{head:32}  {label:22} not run: {f['skipped']}")
            else:
                print(f"{head:32}  {label:22} " + " ".join(f"{fmt(f[k]):>8}" for k in FIGURES)
                      + f" {f['seconds']:6.1f}")
            head = ""
        print(f"{'':32}  ({r.members} members, {r.non_members} non-members drawn; "
              f"assess {r.seconds:.1f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="4 shadow models, 2,500 synthetic rows (1,000 members)")
    parser.add_argument("--seed", type=int, default=0, help="data split, models, attacks")
    parser.add_argument("--json", metavar="OUT", type=Path, help="write the figures here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    began = time.perf_counter()
    shadows = 4 if args.quick else SHADOWS
    splits = [digits(args.seed), synthetic(args.seed, args.quick)]
    print(f"membership inference, seed {args.seed}, {shadows} shadow models, "
          f"{os.cpu_count()} CPUs, torch threads 1"
          + (" (quick)" if args.quick else ""))
    for s in splits:
        print(f"  {s.name}: {s.note}: {len(s.y_in)} members, {len(s.y_out)} non-members")
    runs = []
    for split in splits:
        samples = max(len(split.y_in), len(split.y_out))
        for name, model in models(args.seed).items():
            runs.append(run_one(split, name, model, samples, shadows, args.seed))
    print_runs(runs)

    by = {(r.split, r.model): r for r in runs}
    # 1. LiRA / loss at 0.1 % FPR on the overfitted model, where measurable
    ratios = {}
    for s in splits:
        r = by[s.name, "overfitted"]
        for k in ("tpr_at_0_1pct_fpr", "tpr_at_1pct_fpr"):
            ratios[s.name, k] = ratio(r.bastion["lira"].get(k), r.bastion["threshold"].get(k))
    print("\nLiRA / loss attack (Bastion's lira over threshold), overfitted model: "
          + "; ".join(f"{d} {SHORT[k]} {times(v)}" for (d, k), v in ratios.items()))
    forest = by["synthetic", "forest"].bastion
    print(f"forest (synthetic, exact 0/1 probabilities): LiRA TPR@0.1% "
          f"{fmt(forest['lira'].get('tpr_at_0_1pct_fpr'))} vs loss "
          f"{fmt(forest['threshold'].get('tpr_at_0_1pct_fpr'))}; TPR@1% "
          f"{fmt(forest['lira'].get('tpr_at_1pct_fpr'))} vs "
          f"{fmt(forest['threshold'].get('tpr_at_1pct_fpr'))}")
    main_ratio = ratios["synthetic", "tpr_at_0_1pct_fpr"]
    lira01 = by["synthetic", "overfitted"].bastion["lira"].get("tpr_at_0_1pct_fpr")
    met1 = main_ratio is not None and main_ratio >= TARGET_RATIO and bool(lira01)

    # 2. the regularised model near chance
    worst = {s.name: max(by[s.name, "regularised"].bastion[a]["auc"] for a in ATTACKS
                         if "auc" in by[s.name, "regularised"].bastion[a]) for s in splits}
    met2 = all(v <= CHANCE_AUC for v in worst.values())

    # 3. overfitted > regularised, every attack and measurable figure
    order_fail, order_n = [], 0
    for s in splits:
        hi, lo = by[s.name, "overfitted"].bastion, by[s.name, "regularised"].bastion
        for a in ATTACKS:
            for k in FIGURES:
                if hi[a].get(k) is None or lo[a].get(k) is None:
                    continue
                order_n += 1
                if not hi[a][k] > lo[a][k]:
                    order_fail.append(f"{s.name} {a} {SHORT[k]} {hi[a][k]:.4f} ≤ {lo[a][k]:.4f}")
    met3 = not order_fail

    # 4. Bastion's figures against ART's and the loss attack's, by hand
    mismatch = [f"{r.split}/{r.model} {a}" for r in runs for a, hand in
                (("art_blackbox", r.art), ("threshold", r.loss))
                if "skipped" in r.bastion[a] or not same(r.bastion[a], hand)]
    met4 = not mismatch

    # 5. the default privacy suite on digits
    suite = default_suite(args.seed)
    print(f"\ndefault privacy suite (high preset's membership test: "
          f"{suite[0]['spec']}, max_seconds {suite[0]['max_seconds']}), digits, in process:")
    for t in suite:
        figs = "; ".join(f"{a} AUC {f['auc']:.3f} TPR@1% {fmt(f['tpr_at_1pct_fpr'])}"
                         if "auc" in f else f"{a} not run" for a, f in t["attacks"].items())
        print(f"  {t['model']:12} {t['seconds']:6.1f} s ({t['members']} members, "
              f"{t['non_members']} non-members drawn, "
              f"{'complete' if t['complete'] else 'INCOMPLETE'}): {figs}")
    slowest = max(t["seconds"] for t in suite)
    met5 = slowest < TARGET_SECONDS and all(t["complete"] for t in suite)

    over = by["synthetic", "overfitted"]
    print(f"\ntarget 1 (LiRA TPR@0.1% ≥ {TARGET_RATIO:.0f}× the loss attack's, overfitted, "
          f"synthetic): {'met' if met1 else 'NOT MET'}: LiRA {fmt(lira01)} vs loss "
          f"{fmt(over.bastion['threshold'].get('tpr_at_0_1pct_fpr'))} ({times(main_ratio)}; "
          f"{over.non_members} non-members: 0.1 % is {over.non_members // 1000} false "
          "positive(s))")
    print(f"target 2 (regularised near chance: every attack's AUC ≤ {CHANCE_AUC}): "
          f"{'met' if met2 else 'NOT MET'}: largest AUC "
          + ", ".join(f"{d} {v:.3f}" for d, v in worst.items()))
    print(f"target 3 (overfitted > regularised, every measurable figure): "
          f"{'met' if met3 else 'NOT MET'}: {order_n - len(order_fail)}/{order_n} hold"
          + (f"; not: {'; '.join(order_fail)}" if order_fail else ""))
    drift = max(abs(r.bastion["art_blackbox"]["auc"] - r.art_wrapper["auc"]) for r in runs
                if "auc" in r.bastion["art_blackbox"])
    print(f"target 4 (Bastion's art_blackbox = ART given the same probabilities, threshold = "
          f"loss by hand; ART through its own wrapper differs in AUC by ≤ {drift:.3f}): "
          f"{'met' if met4 else 'NOT MET'}: "
          + (f"identical in all {2 * len(runs)}" if met4 else f"differ: {', '.join(mismatch)}"))
    print(f"target 5 (default privacy suite on digits < {TARGET_SECONDS:.0f} s): "
          f"{'met' if met5 else 'NOT MET'}: "
          + ", ".join(f"{t['model']} {t['seconds']:.1f} s" for t in suite))
    total = time.perf_counter() - began
    print(f"wall time {total:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({
            "seed": args.seed, "quick": args.quick, "shadow_models": shadows,
            "cpus": os.cpu_count(), "runs": [asdict(r) for r in runs],
            "ratios": {f"{d}/{k}": v for (d, k), v in ratios.items()},
            "suite": suite, "wall_seconds": total,
            "met": {"lira_vs_loss": met1, "regularised_chance": met2, "ordering": met3,
                    "baselines": met4, "suite_time": met5},
            "ordering_failures": order_fail, "mismatches": mismatch}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
