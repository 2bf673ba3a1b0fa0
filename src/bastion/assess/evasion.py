"""Evasion tests: accuracy under attack as ε grows, overall and per class (NCSC 2.1).

    >>> from bastion.assess.evasion import run_test                # doctest: +SKIP
    >>> target = Target(predictor, x, y, classes=("0", "1"), clip=(0.0, 1.0), seed=0)
    >>> result = run_test(policy.test(Attack.PGD_LINF), target)
    >>> [(p.eps, p.robust_accuracy) for p in result.curve]
    [(0.0, 0.94), (0.05, 0.81), (0.1, 0.53)]

White-box attacks (FGSM, PGD in L∞ and L2, AutoPGD) run through IBM ART on the PyTorch network
behind a :class:`~bastion.models.TorchPredictor`; black-box ones (HopSkipJump, Square) need only
``predict_proba`` (:mod:`bastion.assess._blackbox`). Each test is seeded from the policy's
seed before every ε, so one ε's figures do not depend on which ran before it, and the same
seed, model and data give the same figures. A test that runs past its ``max_seconds`` stops
between ε values and says it is incomplete; a test that cannot run is a
:class:`~bastion.assess.interface.SkippedTest`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from bastion.assess import _art, _blackbox
from bastion.assess._target import Target, point
from bastion.assess.interface import (
    Attack,
    CurvePoint,
    EvasionResult,
    Examples,
    Progress,
    SkippedTest,
)
from bastion.assess.policy import AttackSpec
from bastion.models.interface import ModelError

__all__ = ["Target", "run_test"]

Clock = Callable[[], float]


def _attack(spec: AttackSpec, classifier: Any, eps: float, batch: int) -> Any:
    """The ART attack for one ε."""
    from art.attacks.evasion import (
        AutoProjectedGradientDescent,
        FastGradientMethod,
        ProjectedGradientDescent,
    )

    norm = _art.art_norm(spec.norm)
    if spec.attack is Attack.FGSM:
        return FastGradientMethod(classifier, norm=norm, eps=eps, eps_step=eps,
                                  batch_size=batch)
    if spec.attack is Attack.AUTOPGD:
        return AutoProjectedGradientDescent(classifier, norm=norm, eps=eps, eps_step=2 * eps,
                                            max_iter=spec.steps, nb_random_init=1,
                                            batch_size=batch, loss_type="cross_entropy",
                                            verbose=False)
    return ProjectedGradientDescent(classifier, norm=norm, eps=eps,
                                    eps_step=eps * spec.step_size, max_iter=spec.steps,
                                    num_random_init=1 if spec.random_init else 0,
                                    batch_size=batch, verbose=False)


def _white_box(spec: AttackSpec, target: Target, progress: Progress | None,
               clock: Clock) -> EvasionResult:
    """Steps: 1. wrap the network for ART; 2. for each ε, ascending, while time is left:
    seed, attack, score; 3. the curve, cumulative (a sample is robust at ε only if no attack
    at ε or below fooled it)."""
    start = clock()
    clean = target.correct(target.x)
    robust = clean.copy()
    curve: list[CurvePoint] = []
    kept: list[tuple[float, npt.NDArray[np.float32], npt.NDArray[np.bool_]]] = []
    with _art.white_box(target.predictor, target.x, target.n_classes, target.clip) as clf:  # 1
        for eps in spec.eps:  # 2
            if curve and clock() - start > spec.max_seconds:
                break
            if eps == 0:
                x_adv, correct = target.x, clean
            else:
                _art.seed_all(target.seed)
                x_adv = _attack(spec, clf, eps, batch=128).generate(
                    target.x, y=target.y).astype(np.float32)
                correct = target.correct(x_adv)
                if target.keep_examples:
                    kept.append((eps, x_adv, ~correct))
            robust &= correct  # 3
            curve.append(point(target, eps, correct, robust))
            if progress is not None:
                progress.advance(spec.attack.value)
    parameters = {"steps": spec.steps, "step_size": spec.step_size,
                  "random_init": spec.random_init} if spec.attack is not Attack.FGSM else {}
    return EvasionResult(
        attack=spec.attack, norm=spec.norm, samples=len(target.y),
        clean_accuracy=float(clean.mean()), curve=tuple(curve), planned_eps=spec.eps,
        complete=len(curve) == len(spec.eps), seconds=clock() - start,
        parameters={**parameters, "clip": list(target.clip)},
        examples=_examples(target, kept) if kept else None)


def _examples(target: Target, kept: Sequence[tuple[float, npt.NDArray[np.float32],
                                                   npt.NDArray[np.bool_]]]) -> Examples:
    """Every ε's perturbed inputs, stacked, each beside its clean input."""
    return Examples(x=np.concatenate([target.x for _ in kept]),
                    y=np.concatenate([target.y for _ in kept]),
                    x_adv=np.concatenate([a for _, a, _ in kept]),
                    eps=np.concatenate([np.full(len(a), e) for e, a, _ in kept]),
                    fooled=np.concatenate([f for _, _, f in kept]))


def run_test(spec: AttackSpec, target: Target, *, progress: Progress | None = None,
             clock: Clock = time.monotonic) -> EvasionResult | SkippedTest:
    """Run one test of the policy against ``target``.

    Returns:
        The result (``complete=False`` when its time ran out), or a :class:`SkippedTest`
        saying why the test could not run (no gradients for a white-box attack).
    """
    _art.require_art()
    total = (len(spec.eps) if spec.attack.white_box or spec.attack is Attack.SQUARE
             else min(spec.samples or len(target.y), len(target.y)))
    if progress is not None:
        progress.start(spec.attack.value, total)
    try:
        if spec.attack.white_box:
            return _white_box(spec, target, progress, clock)
        return _blackbox.run(spec, target, progress, clock)
    except ModelError as exc:  # the model cannot do what the test needs: say so, fail it
        return SkippedTest(attack=spec.attack, reason=exc.message,
                           remedy=exc.hint or "assess a model that supports this test")
    finally:
        if progress is not None:
            progress.stop(spec.attack.value)
