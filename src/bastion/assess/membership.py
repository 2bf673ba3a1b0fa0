"""Membership inference: can an attacker tell the model's training rows from others? (NCSC 1.3,
5.1; MITRE ATLAS "Infer Training Data Membership").

    >>> from bastion.assess.membership import run_membership     # doctest: +SKIP
    >>> result = run_membership(policy.membership, predictor, members, non_members, seed=0)
    >>> [(f.attack.value, round(f.auc, 2), f.tpr_at_1pct_fpr) for f in result.figures()]
    [('threshold', 0.81, 0.12), ('confidence', 0.74, 0.05), ('lira', 0.86, 0.31)]

The attacks score every sampled member and non-member; the higher the score, the surer the
attacker is that the row was trained on:

* ``threshold`` — the log-probability of the true label (minus the loss; Yeom et al. 2018).
* ``confidence`` — the highest class probability (needs no label).
* ``art_blackbox`` — ART's ``MembershipInferenceBlackBox`` (a random forest on the model's
  probabilities and the label; Shokri et al. 2017), trained on half the members and half the
  non-members and scored on the other halves.
* ``lira`` — the offline Likelihood Ratio Attack (Carlini et al. 2022, "Membership Inference
  Attacks From First Principles"): shadow models of the target's recipe are trained on random
  halves of the non-members (never on a member); each example's logit-scaled confidence on its
  true label, ``log(p / (1 - p))``, is compared with a Gaussian fitted to what the shadows
  that did not train on it gave it, in a one-sided test (higher than the "out" models expect:
  a member). Under 64 shadows the variance is pooled over examples, as the paper advises.

The figures come from each attack's ROC curve: AUC, balanced accuracy at the best threshold,
and the true-positive rate at 0.1 % and 1 % false positives: the literature's figure, because
an attack that is sure of a few members leaks them whatever its average. A rate at FPR α needs
at least 1/α non-members; with fewer it is ``None`` (not measurable), never a guess.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bastion.assess import _art
from bastion.assess._shadow import shadow_trainer
from bastion.assess.interface import (
    MembershipAttack,
    MembershipFigures,
    MembershipResult,
    MembershipSkipped,
    Progress,
)
from bastion.assess.policy import MembershipSpec
from bastion.models import Predictor
from bastion.models.interface import ModelError

__all__ = ["figures", "lira_scores", "run_membership"]

Array = npt.NDArray[Any]
Clock = Callable[[], float]
Labelled = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]

_GLOBAL_VARIANCE_BELOW: Final = 64
"""Carlini et al. (section 4.2): with fewer shadow models a variance shared by every example
estimates better than each example's own."""
_ROC_POINTS: Final = 60
_TINY: Final = float(np.finfo(np.float64).tiny)
_LOGIT_FLOOR: Final = 1e-3
"""LiRA's confidences are clipped to ``[0.001, 0.999]`` before the logit: the exact 0s and 1s
of a tree ensemble (and of a saturated network) would give ±708, which swamp the shadows'
mean and pooled variance for every example (a forest's TPR at 1 % FPR fell to a quarter of
what the clipped score finds, bench/assess_privacy.py); the clip bounds the score at ±6.9."""


def figures(attack: MembershipAttack, scores: npt.ArrayLike, is_member: npt.ArrayLike,
            seconds: float = 0.0, parameters: dict[str, Any] | None = None,
            ) -> MembershipFigures:
    """An attack's figures from its scores (higher: more surely a member).

    Steps: 1. the ROC over every threshold (ties kept together); 2. AUC and the best
    balanced accuracy; 3. the TPR at 0.1 % and 1 % FPR, only with at least 1,000 and 100
    non-members; 4. the curve thinned to log-spaced FPRs for the report.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    s = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(is_member, dtype=bool)
    s = np.nan_to_num(s, nan=-np.inf)  # an unscorable row is never called a member
    n_in, n_out = int(truth.sum()), int((~truth).sum())
    fpr, tpr, _ = roc_curve(truth, s, drop_intermediate=False)  # 1
    auc = float(roc_auc_score(truth, s))  # 2
    balanced = float(0.5 + np.max(tpr - fpr) / 2)

    def tpr_at(alpha: float) -> float:
        return float(tpr[fpr <= alpha + 1e-12].max(initial=0.0))

    grid = np.unique(np.concatenate([np.geomspace(1.0 / n_out, 1.0, _ROC_POINTS), [1.0]]))
    roc = tuple((float(f), tpr_at(float(f))) for f in grid)  # 4
    return MembershipFigures(
        attack=attack, members=n_in, non_members=n_out, auc=auc, balanced_accuracy=balanced,
        tpr_at_0_1pct_fpr=tpr_at(0.001) if n_out >= 1000 else None,  # 3
        tpr_at_1pct_fpr=tpr_at(0.01) if n_out >= 100 else None, roc=roc, seconds=seconds,
        parameters=parameters or {})


def logit_confidence(probabilities: Array, y: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """``log(p_y / (1 − p_y))`` per row, with ``1 − p_y`` summed from the other classes (more
    digits than subtracting from 1 for a confident model), each side floored at 0.001."""
    p = np.asarray(probabilities, dtype=np.float64)
    rows = np.arange(len(y))
    on = p[rows, y]
    rest = p.sum(axis=1) - on
    return np.asarray(np.log(np.maximum(on, _LOGIT_FLOOR))
                      - np.log(np.maximum(rest, _LOGIT_FLOOR)),
                      dtype=np.float64)


def lira_scores(target: npt.NDArray[np.float64], shadows: npt.NDArray[np.float64],
                out: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Offline LiRA's score per example: ``−log P(φ_out ≥ φ)`` under a Gaussian of the
    example's out-scores (the one-sided test: large when the target is surer of it than
    shadows that never saw it).

    Args:
        target: the target model's logit-scaled confidence per example, ``(n,)``.
        shadows: each shadow's, ``(k, n)``.
        out: which shadow did not train on which example, ``(k, n)``; every example needs one.
    """
    from scipy.stats import norm

    counts = out.sum(axis=0)
    mean = np.where(out, shadows, 0.0).sum(axis=0) / counts
    deviation = np.where(out, shadows - mean, 0.0)
    if len(shadows) < _GLOBAL_VARIANCE_BELOW:
        std = np.full(len(target), math.sqrt(float((deviation ** 2).sum()) / max(
            int(counts.sum()) - 1, 1)))
    else:
        std = np.sqrt((deviation ** 2).sum(axis=0) / np.maximum(counts - 1, 1))
    std = np.maximum(std, 1e-6)
    return np.asarray(-norm.logsf(target, loc=mean, scale=std), dtype=np.float64)


