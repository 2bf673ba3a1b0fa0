"""Pruning: how much of the model can go before its accuracy, clean and under attack, does?
(NCSC 2.6, "reduce the model's size and complexity").

    >>> from bastion.assess.pruning import run_pruning                 # doctest: +SKIP
    >>> result = run_pruning(predictor, x, y, levels=[0.0, 0.5, 0.9], max_accuracy_loss=0.01,
    ...                      robust=None, classes=classes, clip=(0.0, 1.0), seed=0,
    ...                      max_seconds=60)
    >>> [(l.sparsity, round(l.accuracy, 2), l.nonzero) for l in result.levels]
    [(0.0, 0.93, 16826), (0.5, 0.92, 8438), (0.9, 0.75, 1728)]
    >>> result.chosen                                                  # doctest: +SKIP
    0.5

A smaller model has less room for a backdoor to hide in and is cheaper to serve; how small it
can get without losing what it is for is a measurement, not a guess. Per sparsity level, in
the order asked:

1. a **pruned copy** (the model itself is never touched): for a PyTorch network, global
   magnitude pruning (L1, unstructured; Han et al. 2015) over the weights of every
   ``Linear`` and ``Conv1d/2d/3d`` layer together, through ``torch.nn.utils.prune``, the
   masks then made permanent (the zeros are real weights); for a scikit-learn random forest
   or extra-trees ensemble, the first trees only (its trees are independent draws, so fewer
   of them is the forest's own way of being smaller);
2. its **clean accuracy** on the sample and, with an evasion attack given, its **robust
   accuracy** at that attack's ε (:func:`bastion.assess.evasion.run_test`, seeded alike for
   every level): pruning can keep the one and lose the other;
3. its **size** (non-zero parameters, zlib-compressed bytes) and **latency** (median of 5
   timed ``predict_proba`` calls; unstructured zeros make dense kernels no faster, and the
   figure says so rather than assuming a speed-up).

``chosen`` is the sparsest level whose clean accuracy stays within ``max_accuracy_loss`` of
the unpruned model's. A model that cannot be pruned here (TorchScript, ONNX, another
estimator, a remote model) is a :class:`~bastion.assess.interface.SkippedTest` saying what
would let it run.
"""

from __future__ import annotations

import copy
import statistics
import time
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from bastion.assess._target import Target
from bastion.assess.interface import Attack, Progress, PruningLevel, PruningResult, SkippedTest
from bastion.models import Predictor
from bastion.models.interface import CapabilityError, ModelError
from bastion.models.sklearn_model import SklearnPredictor, sklearn_predictor
from bastion.models.torch_model import TorchPredictor

if TYPE_CHECKING:
    from bastion.assess.policy import AttackSpec

__all__ = ["FOREST_METHOD", "TORCH_METHOD", "PruningLevel", "PruningResult", "prune",
           "run_pruning"]

Array = npt.NDArray[Any]
Clock = Callable[[], float]

TORCH_METHOD: Final = "global magnitude (L1, unstructured) over Linear and Conv weights"
"""``PruningResult.method`` for a PyTorch network."""
FOREST_METHOD: Final = "fewer trees (the first k of the ensemble)"
"""``PruningResult.method`` for a scikit-learn forest."""
_TIMED_CALLS: Final = 5
"""``predict_proba`` calls timed per level (the latency is their median)."""
_LATENCY_ROWS: Final = 256
"""At most this many sample rows per timed call."""
_ZLIB_LEVEL: Final = 6
_APPLIES: Final = ("pruning applies to PyTorch networks (an nn.Module) and scikit-learn "
                   "forests (RandomForestClassifier, ExtraTreesClassifier, or a Pipeline "
                   "ending in one)")


def _skipped(reason: str, remedy: str) -> SkippedTest:
    return SkippedTest(attack=Attack.PRUNING, reason=reason, remedy=remedy)


# ------------------------------------------------------------------------ the pruned copies


def _prunable(module: Any) -> list[tuple[Any, str]]:
    """``(layer, "weight")`` for every ``Linear`` and ``Conv1d/2d/3d`` weight, each tensor
    once (a weight shared by two layers would otherwise be pruned twice over)."""
    import torch

    kinds = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    seen: set[int] = set()
    found: list[tuple[Any, str]] = []
    for layer in module.modules():
        weight = getattr(layer, "weight", None)
        if (isinstance(layer, kinds) and isinstance(weight, torch.nn.Parameter)
                and not isinstance(weight, torch.nn.parameter.UninitializedParameter)
                and id(weight) not in seen):
            seen.add(id(weight))
            found.append((layer, "weight"))
    return found


