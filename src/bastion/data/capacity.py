"""Capacity and sufficiency (NCSC 2.6): is there enough data for the task and the model?

The NCSC rules of thumb (the 1-in-10 rule for regression, 1,000 images per class for vision,
the learning curve for classification), the model's parameters against the samples, a learning
curve extrapolated to the samples a target score needs (inverse power law, as in Figueroa et
al., "Predicting sample size required for classification performance", BMC MIDM 2012), and
simple baselines that say whether a complex model's gain justifies its capacity.

    >>> from bastion.data.capacity import assess_capacity
    >>> report = assess_capacity(dataset, target=0.95, model_score=0.97)   # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from bastion.data.check import dataset_finding
from bastion.data.choices import Task
from bastion.data.interface import Dataset, DatasetKind, DataValidationError
from bastion.findings import Finding, Severity

__all__ = ["Baseline", "CapacityReport", "LearningCurve", "Task", "assess_capacity",
           "count_parameters"]

CASES_PER_PREDICTOR = 10
IMAGES_PER_CLASS = 1000
_MAX_ROWS = 20_000
"""Learning curves and baselines use at most this many rows (a stratified subsample)."""


def count_parameters(model: Any) -> int:
    """Trainable parameters of a PyTorch module or a fitted scikit-learn linear model / MLP."""
    if hasattr(model, "parameters") and callable(model.parameters):
        return int(sum(p.numel() for p in model.parameters() if p.requires_grad))
    if hasattr(model, "coefs_"):
        return int(sum(w.size for w in model.coefs_) + sum(b.size for b in model.intercepts_))
    if hasattr(model, "coef_"):
        return int(np.size(model.coef_) + np.size(getattr(model, "intercept_", 0)))
    raise DataValidationError(f"cannot count the parameters of a {type(model).__name__}",
                              hint="pass the count yourself (parameters=…)")


@dataclass(frozen=True)
class LearningCurve:
    """Validation score against training-set size, and its extrapolation."""

    sizes: tuple[int, ...]
    """Training-set sizes tried."""
    scores: tuple[float, ...]
    """Mean cross-validated score at each size."""
    plateau: float | None
    """Fitted score the curve tends to (``c`` in ``c - a·n^(-b)``); None if the fit failed."""
    fit: tuple[float, float, float] | None
    """Fitted ``(a, b, c)``."""
    target: float | None
    """Score asked for."""
    samples_needed: int | None
    """Training samples the fit predicts for ``target`` (None: unreachable or no target)."""

    def predict(self, n: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The fitted curve at sizes ``n``."""
        if self.fit is None:
            raise DataValidationError("the learning curve could not be fitted")
        a, b, c = self.fit
        return np.asarray(c - a * np.asarray(n, dtype=np.float64) ** (-b), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"sizes": list(self.sizes), "scores": list(self.scores), "plateau": self.plateau,
                "fit": list(self.fit) if self.fit else None, "target": self.target,
                "samples_needed": self.samples_needed}


@dataclass(frozen=True)
class Baseline:
    """A simple model's cross-validated score."""

    name: str
    """Model name."""
    score: float
    """Mean score (accuracy, or R² for regression)."""
    spread: float
    """Standard deviation over folds."""