def run_membership(spec: MembershipSpec, predictor: Predictor, members: Labelled,
                   non_members: Labelled, *, n_classes: int, seed: int,
                   progress: Progress | None = None, clock: Clock = time.monotonic,
                   shadow: Any = None) -> MembershipResult:
    """Run the policy's membership attacks against ``predictor``.

    Steps: 1. at most ``spec.samples`` members and as many non-members, each side drawn by
    the seed on its own (the figures are ROC-based, so the sides need not be equal: a small
    training set still meets enough non-members for a rate at 0.1 % FPR); 2. the model's
    probabilities for them; 3. each attack in turn while time is left (LiRA also checks
    between shadow models); an attack that cannot run is a :class:`MembershipSkipped`.

    Args:
        members, non_members: inputs as the model takes them and class indices.
        shadow: LiRA's template when the target cannot be cloned (an unfitted scikit-learn
            estimator or a ``torch.nn.Module``).
    """
    start = clock()
    rng = np.random.default_rng(seed)
    n_in = min(spec.samples, len(members[1]))  # 1
    n_out = min(spec.samples, len(non_members[1]))
    pick_in = np.sort(rng.permutation(len(members[1]))[:n_in])
    pick_out = np.sort(rng.permutation(len(non_members[1]))[:n_out])
    x_in, y_in = members[0][pick_in], members[1][pick_in]
    x_out, y_out = non_members[0][pick_out], non_members[1][pick_out]
    p_in, p_out = predictor.predict_proba(x_in), predictor.predict_proba(x_out)  # 2
    truth = np.r_[np.ones(n_in, bool), np.zeros(n_out, bool)]
    y_all, p_all = np.r_[y_in, y_out], np.r_[p_in, p_out]
    done: list[MembershipFigures | MembershipSkipped] = []
    complete = True
    for attack in spec.attacks:  # 3
        began = clock()
        if done and began - start > spec.max_seconds:
            done.append(MembershipSkipped(attack, "the test stopped at its time limit "
                                          "before this attack", "raise max_seconds"))
            complete = False
            continue
        if attack is MembershipAttack.THRESHOLD:
            rows = np.arange(len(y_all))
            done.append(figures(attack, np.log(np.maximum(p_all[rows, y_all], _TINY)), truth,
                                clock() - began, {"score": "log p(true label)"}))
        elif attack is MembershipAttack.CONFIDENCE:
            done.append(figures(attack, p_all.max(axis=1), truth, clock() - began,
                                {"score": "max probability"}))
        elif attack is MembershipAttack.ART_BLACKBOX:
            done.append(_art_blackbox(predictor, (x_in, y_in, p_in), (x_out, y_out, p_out),
                                      n_classes, seed, clock, began))
        else:
            outcome = _lira(spec, predictor, (x_in, y_in, p_in), (x_out, y_out, p_out),
                            n_classes, seed, clock, start, shadow)
            complete &= not (isinstance(outcome, MembershipSkipped)
                             and outcome.reason.startswith("stopped"))
            done.append(outcome)
        if progress is not None:
            progress.advance("membership")
    return MembershipResult(members=n_in, non_members=n_out, attacks=tuple(done),
                            complete=complete,
                            seconds=clock() - start,
                            parameters={"attacks": [a.value for a in spec.attacks],
                                        "samples": spec.samples,
                                        "shadow_models": spec.shadow_models,
                                        "epochs": spec.epochs,
                                        "learning_rate": spec.learning_rate})