def _forest(estimator: Any) -> Any:
    """The random forest or extra-trees ensemble ``estimator`` is or ends in, else ``None``."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        estimator = estimator.steps[-1][1]
    ok = isinstance(estimator, RandomForestClassifier | ExtraTreesClassifier)
    return estimator if ok and hasattr(estimator, "estimators_") else None


def _method(predictor: Predictor) -> str:
    """How ``predictor`` is pruned.

    Raises:
        CapabilityError: it cannot be, with what would let it.
    """
    if isinstance(predictor, TorchPredictor):
        import torch

        if isinstance(predictor.module, torch.jit.ScriptModule):
            raise CapabilityError(
                "cannot prune a TorchScript module: its layers are compiled code, and "
                "torch.nn.utils.prune re-parametrises nn.Module layers only",
                hint="load the nn.Module itself: a state_dict with --arch, or a whole saved "
                     "module")
        if not _prunable(predictor.module):
            raise CapabilityError(
                "the network has no Linear or Conv1d/2d/3d weight to prune",
                hint="pruning zeroes those layers' weights; drop tests.pruning for this model")
        return TORCH_METHOD
    if isinstance(predictor, SklearnPredictor):
        if _forest(predictor.estimator) is not None:
            return FOREST_METHOD
        what = type(predictor.estimator).__name__
    else:
        what = type(predictor).__name__
    raise CapabilityError(
        f"{_APPLIES}, not a {what}",
        hint="assess the PyTorch network or the forest itself (a model exported to ONNX: "
             "the nn.Module it came from), or drop tests.pruning for this model")


def prune(predictor: Predictor, sparsity: float) -> Predictor:
    """A pruned copy of ``predictor`` at ``sparsity``; the original is never modified, and at
    ``0`` it is returned as it is (nothing to remove).

    Raises:
        ValueError: ``sparsity`` outside ``[0, 1)``.
        CapabilityError: a model this test cannot prune (see :func:`run_pruning`).
    """
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), not {sparsity}")
    method = _method(predictor)
    if sparsity == 0.0:
        return predictor
    if method == TORCH_METHOD:
        assert isinstance(predictor, TorchPredictor)
        return _pruned_network(predictor, sparsity)
    assert isinstance(predictor, SklearnPredictor)
    estimator = copy.deepcopy(predictor.estimator)
    forest = _forest(estimator)
    kept = max(1, round((1.0 - sparsity) * len(forest.estimators_)))
    forest.estimators_ = forest.estimators_[:kept]
    forest.n_estimators = kept
    return sklearn_predictor(estimator, spec=predictor.spec)


def _pruned_network(predictor: TorchPredictor, sparsity: float) -> TorchPredictor:
    """Global L1 pruning of a copy; ``prune.remove`` makes the masks permanent, so the copy is
    an ordinary network with zeros in it (no hooks, no ``weight_orig``)."""
    import torch
    from torch.nn.utils import prune as torch_prune

    module = copy.deepcopy(predictor.module)
    params = _prunable(module)
    with torch.no_grad():
        torch_prune.global_unstructured(params, pruning_method=torch_prune.L1Unstructured,
                                        amount=float(sparsity))
        for layer, name in params:
            torch_prune.remove(layer, name)  # type: ignore[no-untyped-call]
    return TorchPredictor(module, spec=predictor.spec, output=predictor.output)


# ------------------------------------------------------------------------------ the figures


def _size(predictor: Predictor, method: str) -> tuple[int, int, int | None]:
    """``(parameters, nonzero, compressed_bytes)`` as :class:`PruningLevel` defines them."""
    if method == FOREST_METHOD:
        assert isinstance(predictor, SklearnPredictor)
        trees = _forest(predictor.estimator).estimators_
        return len(trees), sum(int(t.tree_.node_count) for t in trees), None
    import torch

    assert isinstance(predictor, TorchPredictor)
    module = predictor.module
    total = sum(int(getattr(layer, name).numel()) for layer, name in _prunable(module))
    nonzero = 0
    packer = zlib.compressobj(_ZLIB_LEVEL)
    raw: list[bytes] = []
    with torch.no_grad():
        for p in module.parameters():
            t = p.detach().cpu().contiguous().reshape(-1)
            nonzero += int(torch.count_nonzero(t))
            raw.append(packer.compress(t.view(torch.uint8).numpy().tobytes()))
    raw.append(packer.flush())
    return total, nonzero, sum(len(b) for b in raw)


def _latency(predictor: Predictor, x: Array) -> float:
    """Milliseconds per 1,000 rows: the median of :data:`_TIMED_CALLS` timed calls (the
    wall clock of this machine, not the budget's clock)."""
    batch = x[:_LATENCY_ROWS]
    if len(batch) == 0:
        return 0.0
    times = []
    for _ in range(_TIMED_CALLS):
        begin = time.perf_counter()
        predictor.predict_proba(batch)
        times.append(time.perf_counter() - begin)
    return statistics.median(times) * 1000.0 * 1000.0 / len(batch)


def _accuracy(predictor: Predictor, x: Array, y: npt.NDArray[np.int64]) -> float:
    return float(np.mean(predictor.predict(x) == y)) if len(y) else 0.0


def run_pruning(predictor: Predictor, x: Array, y: npt.NDArray[np.int64], *,
                levels: Sequence[float], max_accuracy_loss: float,
                robust: AttackSpec | None, classes: tuple[str, ...], clip: tuple[float, float],
                seed: int, max_seconds: float, progress: Progress | None = None,
                clock: Clock = time.monotonic) -> PruningResult | SkippedTest:
    """Prune ``predictor`` at every level, in order, and measure each copy.

    Steps: 1. how the model is pruned (or why it cannot be); 2. the unpruned accuracy, the
    reference ``chosen`` is read against; 3. per level, while time is left: the pruned copy,
    its accuracy, robust accuracy, size and latency; 4. ``chosen``.

    Args:
        x, y: the labelled sample (inputs as the model takes them, class indices).
        levels: sparsities in ``[0, 1)``, ascending (the policy checks them).
        robust: an :class:`~bastion.assess.policy.AttackSpec` with one ε, run on every
            pruned copy; ``None``: clean accuracy only. With more ε, the largest one's point
            is taken.
        classes, clip, seed: as :class:`~bastion.assess._target.Target` takes them.

    Returns:
        The result (``complete=False`` when its time ran out), or a :class:`SkippedTest`
        saying why the model cannot be pruned here.
    """
    from bastion.assess.evasion import run_test  # it imports the policy, which may import us

    bad = [s for s in levels if not 0.0 <= s < 1.0]
    if bad or not levels:
        raise ValueError(f"pruning levels must be in [0, 1), at least one: {list(levels)}")
    start = clock()
    try:
        method = _method(predictor)  # 1
    except ModelError as exc:
        return _skipped(exc.message, exc.hint or "drop tests.pruning for this model")
    if progress is not None:
        progress.start(Attack.PRUNING.value, len(levels))
    try:
        baseline = _accuracy(predictor, x, y)  # 2
        parameters: dict[str, Any] = {
            "levels": list(levels), "max_accuracy_loss": max_accuracy_loss,
            "attack": None if robust is None else robust.attack.value,
            "eps": None if robust is None else robust.eps[-1],
            "norm": None if robust is None else robust.norm.value,
            "unpruned_accuracy": baseline, "latency_rows": min(len(y), _LATENCY_ROWS)}
        done: list[PruningLevel] = []
        complete = True
        for sparsity in levels:  # 3
            if done and clock() - start > max_seconds:
                complete = False
                break
            pruned = prune(predictor, sparsity)
            robust_accuracy: float | None = None
            if robust is not None:
                found = run_test(robust, Target(pruned, x, y, classes, clip, seed, False))
                if isinstance(found, SkippedTest):
                    parameters.setdefault("robust_skipped", found.reason)
                else:
                    robust_accuracy = found.curve[-1].robust_accuracy if found.curve else None
            total, nonzero, packed = _size(pruned, method)
            done.append(PruningLevel(
                sparsity=float(sparsity), accuracy=_accuracy(pruned, x, y),
                robust_accuracy=robust_accuracy, parameters=total, nonzero=nonzero,
                compressed_bytes=packed, latency_ms=_latency(pruned, x)))
            if progress is not None:
                progress.advance(Attack.PRUNING.value)
        keeps = [v.sparsity for v in done if v.accuracy >= baseline - max_accuracy_loss]  # 4
        return PruningResult(
            method=method, samples=len(y), levels=tuple(done),
            planned=tuple(float(s) for s in levels), max_accuracy_loss=max_accuracy_loss,
            chosen=max(keeps) if keeps else None, complete=complete,
            seconds=clock() - start, parameters=parameters)
    finally:
        if progress is not None:
            progress.stop(Attack.PRUNING.value)
