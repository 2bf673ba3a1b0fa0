"""Black-box evasion tests: HopSkipJump and Square, through ART, on ``predict_proba`` alone.

Each sample is attacked on its own, seeded by its position, through a
:class:`~bastion.assess._art.QueryBudget`, so the queries it took are known exactly and no
sample can spend more than the policy allows. HopSkipJump searches for the smallest
perturbation that changes the label (decision-based; Chen et al., 2020); a sample counts as
robust at ε when the smallest one found is larger. Square searches within each ε with random
square patches (score-based; Andriushchenko et al., 2020). Only samples the model first
classifies correctly are attacked; the others count as already wrong.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from bastion.assess import _art
from bastion.assess._target import Target, point
from bastion.assess.interface import Attack, CurvePoint, EvasionResult, Examples, Progress
from bastion.assess.policy import AttackSpec

__all__ = ["run"]

Clock = Callable[[], float]


def _onehot(label: int, n: int) -> npt.NDArray[np.float32]:
    row = np.zeros((1, n), dtype=np.float32)
    row[0, label] = 1.0
    return row


def _medians(sizes: npt.NDArray[np.float64], queries: list[int],
             clean: npt.NDArray[np.bool_]) -> dict[str, float | None]:
    """Median perturbation and success rate over the samples first classified correctly;
    median queries over those attacked."""
    found = sizes[clean]
    if not len(found):
        return {"median_perturbation": None, "median_queries": None, "success_rate": None}
    median = float(np.median(found))
    spent = [q for q, ok in zip(queries, clean, strict=True) if ok]
    return {"median_perturbation": median if math.isfinite(median) else None,
            "median_queries": float(np.median(spent)),
            "success_rate": float(np.isfinite(found).mean())}


def _start(budget: _art.QueryBudget, x: npt.NDArray[np.float32], label: int,
           target: Target, seed: int, tries: int = 100) -> npt.NDArray[np.float32] | None:
    """A misclassified uniform random input to start HopSkipJump from, drawn from ``seed``
    (ART draws its own from an unseeded generator, which would make runs differ)."""
    rng = np.random.default_rng(seed)
    for _ in range(tries):
        candidate = rng.uniform(*target.clip, size=x.shape).astype(np.float32)
        if int(budget(candidate[None]).argmax(axis=1)[0]) != label:
            return candidate
    return None


def _hopskipjump(spec: AttackSpec, target: Target, progress: Progress | None,
                 clock: Clock) -> EvasionResult:
    """Steps: 1. per sample, while time is left: seed, draw a misclassified starting point,
    attack under its budget, keep the closest misclassified input any query saw; 2. robust
    at ε: correct, and nothing found within ε."""
    from art.attacks.evasion import HopSkipJump

    start = clock()
    n = min(spec.samples or len(target.y), len(target.y))
    x, y = target.x[:n], target.y[:n]
    clean = target.correct(x)
    sizes: list[float] = []
    queries: list[int] = []
    adversarial: list[npt.NDArray[Any]] = []
    for i in range(n):  # 1
        if sizes and clock() - start > spec.max_seconds:
            break
        budget = _art.QueryBudget(target.predictor, x[i], int(y[i]), spec.max_queries,
                                  spec.norm)
        if clean[i]:
            _art.seed_all(target.seed + i)
            attack = HopSkipJump(_art.black_box(budget, x.shape[1:], target.n_classes,
                                                target.clip),
                                 targeted=False, norm=_art.art_norm(spec.norm), max_iter=100,
                                 max_eval=100, init_eval=10, init_size=100, batch_size=64,
                                 verbose=False)
            with contextlib.suppress(_art.BudgetSpent):
                start_at = _start(budget, x[i], int(y[i]), target, target.seed + i)
                if start_at is not None:
                    attack.generate(x[i:i + 1], y=_onehot(int(y[i]), target.n_classes),
                                    x_adv_init=start_at[None])
        sizes.append(budget.best_norm if clean[i] else 0.0)
        queries.append(budget.queries)
        adversarial.append(budget.best if budget.best is not None else x[i])
        if progress is not None:
            progress.advance(spec.attack.value)
    done = len(sizes)
    found = np.asarray(sizes)
    curve = []
    for eps in spec.eps:  # 2
        robust = clean[:done] & (found > eps)
        curve.append(point(target, eps, robust, robust))
    fooled = np.isfinite(found) & clean[:done]
    examples = Examples(x=x[:done], y=y[:done], x_adv=np.asarray(adversarial, np.float32),
                        eps=np.where(np.isfinite(found), found, 0.0), fooled=fooled)
    return EvasionResult(
        attack=spec.attack, norm=spec.norm, samples=done,
        clean_accuracy=float(clean[:done].mean()), curve=tuple(curve), planned_eps=spec.eps,
        complete=done == n, seconds=clock() - start,
        parameters={"max_queries": spec.max_queries, "clip": list(target.clip)},
        examples=examples if target.keep_examples else None,
        **_medians(found, queries, clean[:done]))


def _square(spec: AttackSpec, target: Target, progress: Progress | None,
            clock: Clock) -> EvasionResult:
    """Steps: 1. the inputs as images (Square attacks nothing else); 2. for each ε while time
    is left, each sample still robust: seed, attack under its budget; 3. robust at ε: no ε up
    to it fooled the sample."""
    from art.attacks.evasion import SquareAttack

    start = clock()
    n = min(spec.samples or len(target.y), len(target.y))
    x, y = target.x[:n], target.y[:n]
    clean = target.correct(x)
    images, back = _art.as_image(x, target.clip[0])  # 1
    robust = clean.copy()
    smallest = np.where(clean, math.inf, 0.0)
    spent = [0] * n
    curve: list[CurvePoint] = []
    kept: list[tuple[float, npt.NDArray[Any], npt.NDArray[np.bool_]]] = []
    for eps in spec.eps:  # 2
        if curve and clock() - start > spec.max_seconds:
            break
        adv, this = x.copy(), clean.copy()
        counts = []
        for i in np.flatnonzero(robust):
            budget = _art.QueryBudget(target.predictor, x[i], int(y[i]), spec.max_queries,
                                      spec.norm, unview=back)
            if eps > 0:
                _art.seed_all(target.seed + int(i))
                attack = SquareAttack(_art.black_box(budget, images.shape[1:],
                                                     target.n_classes, target.clip,
                                                     neural=True),
                                      norm=_art.art_norm(spec.norm), eps=eps,
                                      max_iter=spec.max_queries, p_init=0.3, batch_size=1,
                                      verbose=False)
                with contextlib.suppress(_art.BudgetSpent):
                    attack.generate(images[i:i + 1], y=_onehot(int(y[i]), target.n_classes))
            if budget.best is not None:
                adv[i], this[i] = budget.best, False
                smallest[i] = min(smallest[i], eps)
            counts.append(budget.queries)
            spent[i] += budget.queries
        robust &= this  # 3
        median = float(np.median(counts)) if counts else None
        curve.append(point(target, eps, this, robust.copy(), median))
        if eps > 0:
            kept.append((eps, adv, ~this & clean))
        if progress is not None:
            progress.advance(spec.attack.value)
    examples = Examples(x=np.concatenate([x for _ in kept]), y=np.concatenate([y for _ in kept]),
                        x_adv=np.concatenate([a for _, a, _ in kept]).astype(np.float32),
                        eps=np.concatenate([np.full(n, e) for e, _, _ in kept]),
                        fooled=np.concatenate([f for _, _, f in kept])) if kept else None
    return EvasionResult(
        attack=spec.attack, norm=spec.norm, samples=n, clean_accuracy=float(clean.mean()),
        curve=tuple(curve), planned_eps=spec.eps, complete=len(curve) == len(spec.eps),
        seconds=clock() - start,
        parameters={"max_queries": spec.max_queries, "p_init": 0.3, "clip": list(target.clip)},
        examples=examples if target.keep_examples else None,
        **_medians(smallest, spent, clean))


def run(spec: AttackSpec, target: Target, progress: Progress | None,
        clock: Clock) -> EvasionResult:
    """Run a black-box test."""
    if spec.attack is Attack.HOPSKIPJUMP:
        return _hopskipjump(spec, target, progress, clock)
    return _square(spec, target, progress, clock)