@dataclass(frozen=True)
class CapacityReport:
    """The result of :func:`assess_capacity`."""

    task: Task
    """The task assumed."""
    samples: int
    """Samples in the dataset."""
    features: int
    """Predictors (features)."""
    class_counts: dict[str, int]
    """Samples per class (classification and vision)."""
    parameters: int | None
    """The model's trainable parameters, when known."""
    curve: LearningCurve
    """The learning curve."""
    baselines: tuple[Baseline, ...]
    """Simple models, best first."""
    model_score: float | None
    """The complex model's score, when given, on the same metric."""
    min_gain: float
    """Least gain over the best baseline that justifies a complex model."""

    def findings(self, dataset: Dataset) -> list[Finding]:
        """What the rules of thumb, the curve and the baselines say."""
        out: list[Finding] = []
        if self.task is Task.REGRESSION and self.samples < CASES_PER_PREDICTOR * self.features:
            out.append(dataset_finding(
                dataset, "data.capacity.cases_per_predictor", Severity.MEDIUM,
                f"{self.samples} samples for {self.features} predictors: the 1-in-10 rule "
                f"asks for {CASES_PER_PREDICTOR * self.features}",
                remediation="gather more data, or use fewer predictors",
                samples=self.samples, needed=CASES_PER_PREDICTOR * self.features))
        if self.task is Task.VISION:
            short = {k: v for k, v in self.class_counts.items() if v < IMAGES_PER_CLASS}
            if short:
                out.append(dataset_finding(
                    dataset, "data.capacity.images_per_class", Severity.MEDIUM,
                    f"{len(short)} class(es) have fewer than {IMAGES_PER_CLASS} images",
                    detail="the NCSC rule of thumb for computer vision is 1,000 per class",
                    remediation="gather more, augment, or use transfer learning",
                    classes=short))
        if self.parameters is not None and self.parameters > self.samples:
            out.append(dataset_finding(
                dataset, "data.capacity.parameters", Severity.MEDIUM,
                f"the model has {self.parameters} parameters for {self.samples} samples",
                detail="capacity beyond the data lets a model memorise, poison included",
                remediation="use a smaller model or more data; regularise",
                parameters=self.parameters, samples=self.samples))
        curve = self.curve
        if curve.target is not None:
            if curve.samples_needed is None:
                out.append(dataset_finding(
                    dataset, "data.capacity.target_unreachable", Severity.MEDIUM,
                    f"the learning curve levels off at {curve.plateau or float('nan'):.3f}, "
                    f"below the target {curve.target}",
                    remediation="more of the same data will not help: improve features, "
                                "labels or the model family",
                    plateau=curve.plateau, target=curve.target))
            elif curve.samples_needed > self.samples:
                out.append(dataset_finding(
                    dataset, "data.capacity.insufficient", Severity.MEDIUM,
                    f"about {curve.samples_needed} training samples are needed for "
                    f"{curve.target}; the data has {self.samples}",
                    remediation="gather more data, augment, or lower the target",
                    needed=curve.samples_needed, samples=self.samples))
        if self.model_score is not None and self.baselines:
            best = self.baselines[0]
            gain = self.model_score - best.score
            if gain < self.min_gain:
                out.append(dataset_finding(
                    dataset, "data.capacity.unjustified", Severity.LOW,
                    f"the model scores {self.model_score:.3f}, {gain:+.3f} over "
                    f"{best.name} ({best.score:.3f})",
                    detail="a complex model that barely beats a simple one adds attack "
                           "surface and memorisation without benefit",
                    remediation=f"prefer {best.name}, or show the gain elsewhere",
                    gain=gain, baseline=best.name))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"task": self.task.value, "samples": self.samples, "features": self.features,
                "class_counts": self.class_counts, "parameters": self.parameters,
                "learning_curve": self.curve.to_dict(),
                "baselines": [{"name": b.name, "score": b.score, "spread": b.spread}
                              for b in self.baselines],
                "model_score": self.model_score}


def _guess_task(dataset: Dataset) -> Task:
    if dataset.kind is DatasetKind.IMAGE:
        return Task.VISION
    labels = dataset.labels
    if labels is not None and labels.dtype.kind == "f" and len(np.unique(labels)) > 20:
        return Task.REGRESSION
    return Task.CLASSIFICATION


