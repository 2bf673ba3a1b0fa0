"""Model extraction: how close a copy can an attacker train from the model's answers? (NCSC 3.3;
MITRE ATLAS "Extract AI Model", "Create Proxy AI Model").

    >>> from bastion.assess.extraction import run_extraction         # doctest: +SKIP
    >>> result = run_extraction(policy.extraction, predictor, x, y, seed=0, threshold=0.8)
    >>> [(c.budget, c.output.value, round(c.agreement, 2)) for c in result.cells][:2]
    [(100, 'probabilities', 0.71), (100, 'label', 0.64)]
    >>> result.recommendation.to_dict()["fidelity"]                  # doctest: +SKIP
    'label'

The attack is Copycat / KnockoffNets with the "random" query strategy (Correia-Silva et al.
2018; Orekondy et al. 2019), in Bastion's own code: ART's ``KnockoffNets`` trains its thief
through ART's ``fit``, which for a scikit-learn model drops every soft answer to its top label
and has no way to serve rounded or top-1 answers; the random strategy is only "query, label,
fit", written here in a few lines. The attacker:

1. holds a **thief dataset**: by default the ``--data`` rows themselves, split by the seed into
   a held-out **evaluation** part (at most ``samples`` rows, at most half) and the **query
   pool** (the rest); with ``thief=`` given, the pool is all of it and the evaluation part
   comes from the data;
2. spends each **budget** on the pool's rows in a seeded order; a budget larger than the pool
   is filled with copies of its rows plus Gaussian noise (σ 0.1 × each feature's spread,
   clipped to the pool's range): the attacker has no more real data, and a larger budget
   still buys more answers;
3. receives each answer **post-processed** per output mode (``probabilities``; ``rounded2``,
   2 decimals; ``top3``, the three likeliest classes and their scores; ``top1``, the top
   class and its score, the rest withheld as 0; ``label``, a one-hot row);
4. fits a **surrogate** (``mlp``: a standard-scaled ``MLPClassifier`` with 64 hidden units;
   ``logistic``) on the answers' top labels (``hard``), and with ``soft_labels`` also on the
   answers as class weights (``soft``: each query repeated once per class, weighted by its
   score; a withheld score gets an equal share of the mass the answer leaves out: exactly
   the soft-label cross-entropy); both deterministic for the seed;
5. scores each surrogate on the evaluation part: **agreement** with the target's labels and
   **accuracy** against the true labels; the cell reports the stronger variant.

The target is queried once, for the largest budget (each budget's queries are the first ones
of the next), plus once for the evaluation rows: every output mode is a post-processing of
those answers, as a gateway would serve them.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bastion.assess.interface import (
    ExtractionCell,
    ExtractionResult,
    OutputMode,
    Progress,
)
from bastion.assess.policy import ExtractionSpec, Metric, Policy
from bastion.models import Predictor

__all__ = ["DEFAULT_THRESHOLD", "run_extraction", "serve", "soft_targets", "threshold_for"]

Array = npt.NDArray[Any]
Clock = Callable[[], float]

DEFAULT_THRESHOLD: Final = 0.8
"""The agreement the recommendation keeps under when the policy states none."""
_NOISE: Final = 0.1
"""Noisy copies' σ, as a fraction of each feature's standard deviation in the pool."""
_MIN_WEIGHT: Final = 1e-3
"""Soft targets below this are dropped (they cost a row each and teach almost nothing)."""


def threshold_for(policy: Policy) -> tuple[float, str]:
    """The recommendation's threshold and where it came from: ``tests.extraction.threshold``,
    else the lowest ``max`` of the policy's agreement requirements, else
    :data:`DEFAULT_THRESHOLD`."""
    spec = policy.extraction
    if spec is not None and spec.threshold is not None:
        return spec.threshold, "test"
    bounds = [r.maximum for r in policy.requirements
              if r.metric is Metric.AGREEMENT and r.maximum is not None]
    if bounds:
        return min(bounds), "requirement"
    return DEFAULT_THRESHOLD, "default"


def serve(probabilities: Array, output: OutputMode) -> npt.NDArray[np.float64]:
    """What a query answers under ``output``, from the model's probabilities."""
    p = np.asarray(probabilities, dtype=np.float64)
    if output is OutputMode.PROBABILITIES:
        return p
    if output is OutputMode.ROUNDED2:
        return np.round(p, 2)
    top = np.zeros_like(p)
    if output is OutputMode.TOP3:
        kept = np.argsort(-p, axis=1, kind="stable")[:, :3]
        np.put_along_axis(top, kept, np.take_along_axis(p, kept, axis=1), axis=1)
        return top
    rows, best = np.arange(len(p)), p.argmax(axis=1)
    top[rows, best] = p[rows, best] if output is OutputMode.TOP1 else 1.0
    return top


