"""What an assessment produces, described once: results, the tests that could not run, errors.

    >>> from bastion.assess.interface import CurvePoint
    >>> CurvePoint(eps=0.1, accuracy=0.5, robust_accuracy=0.5, per_class={"0": 0.4}).eps
    0.1

A test that ran is an :class:`EvasionResult` (complete or not: ``complete`` says); a test the
policy asks for that cannot run is a :class:`SkippedTest` with its reason, never ``None`` and
never a pass (DESIGN invariant 2, fail closed).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import numpy as np
import numpy.typing as npt

from bastion.errors import BastionError

__all__ = [
    "AssessError",
    "Attack",
    "CurvePoint",
    "EvasionResult",
    "Examples",
    "ExtractionCell",
    "ExtractionResult",
    "MembershipAttack",
    "MembershipFigures",
    "MembershipResult",
    "MembershipSkipped",
    "Norm",
    "OodFigures",
    "OodResult",
    "OodScore",
    "OodShift",
    "OutputMode",
    "PolicyError",
    "Progress",
    "PruningLevel",
    "PruningResult",
    "Recommendation",
    "SkippedTest",
]


class AssessError(BastionError):
    """An assessment cannot run as asked (no labels, labels the model does not know)."""


class PolicyError(AssessError):
    """A policy file is malformed; the message names the field, the hint says how to fix it."""


class Attack(enum.StrEnum):
    """The attacks a policy can name; each is one test (its key under ``tests:``)."""

    FGSM = "fgsm"
    PGD_LINF = "pgd_linf"
    PGD_L2 = "pgd_l2"
    AUTOPGD = "autopgd"
    HOPSKIPJUMP = "hopskipjump"
    SQUARE = "square"
    MEMBERSHIP = "membership"
    EXTRACTION = "extraction"
    OOD = "ood"
    PRUNING = "pruning"

    @property
    def white_box(self) -> bool:
        """Whether it needs the model's gradients (a PyTorch network)."""
        return self in (Attack.FGSM, Attack.PGD_LINF, Attack.PGD_L2, Attack.AUTOPGD)

    @property
    def display_name(self) -> str:
        """The attack's name for people."""
        return _TITLES[self]


_TITLES = {
    Attack.FGSM: "FGSM", Attack.PGD_LINF: "PGD (L∞)", Attack.PGD_L2: "PGD (L2)",
    Attack.AUTOPGD: "AutoPGD", Attack.HOPSKIPJUMP: "HopSkipJump", Attack.SQUARE: "Square",
    Attack.MEMBERSHIP: "Membership inference", Attack.EXTRACTION: "Model extraction",
    Attack.OOD: "Out-of-distribution detection", Attack.PRUNING: "Pruning",
}


class Norm(enum.StrEnum):
    """How a perturbation's size is measured (ε is a radius in this norm, in input units)."""

    LINF = "inf"
    L2 = "2"


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """Accuracy under attack at one ε."""

    eps: float
    """The perturbation budget, in the test's norm and the inputs' own units."""
    accuracy: float
    """Share of samples still classified correctly by this ε's attack alone."""
    robust_accuracy: float
    """Share still correct under every attack of this test at ε or below (a perturbation
    found at a smaller ε is also one at this ε), so the curve never rises."""
    per_class: Mapping[str, float] = field(default_factory=dict)
    """``robust_accuracy`` per true class (class label as text)."""
    median_queries: float | None = None
    """Black-box attacks run per ε (Square): median model queries per sample."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"eps": self.eps, "accuracy": self.accuracy,
                "robust_accuracy": self.robust_accuracy, "per_class": dict(self.per_class),
                "median_queries": self.median_queries}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict` (a cached or stored result read back).

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not what :meth:`to_dict` writes.
        """
        queries = data.get("median_queries")
        return cls(eps=float(data["eps"]), accuracy=float(data["accuracy"]),
                   robust_accuracy=float(data["robust_accuracy"]),
                   per_class={str(k): float(v) for k, v in dict(data["per_class"]).items()},
                   median_queries=None if queries is None else float(queries))