def _fit_curve(sizes: npt.NDArray[np.float64], scores: npt.NDArray[np.float64],
               target: float | None, ceiling: float) -> LearningCurve:
    from scipy.optimize import curve_fit

    def law(n: npt.NDArray[np.float64], a: float, b: float, c: float) -> Any:
        return c - a * n ** (-b)

    fit = plateau = needed = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = curve_fit(law, sizes, scores, p0=(1.0, 0.5, float(scores[-1])),
                                  bounds=([0, 1e-3, -np.inf], [np.inf, 3.0, ceiling]),
                                  maxfev=20_000)
        a, b, c = (float(p) for p in params)
        fit, plateau = (a, b, c), c
        if target is not None and target < c:
            needed = int(np.ceil((a / (c - target)) ** (1 / b))) if a > 0 else int(sizes[0])
    except (RuntimeError, ValueError):
        pass
    return LearningCurve(tuple(int(s) for s in sizes), tuple(float(s) for s in scores),
                         plateau, fit, target, needed)


def assess_capacity(
    dataset: Dataset,
    *,
    task: Task | None = None,
    parameters: int | None = None,
    model_score: float | None = None,
    target: float | None = None,
    min_gain: float = 0.01,
    folds: int = 5,
    seed: int = 0,
) -> CapacityReport:
    """Rules of thumb, a learning curve and baselines for ``dataset``.

    Args:
        task: classification, regression or vision (guessed when omitted).
        parameters: the model's trainable parameters (see :func:`count_parameters`).
        model_score: the complex model's cross-validated score, to compare with baselines.
        target: the score wanted; the learning curve says how many samples it needs.
        min_gain: the least gain over the best baseline that justifies the model.
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import (
        KFold,
        StratifiedKFold,
        cross_val_score,
        learning_curve,
    )
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    task = task or _guess_task(dataset)
    regression = task is Task.REGRESSION
    x = np.nan_to_num(dataset.matrix)
    if dataset.labels is None:
        raise DataValidationError(f"{dataset.source}: capacity needs labels (the target)",
                                  hint="name the label column", param="label")
    y: npt.NDArray[Any] = dataset.labels.astype(np.float64) if regression else dataset.label_codes
    rng = np.random.default_rng(seed)
    if len(x) > _MAX_ROWS:
        keep = np.sort(rng.choice(len(x), _MAX_ROWS, replace=False))
        x, y = x[keep], y[keep]
    counts: dict[str, int] = {}
    if not regression:
        counts = {dataset.classes[c]: int(n)
                  for c, n in enumerate(np.bincount(dataset.label_codes))}
        smallest = int(np.bincount(y).min())
        if smallest < 2:
            raise DataValidationError("a class has fewer than two samples: no cross-validation",
                                      hint="collect more samples of the rare class")
        folds = min(folds, smallest)
        splitter: Any = StratifiedKFold(folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(folds, shuffle=True, random_state=seed)
    linear = (make_pipeline(StandardScaler(), Ridge()) if regression
              else make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on tiny subsets
        sizes, _, test_scores = learning_curve(
            linear, x, y, cv=splitter, train_sizes=np.linspace(0.1, 1.0, 8),
            scoring="r2" if regression else "accuracy", shuffle=True, random_state=seed)
    curve = _fit_curve(sizes.astype(np.float64), test_scores.mean(axis=1), target,
                       ceiling=1.0)
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    models: dict[str, Any] = {
        "linear regression (ridge)" if regression else "logistic regression": linear,
        "decision tree": (DecisionTreeRegressor if regression else DecisionTreeClassifier)(
            random_state=seed),
        # 50 rounds: a quick baseline, not a tuned competitor
        "gradient boosting": (HistGradientBoostingRegressor if regression
                              else HistGradientBoostingClassifier)(max_iter=50,
                                                                   random_state=seed),
    }
    baselines = []
    # one thread: OpenMP gradient boosting on a busy machine is slower with more
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        for name, model in models.items():
            s = cross_val_score(model, x, y, cv=splitter,
                                scoring="r2" if regression else "accuracy")
            baselines.append(Baseline(name, float(s.mean()), float(s.std())))
    baselines.sort(key=lambda b: -b.score)
    return CapacityReport(task, len(dataset), int(dataset.matrix.shape[1]), counts, parameters,
                          curve, tuple(baselines), model_score, min_gain)