def soft_targets(served: Array) -> npt.NDArray[np.float64]:
    """The class distribution an attacker reads from served answers: each row's mass left out
    (``1 −`` its sum) shared equally by the classes it withholds (scored 0), then normalised."""
    s = np.clip(np.asarray(served, dtype=np.float64), 0.0, None)
    withheld = s == 0
    missing = np.clip(1.0 - s.sum(axis=1), 0.0, None)
    count = withheld.sum(axis=1)
    share = np.divide(missing, count, out=np.zeros_like(missing), where=count > 0)
    s = s + withheld * share[:, None]
    total = s.sum(axis=1, keepdims=True)
    uniform = np.full_like(s, 1.0 / s.shape[1])
    return np.asarray(np.where(total > 0, s / np.where(total > 0, total, 1.0), uniform),
                      dtype=np.float64)


class _Surrogate:
    """The thief's model: standard scaling, then an MLP or a logistic regression."""

    def __init__(self, kind: str, seed: int) -> None:
        self._kind, self._seed = kind, seed
        self._model: Any = None
        self._only: int | None = None
        self._mean: Array = np.zeros(0)
        self._scale: Array = np.ones(0)

    def fit(self, x: Array, y: npt.NDArray[np.int64], weight: Array | None = None,
            reference: Array | None = None) -> _Surrogate:
        """Fit on ``x`` (flat rows) and class indices ``y`` (weighted); the scaling is read
        from ``reference`` (the queries, each once) when given."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.neural_network import MLPClassifier

        base = x if reference is None else reference
        self._mean = base.mean(axis=0)
        self._scale = np.where(base.std(axis=0) > 0, base.std(axis=0), 1.0)
        if len(np.unique(y)) < 2:  # one class seen: that is all the thief can answer
            self._only = int(y[0])
            return self
        model: Any = (MLPClassifier((64,), max_iter=200, random_state=self._seed)
                      if self._kind == "mlp" else LogisticRegression(max_iter=1000))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: the thief stops where it is
            model.fit((x - self._mean) / self._scale, y, sample_weight=weight)
        self._model = model
        return self

    def predict(self, x: Array) -> npt.NDArray[np.int64]:
        """Class indices for flat rows."""
        if self._only is not None:
            return np.full(len(x), self._only, dtype=np.int64)
        return np.asarray(self._model.predict((x - self._mean) / self._scale), dtype=np.int64)


def _queries(pool: Array, count: int, rng: np.random.Generator) -> tuple[Array, int]:
    """``count`` queries: the pool's rows in a seeded order, then noisy copies of them."""
    order = rng.permutation(len(pool))
    distinct = min(count, len(pool))
    chosen = pool[order[np.arange(count) % len(pool)]].copy()
    if count > len(pool):
        flat = pool.reshape(len(pool), -1)
        sigma = (_NOISE * flat.std(axis=0)).reshape(pool.shape[1:])
        extra = chosen[distinct:] + rng.normal(size=chosen[distinct:].shape) * sigma
        chosen[distinct:] = np.clip(extra, pool.min(axis=0), pool.max(axis=0))
    return chosen.astype(pool.dtype, copy=False), distinct