@dataclass(frozen=True, eq=False)
class Examples:
    """Adversarial examples one test made, for regression tests and adversarial training."""

    x: npt.NDArray[np.float32]
    """The clean inputs, one per example."""
    y: npt.NDArray[np.int64]
    """Their true class indices."""
    x_adv: npt.NDArray[np.float32]
    """The perturbed inputs."""
    eps: npt.NDArray[np.float64]
    """The ε each was made under (black-box minimum-norm attacks: the norm found)."""
    fooled: npt.NDArray[np.bool_]
    """Whether the model misclassifies ``x_adv``."""


@dataclass(frozen=True, eq=False)
class EvasionResult:
    """One evasion test that ran: accuracy against ε, overall and per class."""

    attack: Attack
    """Which attack."""
    norm: Norm
    """The norm its ε is measured in."""
    samples: int
    """How many labelled samples it attacked."""
    clean_accuracy: float
    """Accuracy on those samples before any attack."""
    curve: tuple[CurvePoint, ...]
    """One point per ε reached, ascending."""
    planned_eps: tuple[float, ...]
    """Every ε the policy asked for (``curve`` may stop short: see ``complete``)."""
    complete: bool
    """``False`` when the time budget ran out before every ε (the curve is what was done)."""
    seconds: float
    """Wall-clock time spent."""
    parameters: Mapping[str, Any]
    """The attack's own settings (steps, step size, query budget), as run."""
    examples: Examples | None = None
    """The adversarial examples, when kept."""
    median_perturbation: float | None = None
    """Black-box attacks: the median, over the samples the model first classified correctly,
    of the smallest perturbation found for each (HopSkipJump: the norm it found; Square: the
    smallest of the policy's ε that fooled it). ``None`` when the attack fooled at most half
    of them: the median lies beyond every perturbation it found."""
    median_queries: float | None = None
    """Black-box attacks: median model queries spent per sample."""
    success_rate: float | None = None
    """Black-box attacks: share of the samples first classified correctly that the attack
    fooled within its query budget (``None``: the model classified none correctly)."""

    def at(self, eps: float) -> CurvePoint | None:
        """The point at ``eps``, if the test reached it."""
        return next((p for p in self.curve if abs(p.eps - eps) <= 1e-12), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the examples: they go to an ``.npz``)."""
        return {"attack": self.attack.value, "norm": self.norm.value, "samples": self.samples,
                "clean_accuracy": self.clean_accuracy,
                "curve": [p.to_dict() for p in self.curve],
                "planned_eps": list(self.planned_eps), "complete": self.complete,
                "seconds": round(self.seconds, 3), "parameters": dict(self.parameters),
                "median_perturbation": self.median_perturbation,
                "median_queries": self.median_queries, "success_rate": self.success_rate}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`, without the examples (they are never in it).

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not what :meth:`to_dict` writes.
        """
        return cls(attack=Attack(data["attack"]), norm=Norm(data["norm"]),
                   samples=int(data["samples"]), clean_accuracy=float(data["clean_accuracy"]),
                   curve=tuple(CurvePoint.from_dict(p) for p in data["curve"]),
                   planned_eps=tuple(float(e) for e in data["planned_eps"]),
                   complete=_flag(data["complete"]), seconds=float(data["seconds"]),
                   parameters=dict(data["parameters"]),
                   median_perturbation=_number(data.get("median_perturbation")),
                   median_queries=_number(data.get("median_queries")),
                   success_rate=_number(data.get("success_rate")))


@dataclass(frozen=True, slots=True)
class SkippedTest:
    """A test the policy asks for that could not run: a failed requirement, never a pass."""

    attack: Attack
    """Which test."""
    reason: str
    """Why it could not run."""
    remedy: str
    """What would let it run."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"attack": self.attack.value, "skipped": True, "reason": self.reason,
                "remedy": self.remedy}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not what :meth:`to_dict` writes.
        """
        if data.get("skipped") is not True:
            raise ValueError("not a skipped test")
        return cls(attack=Attack(data["attack"]), reason=str(data["reason"]),
                   remedy=str(data["remedy"]))