Scored = tuple[Array, npt.NDArray[np.int64], Array]


def _art_blackbox(predictor: Predictor, members: Scored, non_members: Scored,
                  n_classes: int, seed: int, clock: Clock, began: float,
                  ) -> MembershipFigures | MembershipSkipped:
    """ART's attack trained on the first half of each side (by a seeded shuffle) and scored on
    the second. It is handed the model's probabilities, so every query is Bastion's own."""
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
    from art.estimators.classification import BlackBoxClassifier

    rng = np.random.default_rng([seed, 1])
    halves = []
    for _, y, p in (members, non_members):
        order = rng.permutation(len(y))
        cut = len(y) // 2
        halves.append(((y[order[:cut]], p[order[:cut]]), (y[order[cut:]], p[order[cut:]])))
    (train_in, test_in), (train_out, test_out) = halves
    if min(len(train_in[0]), len(test_out[0])) < 2:
        return MembershipSkipped(MembershipAttack.ART_BLACKBOX, "too few samples to train "
                                 "the attack on one half and score it on the other",
                                 "give at least 4 members and 4 non-members")

    def query(v: Array) -> Array:
        return np.asarray(predictor.predict_proba(v), dtype=np.float32)

    estimator = BlackBoxClassifier(query, input_shape=members[0].shape[1:],
                                   nb_classes=n_classes)
    attack = MembershipInferenceBlackBox(estimator, input_type="prediction",
                                         attack_model_type="rf")
    _art.seed_all(seed)  # ART's random forest draws on NumPy's global state
    try:
        attack.fit(y=train_in[0], pred=train_in[1].astype(np.float32), test_y=train_out[0],
                   test_pred=train_out[1].astype(np.float32))
        scores = [np.asarray(attack.infer(None, y=y, pred=p.astype(np.float32),
                                          probabilities=True), dtype=np.float64).ravel()
                  for y, p in (test_in, test_out)]
    except (ValueError, TypeError) as exc:  # ART's own checks: say so, fail the attack
        return MembershipSkipped(MembershipAttack.ART_BLACKBOX, f"ART refused: {exc}",
                                 "check the data's labels and the model's outputs")
    truth = np.r_[np.ones(len(scores[0]), bool), np.zeros(len(scores[1]), bool)]
    return figures(MembershipAttack.ART_BLACKBOX, np.r_[scores[0], scores[1]], truth,
                   clock() - began, {"attack_model": "rf", "trained_on": len(train_in[0])})


def _lira(spec: MembershipSpec, predictor: Predictor, members: Scored, non_members: Scored,
          n_classes: int, seed: int, clock: Clock, start: float, template: Any,
          ) -> MembershipFigures | MembershipSkipped:
    """Offline LiRA. Steps: 1. a shadow trainer of the target's recipe (else not run);
    2. which shadow trains on which non-member: each non-member in exactly half of them
    (members in none: they are the target's, never the population's); 3. train each shadow
    and score every example; 4. the one-sided Gaussian test per example."""
    began = clock()
    try:
        train = shadow_trainer(predictor, n_classes, epochs=spec.epochs,  # 1
                               learning_rate=spec.learning_rate, template=template)
    except ModelError as exc:
        return MembershipSkipped(MembershipAttack.LIRA, exc.message,
                                 exc.hint or "drop lira from tests.membership.attacks")
    x_in, y_in, p_in = members
    x_pop, y_pop, p_pop = non_members
    k, n = spec.shadow_models, len(y_pop)
    rng = np.random.default_rng([seed, 2])
    keep = rng.uniform(size=(k, n)).argsort(axis=0) < k // 2  # 2
    x_eval = np.concatenate([x_in, x_pop])
    y_eval = np.r_[y_in, y_pop]
    scores = np.empty((k, len(y_eval)))
    for i in range(k):  # 3
        if i and clock() - start > spec.max_seconds:
            return MembershipSkipped(MembershipAttack.LIRA, f"stopped at the time limit after "
                                     f"{i} of {k} shadow models",
                                     "raise max_seconds, or lower shadow_models or epochs")
        probabilities = train(x_pop[keep[i]], y_pop[keep[i]], x_eval, seed + 1 + i)
        scores[i] = logit_confidence(probabilities, y_eval)
    out = np.concatenate([np.ones((k, len(y_in)), bool), ~keep], axis=1)
    target = logit_confidence(np.r_[p_in, p_pop], y_eval)
    truth = np.r_[np.ones(len(y_in), bool), np.zeros(n, bool)]
    return figures(MembershipAttack.LIRA, lira_scores(target, scores, out), truth,  # 4
                   clock() - began,
                   {"shadow_models": k, "variance": "global" if k < _GLOBAL_VARIANCE_BELOW
                    else "per example", "shadow_train_size": int(keep.sum(axis=1).mean())})