def run_extraction(spec: ExtractionSpec, predictor: Predictor, x: Array,
                   y: npt.NDArray[np.int64], *, seed: int, threshold: float,
                   threshold_source: str = "test", thief: Array | None = None,
                   progress: Progress | None = None, clock: Clock = time.monotonic,
                   ) -> ExtractionResult:
    """Steal ``predictor`` at every budget and output mode of ``spec``; score on held-out rows.

    Steps: 1. the evaluation part and the query pool (by the seed); 2. the queries for the
    largest budget and the target's answers, once; 3. per budget (ascending) and output
    mode, while time is left: the served answers, the surrogates, their figures.

    Args:
        x, y: the labelled data (inputs as the model takes them, class indices).
        thief: the attacker's own inputs (the query pool); default: part of ``x``.
    """
    start = clock()
    rng = np.random.default_rng([seed, 3])
    order = rng.permutation(len(y))  # 1
    if thief is None:
        n_eval = min(spec.samples, len(y) // 2)
        held, pool = order[:n_eval], x[order[n_eval:]]
    else:
        held, pool = order[:min(spec.samples, len(y))], np.asarray(thief, dtype=x.dtype)
    x_eval, y_eval = x[held], y[held]
    flat_eval = x_eval.reshape(len(x_eval), -1).astype(np.float64)
    target = np.asarray(predictor.predict_proba(x_eval)).argmax(axis=1)
    queries, distinct_all = _queries(pool, max(spec.budgets), rng)  # 2
    answers = np.asarray(predictor.predict_proba(queries), dtype=np.float64)
    flat_queries = queries.reshape(len(queries), -1).astype(np.float64)
    cells: list[ExtractionCell] = []
    complete = True
    for budget in spec.budgets:  # 3
        for output in spec.outputs:
            if cells and clock() - start > spec.max_seconds:
                complete = False
                break
            cells.append(_cell(spec, budget, output, answers[:budget], flat_queries[:budget],
                               min(budget, distinct_all), flat_eval, target, y_eval, seed))
            if progress is not None:
                progress.advance("extraction")
        if not complete:
            break
    return ExtractionResult(
        pool=len(pool), evaluated=len(held),
        target_accuracy=float(np.mean(target == y_eval)) if len(held) else 0.0,
        budgets=spec.budgets, outputs=spec.outputs, cells=tuple(cells), threshold=threshold,
        threshold_source=threshold_source, complete=complete, seconds=clock() - start,
        parameters={"budgets": list(spec.budgets), "outputs": [m.value for m in spec.outputs],
                    "surrogate": spec.surrogate, "soft_labels": spec.soft_labels,
                    "samples": spec.samples, "strategy": "random",
                    "thief": "data split" if thief is None else "given",
                    "noise": _NOISE})


def _cell(spec: ExtractionSpec, budget: int, output: OutputMode, answers: Array,
          flat: Array, distinct: int, flat_eval: Array, target: Array,
          y_eval: npt.NDArray[np.int64], seed: int) -> ExtractionCell:
    """One budget under one output mode: the hard surrogate, the soft one, the stronger."""
    served = serve(answers, output)
    labels = served.argmax(axis=1).astype(np.int64)
    variants: dict[str, dict[str, float]] = {}

    def score(model: _Surrogate) -> dict[str, float]:
        guess = model.predict(flat_eval)
        return {"agreement": float(np.mean(guess == target)),
                "accuracy": float(np.mean(guess == y_eval))}

    variants["hard"] = score(_Surrogate(spec.surrogate, seed).fit(flat, labels))
    if spec.soft_labels and output is not OutputMode.LABEL:
        weights = soft_targets(served)
        rows, classes = np.nonzero(weights >= _MIN_WEIGHT)
        variants["soft"] = score(_Surrogate(spec.surrogate, seed).fit(
            flat[rows], classes.astype(np.int64), weights[rows, classes], reference=flat))
    best = max(variants, key=lambda k: variants[k]["agreement"])  # ties: hard (first)
    return ExtractionCell(budget=budget, output=output, queries=len(answers),
                          distinct=distinct, agreement=variants[best]["agreement"],
                          accuracy=variants[best]["accuracy"], training=best,
                          variants=variants)