class MembershipAttack(enum.StrEnum):
    """The membership inference attacks the ``membership`` test can run (``attacks:``)."""

    THRESHOLD = "threshold"
    """The loss on the true label, thresholded (Yeom et al. 2018): low loss, a member."""
    CONFIDENCE = "confidence"
    """The highest class probability, thresholded: needs no label."""
    ART_BLACKBOX = "art_blackbox"
    """ART's ``MembershipInferenceBlackBox``: a classifier trained on the model's outputs for
    half the members and non-members, scored on the other half (Shokri et al. 2017)."""
    LIRA = "lira"
    """The offline Likelihood Ratio Attack (Carlini et al. 2022): shadow models trained on
    halves of the non-members, a Gaussian of each example's logit-scaled confidence when
    it was left out, a one-sided test."""

    @property
    def display_name(self) -> str:
        """The attack's name for people."""
        return _MIA_TITLES[self]


_MIA_TITLES = {
    MembershipAttack.THRESHOLD: "loss threshold", MembershipAttack.CONFIDENCE:
    "confidence threshold", MembershipAttack.ART_BLACKBOX: "ART black-box",
    MembershipAttack.LIRA: "LiRA (offline)",
}


@dataclass(frozen=True, slots=True)
class MembershipFigures:
    """How well one membership inference attack told members from non-members."""

    attack: MembershipAttack
    """Which attack."""
    members: int
    """Members it was scored on."""
    non_members: int
    """Non-members it was scored on (the low-FPR figures need enough of them)."""
    auc: float
    """Area under the ROC curve: 0.5 is chance, 1 tells every member apart."""
    balanced_accuracy: float
    """Mean of TPR and TNR at the best threshold (0.5 + the largest TPR − FPR gap / 2): what
    an attacker who can calibrate on a few known members reaches."""
    tpr_at_0_1pct_fpr: float | None
    """Share of members flagged while at most 0.1 % of non-members are; ``None`` with fewer
    than 1,000 non-members (not measurable)."""
    tpr_at_1pct_fpr: float | None
    """The same at 1 % FPR; ``None`` with fewer than 100 non-members."""
    roc: tuple[tuple[float, float], ...]
    """(FPR, TPR) points of the ROC curve (thinned for the report)."""
    seconds: float
    """Wall-clock time spent."""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """The attack's own settings, as run."""

    def value(self, metric: str) -> float | None:
        """The figure named ``metric`` (``auc``, ``tpr_at_1pct_fpr`` …)."""
        found = getattr(self, metric, None)
        return None if found is None else float(found)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"attack": self.attack.value, "members": self.members,
                "non_members": self.non_members, "auc": self.auc,
                "balanced_accuracy": self.balanced_accuracy,
                "tpr_at_0_1pct_fpr": self.tpr_at_0_1pct_fpr,
                "tpr_at_1pct_fpr": self.tpr_at_1pct_fpr,
                "roc": [list(p) for p in self.roc], "seconds": round(self.seconds, 3),
                "parameters": dict(self.parameters)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not what :meth:`to_dict` writes.
        """
        return cls(attack=MembershipAttack(data["attack"]), members=int(data["members"]),
                   non_members=int(data["non_members"]), auc=float(data["auc"]),
                   balanced_accuracy=float(data["balanced_accuracy"]),
                   tpr_at_0_1pct_fpr=_number(data.get("tpr_at_0_1pct_fpr")),
                   tpr_at_1pct_fpr=_number(data.get("tpr_at_1pct_fpr")),
                   roc=tuple((float(f), float(t)) for f, t in data["roc"]),
                   seconds=float(data["seconds"]), parameters=dict(data["parameters"]))


@dataclass(frozen=True, slots=True)
class MembershipSkipped:
    """A membership attack the policy asks for that could not run (a failure, never a pass)."""

    attack: MembershipAttack
    """Which attack."""
    reason: str
    """Why it could not run."""
    remedy: str
    """What would let it run."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"attack": self.attack.value, "skipped": True, "reason": self.reason,
                "remedy": self.remedy}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not what :meth:`to_dict` writes.
        """
        return cls(attack=MembershipAttack(data["attack"]), reason=str(data["reason"]),
                   remedy=str(data["remedy"]))


@dataclass(frozen=True, eq=False)
class MembershipResult:
    """The membership inference test that ran: one set of figures per attack (NCSC 1.3, 5.1)."""

    members: int
    """Members (training examples) sampled."""
    non_members: int
    """Non-members sampled."""
    attacks: tuple[MembershipFigures | MembershipSkipped, ...]
    """One per attack of the policy, in its order."""
    complete: bool
    """``False`` when the time budget ran out before every attack finished."""
    seconds: float
    """Wall-clock time spent."""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """The test's settings, as run."""

    attack: Attack = Attack.MEMBERSHIP
    """The test (always :attr:`Attack.MEMBERSHIP`)."""

    def figures(self, attack: MembershipAttack | None = None) -> list[MembershipFigures]:
        """The attacks that ran (only ``attack``'s, when named)."""
        return [a for a in self.attacks if isinstance(a, MembershipFigures)
                and (attack is None or a.attack is attack)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"attack": self.attack.value, "members": self.members,
                "non_members": self.non_members,
                "attacks": [a.to_dict() for a in self.attacks], "complete": self.complete,
                "seconds": round(self.seconds, 3), "parameters": dict(self.parameters)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not what :meth:`to_dict` writes.
        """
        if data.get("attack") != Attack.MEMBERSHIP.value:
            raise ValueError("not a membership result")
        attacks = tuple(MembershipSkipped.from_dict(a) if a.get("skipped")
                        else MembershipFigures.from_dict(a) for a in data["attacks"])
        return cls(members=int(data["members"]), non_members=int(data["non_members"]),
                   attacks=attacks, complete=_flag(data["complete"]),
                   seconds=float(data["seconds"]), parameters=dict(data["parameters"]))


class OutputMode(enum.StrEnum):
    """What one query of the served model answers (``tests.extraction.outputs``), richest
    first: the order :class:`Recommendation` reads them in."""

    PROBABILITIES = "probabilities"
    """Every class's probability, as the model gives it."""
    ROUNDED2 = "rounded2"
    """Every class's probability rounded to 2 decimals."""
    TOP3 = "top3"
    """The three most likely classes and their probabilities; the others withheld (0)."""
    TOP1 = "top1"
    """The most likely class and its probability; the other classes' scores withheld (0)."""
    LABEL = "label"
    """The most likely class only (a one-hot row)."""


@dataclass(frozen=True, slots=True)
class ExtractionCell:
    """One query budget under one output mode: how close the stolen model came."""

    budget: int
    """Queries the policy allowed the attacker."""
    output: OutputMode
    """What each query answered."""
    queries: int
    """Queries spent (the budget; Bastion's query pool is never smaller, see ``distinct``)."""
    distinct: int
    """How many of them were distinct rows of the thief data (the rest: noisy copies)."""
    agreement: float
    """Share of the held-out rows on which the surrogate gives the target's label (the
    stronger of the surrogate's training variants)."""
    accuracy: float
    """The same surrogate's accuracy against the true labels."""
    training: str
    """Which variant gave the figures: ``hard`` (fitted on the answers' top labels) or
    ``soft`` (fitted on the answers as class weights)."""
    variants: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Every variant's ``agreement`` and ``accuracy``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"budget": self.budget, "output": self.output.value, "queries": self.queries,
                "distinct": self.distinct, "agreement": self.agreement,
                "accuracy": self.accuracy, "training": self.training,
                "variants": {k: dict(v) for k, v in self.variants.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not what :meth:`to_dict` writes.
        """
        return cls(budget=int(data["budget"]), output=OutputMode(data["output"]),
                   queries=int(data["queries"]), distinct=int(data["distinct"]),
                   agreement=float(data["agreement"]), accuracy=float(data["accuracy"]),
                   training=str(data["training"]),
                   variants={str(k): {str(m): float(x) for m, x in dict(v).items()}
                             for k, v in dict(data["variants"]).items()})


@dataclass(frozen=True, slots=True)
class Recommendation:
    """What a gateway may serve (NCSC 3.3): per output mode, the largest tested query budget
    whose extraction agreement stays at or under ``threshold``, and every smaller budget too."""

    threshold: float
    """The agreement the recommendation keeps at or under."""
    per_output: Mapping[OutputMode, int | None]
    """Per output mode tested: the largest safe budget; ``None``: even the smallest tested
    budget (or one below the largest safe one) exceeded the threshold or was not measured."""
    fidelity: OutputMode | None
    """The richest output mode whose agreement stays at or under the threshold at the
    smallest tested budget; ``None``: none does."""

    @classmethod
    def from_cells(cls, cells: tuple[ExtractionCell, ...], budgets: tuple[int, ...],
                   outputs: tuple[OutputMode, ...], threshold: float) -> Self:
        """Read off the cells. Steps: 1. per output, walk the budgets upward and stop at the
        first one over the threshold or not measured (a quota allows every smaller number of
        queries too); 2. the richest output safe at the smallest budget."""
        found = {(c.budget, c.output): c.agreement for c in cells}
        per: dict[OutputMode, int | None] = {}
        for output in outputs:  # 1
            safe: int | None = None
            for budget in sorted(budgets):
                value = found.get((budget, output))
                if value is None or value > threshold:
                    break
                safe = budget
            per[output] = safe
        smallest = min(budgets)
        ranked = [m for m in OutputMode if m in outputs]  # 2: the enum's order, richest first
        fidelity = next((m for m in ranked if (per[m] or 0) >= smallest), None)
        return cls(threshold=threshold, per_output=per, fidelity=fidelity)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: what the gateway reads."""
        return {"threshold": self.threshold,
                "per_output": {m.value: {"max_queries": q} for m, q in self.per_output.items()},
                "fidelity": None if self.fidelity is None else self.fidelity.value}


@dataclass(frozen=True, eq=False)
class ExtractionResult:
    """The model extraction test that ran (NCSC 3.3): a surrogate trained on the target's
    answers, per query budget and output mode, scored on held-out rows."""

    pool: int
    """Distinct rows the attacker could query (the thief data)."""
    evaluated: int
    """Held-out rows the surrogates were scored on."""
    target_accuracy: float
    """The target's own accuracy on those rows."""
    budgets: tuple[int, ...]
    """The query budgets the policy asks for, ascending."""
    outputs: tuple[OutputMode, ...]
    """The output modes, in the policy's order."""
    cells: tuple[ExtractionCell, ...]
    """One per budget and output measured (budget-major)."""
    threshold: float
    """The agreement the recommendation keeps under."""
    threshold_source: str
    """Where it came from: ``test`` (``tests.extraction.threshold``), ``requirement`` (the
    lowest ``max`` of the agreement requirements) or ``default``."""
    complete: bool
    """``False`` when the time budget ran out before every cell."""
    seconds: float
    """Wall-clock time spent."""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """The test's settings, as run."""

    attack: Attack = Attack.EXTRACTION
    """The test (always :attr:`Attack.EXTRACTION`)."""

    def cell(self, budget: int, output: OutputMode) -> ExtractionCell | None:
        """The cell at ``budget`` and ``output``, if measured."""
        return next((c for c in self.cells if c.budget == budget and c.output is output), None)

    @property
    def recommendation(self) -> Recommendation:
        """The output fidelity and query budget per mode that keep agreement under the
        threshold (the gateway reads it from :meth:`to_dict`)."""
        return Recommendation.from_cells(self.cells, self.budgets, self.outputs, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the ``recommendation``."""
        return {"attack": self.attack.value, "pool": self.pool, "evaluated": self.evaluated,
                "target_accuracy": self.target_accuracy, "budgets": list(self.budgets),
                "outputs": [m.value for m in self.outputs],
                "cells": [c.to_dict() for c in self.cells], "threshold": self.threshold,
                "threshold_source": self.threshold_source, "complete": self.complete,
                "seconds": round(self.seconds, 3), "parameters": dict(self.parameters),
                "recommendation": self.recommendation.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict` (the recommendation is computed again from the cells).

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not what :meth:`to_dict` writes.
        """
        if data.get("attack") != Attack.EXTRACTION.value:
            raise ValueError("not an extraction result")
        return cls(pool=int(data["pool"]), evaluated=int(data["evaluated"]),
                   target_accuracy=float(data["target_accuracy"]),
                   budgets=tuple(int(b) for b in data["budgets"]),
                   outputs=tuple(OutputMode(m) for m in data["outputs"]),
                   cells=tuple(ExtractionCell.from_dict(c) for c in data["cells"]),
                   threshold=float(data["threshold"]),
                   threshold_source=str(data["threshold_source"]),
                   complete=_flag(data["complete"]), seconds=float(data["seconds"]),
                   parameters=dict(data["parameters"]))


class OodScore(enum.StrEnum):
    """The out-of-distribution detectors the ``ood`` test fits (``detectors:``); each scores
    an input, higher meaning further from the training data."""

    MSP = "msp"
    """Maximum softmax probability, negated (Hendrycks & Gimpel 2017): any classifier."""
    ENERGY = "energy"
    """The free energy ``−logsumexp(logits)`` (Liu et al. 2020): needs the logits."""
    MAHALANOBIS = "mahalanobis"
    """The smallest Mahalanobis distance to a class mean under one shared covariance (Lee et
    al. 2018), on the penultimate layer (the inputs for a model without one)."""
    KNN = "knn"
    """The distance to the k-th nearest training example, features normalised to unit
    length (Sun et al. 2022), on the same features."""

    @property
    def reads_features(self) -> bool:
        """Whether it is fitted on features (so a class can be held out of its fit)."""
        return self in (OodScore.MAHALANOBIS, OodScore.KNN)


class OodShift(enum.StrEnum):
    """What the detectors must tell from in-distribution data (``shifts:``, plus ``given``:
    the ``--ood`` set)."""

    GIVEN = "given"
    """The user's own out-of-distribution set (``--ood``)."""
    NOISE = "noise"
    """Uniform noise over the valid input range."""
    BLUR = "blur"
    """Test images Gaussian-blurred (σ 1 pixel): images only."""
    CONTRAST = "contrast"
    """Test images with their contrast cut to 30 % around each image's mean: images only."""
    HOLDOUT = "holdout"
    """A class left out of the detector's fit, scored against the others (a class the
    detector has never seen): feature detectors only, since the model knows every class."""


@dataclass(frozen=True, slots=True)
class OodFigures:
    """How well one detector told one shift from in-distribution data."""

    detector: OodScore
    """Which detector."""
    shift: OodShift
    """Which out-of-distribution data."""
    auroc: float | None
    """Area under the ROC curve (the chance an unusual input scores above an ordinary one):
    0.5 is chance, 1 tells every one apart; ``None``: not measurable (``note`` says why)."""
    fpr_at_95_tpr: float | None
    """Share of out-of-distribution inputs let through when the threshold lets 95 % of
    in-distribution ones through (in-distribution as positives, as Liang et al. 2018; lower
    is better; the gateway's threshold works the same)."""
    in_samples: int
    """In-distribution inputs scored."""
    out_samples: int
    """Out-of-distribution inputs scored."""
    histogram: Mapping[str, Any] = field(default_factory=dict)
    """``edges``, ``in`` and ``out`` counts of both score sets, for the report's plot."""
    note: str | None = None
    """Why a figure is not measurable."""

    def value(self, metric: str) -> float | None:
        """The figure named ``metric`` (``auroc`` or ``fpr_at_95_tpr``)."""
        found = getattr(self, metric, None)
        return None if found is None else float(found)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"detector": self.detector.value, "shift": self.shift.value, "auroc": self.auroc,
                "fpr_at_95_tpr": self.fpr_at_95_tpr, "in_samples": self.in_samples,
                "out_samples": self.out_samples, "histogram": dict(self.histogram),
                "note": self.note}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not what :meth:`to_dict` writes.
        """
        note = data.get("note")
        return cls(detector=OodScore(data["detector"]), shift=OodShift(data["shift"]),
                   auroc=_number(data.get("auroc")),
                   fpr_at_95_tpr=_number(data.get("fpr_at_95_tpr")),
                   in_samples=int(data["in_samples"]), out_samples=int(data["out_samples"]),
                   histogram=dict(data.get("histogram") or {}),
                   note=None if note is None else str(note))


@dataclass(frozen=True, eq=False)
class OodResult:
    """The out-of-distribution test that ran (NCSC 2.6): each detector on each shift, and the
    detector chosen for the gateway."""

    fitted_on: int
    """In-distribution rows the detectors were fitted on."""
    evaluated: int
    """In-distribution rows they were scored on (never part of the fit)."""
    features: Mapping[str, str]
    """What each detector read: ``probabilities``, ``logits``, ``penultimate`` or ``inputs``."""
    figures: tuple[OodFigures, ...]
    """One per detector and shift measured (detector-major)."""
    skipped: Mapping[str, str]
    """Detectors asked for that could not be fitted, with the reason."""
    chosen: OodScore | None
    """The detector saved for the gateway: the policy's ``choose``, else the best mean AUROC
    over the shifts every fitted detector measured; ``None`` when none was fitted."""
    threshold: float | None
    """The chosen detector's threshold: the score 95 % of in-distribution rows stay under."""
    complete: bool
    """``False`` when the time budget ran out before every detector and shift."""
    seconds: float
    """Wall-clock time spent."""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """The test's settings, as run."""
    detector: Any = None
    """The chosen, fitted :class:`~bastion.assess.ood.OodDetector` (not in :meth:`to_dict`:
    it is saved on its own, as a catalog artefact)."""

    attack: Attack = Attack.OOD
    """The test (always :attr:`Attack.OOD`)."""

    def of(self, detector: OodScore) -> list[OodFigures]:
        """``detector``'s figures, one per shift."""
        return [f for f in self.figures if f.detector is detector]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"attack": self.attack.value, "fitted_on": self.fitted_on,
                "evaluated": self.evaluated, "features": dict(self.features),
                "figures": [f.to_dict() for f in self.figures], "skipped": dict(self.skipped),
                "chosen": None if self.chosen is None else self.chosen.value,
                "threshold": self.threshold, "complete": self.complete,
                "seconds": round(self.seconds, 3), "parameters": dict(self.parameters)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`, without the fitted detector.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not what :meth:`to_dict` writes.
        """
        if data.get("attack") != Attack.OOD.value:
            raise ValueError("not an OoD result")
        chosen = data.get("chosen")
        return cls(fitted_on=int(data["fitted_on"]), evaluated=int(data["evaluated"]),
                   features={str(k): str(v) for k, v in dict(data["features"]).items()},
                   figures=tuple(OodFigures.from_dict(f) for f in data["figures"]),
                   skipped={str(k): str(v) for k, v in dict(data["skipped"]).items()},
                   chosen=None if chosen is None else OodScore(chosen),
                   threshold=_number(data.get("threshold")), complete=_flag(data["complete"]),
                   seconds=float(data["seconds"]), parameters=dict(data["parameters"]))


@dataclass(frozen=True, slots=True)
class PruningLevel:
    """The pruned model at one sparsity: what it still gets right, how big and fast it is."""

    sparsity: float
    """The level as asked: the share of the prunable weights zeroed (PyTorch), or of the
    trees removed (forests)."""
    accuracy: float
    """Clean accuracy of the pruned model on the sample."""
    robust_accuracy: float | None
    """Accuracy under the given evasion attack at its ε; ``None``: no attack given, or it
    cannot run on this model (``parameters["robust_skipped"]`` says why)."""
    parameters: int
    """PyTorch: the prunable weights in all (every ``Linear``/``Conv`` weight element, the
    same at every level); forests: the trees kept."""
    nonzero: int
    """PyTorch: non-zero parameters of the whole pruned network (biases and every other
    parameter included); forests: tree nodes kept (leaves included), over all kept trees."""
    compressed_bytes: int | None
    """PyTorch: zlib (level 6) size of all parameters' raw bytes after pruning, what the
    zeros save on disk; ``None`` for forests."""
    latency_ms: float
    """Median over 5 timed ``predict_proba`` calls on up to 256 sample rows, in
    milliseconds per 1,000 rows."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"sparsity": self.sparsity, "accuracy": self.accuracy,
                "robust_accuracy": self.robust_accuracy, "parameters": self.parameters,
                "nonzero": self.nonzero, "compressed_bytes": self.compressed_bytes,
                "latency_ms": self.latency_ms}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not what :meth:`to_dict` writes.
        """
        size = data["compressed_bytes"]
        return cls(sparsity=float(data["sparsity"]), accuracy=float(data["accuracy"]),
                   robust_accuracy=_number(data["robust_accuracy"]),
                   parameters=_count(data["parameters"]), nonzero=_count(data["nonzero"]),
                   compressed_bytes=None if size is None else _count(size),
                   latency_ms=float(data["latency_ms"]))


@dataclass(frozen=True, eq=False)
class PruningResult:
    """The pruning test that ran (NCSC 2.6): one :class:`PruningLevel` per sparsity reached."""

    method: str
    """How the model was pruned (``bastion.assess.pruning.TORCH_METHOD`` or ``FOREST_METHOD``)."""
    samples: int
    """Labelled samples every level was scored on."""
    levels: tuple[PruningLevel, ...]
    """One per level measured, in the order asked (ascending sparsity)."""
    planned: tuple[float, ...]
    """Every sparsity asked for (``levels`` may stop short: see ``complete``)."""
    max_accuracy_loss: float
    """How much clean accuracy ``chosen`` may give up against the unpruned model."""
    chosen: float | None
    """The sparsest measured level whose clean accuracy is at least the unpruned model's
    minus ``max_accuracy_loss``: ``0.0`` when only the unpruned level keeps it, ``None`` when
    no measured level does (possible only without level 0)."""
    complete: bool
    """``False`` when the time budget ran out before every level."""
    seconds: float
    """Wall-clock time spent."""
    parameters: Mapping[str, Any]
    """The test's settings, as run (levels, the attack, its ε and norm)."""

    attack: Attack = Attack.PRUNING
    """The test (always :attr:`Attack.PRUNING`)."""

    def level(self, sparsity: float) -> PruningLevel | None:
        """The level at ``sparsity``, if measured."""
        return next((v for v in self.levels if abs(v.sparsity - sparsity) <= 1e-12), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"attack": self.attack.value, "method": self.method, "samples": self.samples,
                "levels": [v.to_dict() for v in self.levels], "planned": list(self.planned),
                "max_accuracy_loss": self.max_accuracy_loss, "chosen": self.chosen,
                "complete": self.complete, "seconds": round(self.seconds, 3),
                "parameters": dict(self.parameters)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_dict`.

        Raises:
            KeyError, TypeError, ValueError: ``data`` is not what :meth:`to_dict` writes.
        """
        if not isinstance(data, Mapping) or data.get("attack") != Attack.PRUNING.value:
            raise ValueError("not a pruning result")
        return cls(method=str(data["method"]), samples=_count(data["samples"]),
                   levels=tuple(PruningLevel.from_dict(v) for v in data["levels"]),
                   planned=tuple(float(s) for s in data["planned"]),
                   max_accuracy_loss=float(data["max_accuracy_loss"]),
                   chosen=_number(data["chosen"]), complete=_flag(data["complete"]),
                   seconds=float(data["seconds"]), parameters=dict(data["parameters"]))


def _count(value: Any) -> int:
    """An integer as written (a float such as ``3.5`` is refused, not truncated)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"expected an integer, not {value!r}")
    return int(value)


def result_from_dict(data: Mapping[str, Any]) -> (
        EvasionResult | MembershipResult | ExtractionResult | OodResult | PruningResult
        | SkippedTest):
    """A test's result read back: a :class:`SkippedTest` when it says ``skipped``, a
    :class:`MembershipResult` or :class:`ExtractionResult` for those tests, else an
    :class:`EvasionResult`.

    Raises:
        KeyError, TypeError, ValueError: ``data`` is no result's :meth:`to_dict`.
    """
    if not isinstance(data, Mapping):
        raise TypeError(f"a test's result is a mapping, not {type(data).__name__}")
    if data.get("skipped"):
        return SkippedTest.from_dict(data)
    if data.get("attack") == Attack.MEMBERSHIP.value:
        return MembershipResult.from_dict(data)
    if data.get("attack") == Attack.EXTRACTION.value:
        return ExtractionResult.from_dict(data)
    if data.get("attack") == Attack.OOD.value:
        return OodResult.from_dict(data)
    if data.get("attack") == Attack.PRUNING.value:
        return PruningResult.from_dict(data)
    return EvasionResult.from_dict(data)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, not {value!r}")
    return value


class Progress(Protocol):
    """Told how a test advances (the CLI draws a bar per test on a terminal)."""

    def start(self, test: str, total: int) -> None:
        """A test begins; ``total`` steps (ε values, or samples for black-box attacks)."""

    def advance(self, test: str) -> None:
        """One step of ``test`` is done."""

    def stop(self, test: str) -> None:
        """``test`` is over (done, out of time, or failed)."""
