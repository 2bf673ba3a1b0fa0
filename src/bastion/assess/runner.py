"""One assessment: a model, labelled data and a policy in; results, findings and examples out.

    >>> from bastion.assess import Policy, assess                  # doctest: +SKIP
    >>> loaded = load_model("model.pt")                            # scanned before it is loaded
    >>> done = assess(loaded.predictor, x, y, Policy.from_file("policy.yaml"),
    ...               model_sha256=loaded.sha256, source="model.pt")
    >>> [f.title for f in done.findings if f.severity != "info"]   # doctest: +SKIP
    ['failed: pgd_linf: robust accuracy at ε 0.1 ≥ 0.6']

Steps (:func:`assess`): 1. labels as the model's class indices; 2. a sample, in proportion
per class, the same for a seed; 3. the inputs' valid range: the policy's, else the model's
declared one, else the data's own; 4. each evasion test in turn, then membership inference on
the member (training) data and the non-members (by default the data given), then model
extraction on the whole data (a query pool and held-out rows, or a given thief set), then
out-of-distribution detectors fitted on the members (else half the data) and scored on the
rest against each shift, then the pruning sweep on the sample; 5. the requirements judged.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from bastion._fs import atomic_write
from bastion.assess import _art
from bastion.assess._target import Target
from bastion.assess.evasion import run_test
from bastion.assess.interface import (
    AssessError,
    Attack,
    EvasionResult,
    ExtractionResult,
    MembershipResult,
    OodResult,
    Progress,
    PruningResult,
    SkippedTest,
    result_from_dict,
)
from bastion.assess.policy import Policy
from bastion.assess.requirements import judge
from bastion.findings import Finding, Location
from bastion.models import Predictor

__all__ = ["Assessment", "Result", "assess", "class_indices", "sample_order"]

Result = (EvasionResult | MembershipResult | ExtractionResult | OodResult | PruningResult
          | SkippedTest)
"""What one test of a policy gives."""
_NO_MEMBERS = "needs member and non-member data: pass --members"

_LIBRARIES = ("adversarial-robustness-toolbox", "numpy", "torch", "scikit-learn")


@dataclass(frozen=True, eq=False)
class Assessment:
    """Everything one assessment found, bound to the model, data and policy it ran on."""

    source: str
    """The model it assessed (a path)."""
    model_sha256: str | None
    """SHA-256 of the model's bytes (``LoadedModel.sha256``), when it came from a file."""
    policy: Policy
    """The policy, with its digest."""
    data_sha256: str
    """SHA-256 of the attacked samples and their labels, as the model took them."""
    clip: tuple[float, float]
    """The inputs' valid range attacks clipped to."""
    clip_source: str
    """Where it came from: ``policy``, ``model`` or ``data``."""
    classes: tuple[str, ...]
    """Each class index's label."""
    results: tuple[Result, ...]
    """One per test of the policy, in its order (membership last)."""
    findings: tuple[Finding, ...]
    """Summaries, failures to run or finish, and one pass or fail per requirement."""
    libraries: dict[str, str]
    """Versions of the libraries the figures depend on."""
    images: npt.NDArray[np.float32] | None = None
    """The attacked samples as NHWC images, when the data are images (for the report)."""
    cached: str | None = None
    """When the figures were read back from a cache: the time they were computed (a UTC
    stamp, :func:`bastion._time.utc_stamp`); ``None`` for figures measured by this run."""
    membership_data: Mapping[str, str | None] | None = None
    """With a membership test: SHA-256 of the member and non-member data it was given
    (``members_sha256``, ``non_members_sha256``; ``None`` for data not given)."""
    extraction_data: Mapping[str, str | None] | None = None
    """With an extraction test: SHA-256 of the thief inputs it queried with
    (``thief_sha256``; ``None``: part of the data itself)."""
    ood_data: Mapping[str, str | None] | None = None
    """With an OoD test: SHA-256 of the ``--ood`` set (``ood_sha256``, ``None``: not given)
    and what the detectors were fitted on (``fitted_on``: ``members`` or ``data``)."""

    @property
    def ood_detector(self) -> Any:
        """The OoD test's chosen, fitted detector (an :class:`~bastion.assess.ood.OodDetector`),
        bound to the model; ``None`` without one, or for figures read from a cache."""
        found = next((r for r in self.results if isinstance(r, OodResult)), None)
        return None if found is None else found.detector

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what a stored record will hold)."""
        return {"source": self.source, "model_sha256": self.model_sha256,
                "policy": {"source": self.policy.source, "digest": self.policy.digest,
                           "risk": self.policy.risk.value if self.policy.risk else None,
                           "base_digest": self.policy.base_digest,
                           "overrides": dict(self.policy.overrides)},
                "seed": self.policy.seed, "data_sha256": self.data_sha256,
                "clip": list(self.clip), "clip_source": self.clip_source,
                "classes": list(self.classes), "libraries": self.libraries,
                "tests": [r.to_dict() for r in self.results],
                "findings": [f.to_dict() for f in self.findings],
                "from_cache": self.cached,
                "membership_data": (None if self.membership_data is None
                                    else dict(self.membership_data)),
                "extraction_data": (None if self.extraction_data is None
                                    else dict(self.extraction_data)),
                "ood_data": None if self.ood_data is None else dict(self.ood_data)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], policy: Policy) -> Self:
        """Inverse of :meth:`to_dict`, under the ``policy`` it was made with (a record holds
        only the policy's digest: it must be this policy's). No examples, no images.

        Raises:
            AssessError: ``data`` is not an assessment's :meth:`to_dict`, or was made under
                another policy or seed.
        """
        from bastion.errors import BastionError

        try:
            recorded = data["policy"]
            if recorded["digest"] != policy.digest or data["seed"] != policy.seed:
                raise ValueError("it was made under another policy")
            low, high = (float(v) for v in data["clip"])
            model = data["model_sha256"]
            cached = data.get("from_cache")
            shared = data.get("membership_data")
            thief = data.get("extraction_data")
            ood = data.get("ood_data")
            return cls(source=str(data["source"]),
                       model_sha256=None if model is None else str(model), policy=policy,
                       data_sha256=str(data["data_sha256"]), clip=(low, high),
                       clip_source=str(data["clip_source"]),
                       classes=tuple(str(c) for c in data["classes"]),
                       results=tuple(result_from_dict(r) for r in data["tests"]),
                       findings=tuple(Finding.from_dict(f) for f in data["findings"]),
                       libraries={str(k): str(v) for k, v in dict(data["libraries"]).items()},
                       cached=None if cached is None else str(cached),
                       membership_data=_digests(shared), extraction_data=_digests(thief),
                       ood_data=_digests(ood))
        except (KeyError, TypeError, ValueError, AttributeError, BastionError) as exc:
            detail = (f"it has no {exc.args[0]!r}" if isinstance(exc, KeyError)
                      else exc.args[0] if exc.args else type(exc).__name__)
            raise AssessError(f"not an assessment record of this policy: {detail}",
                              hint="run the assessment again") from None

    def save_adversarial(self, path: str | Path) -> int:
        """Write every test's adversarial examples to an ``.npz`` (``x``, ``y``, ``x_adv``,
        ``eps``, ``attack``, ``fooled``; no pickled objects), atomically. Returns the count."""
        import io

        kept = [r for r in self.results if isinstance(r, EvasionResult) and r.examples]
        if not kept:
            raise AssessError("no adversarial examples to save: no test ran",
                              hint="see the findings for why")
        parts = {key: np.concatenate([getattr(r.examples, key) for r in kept])
                 for key in ("x", "y", "x_adv", "eps", "fooled")}
        parts["attack"] = np.concatenate([np.full(len(r.examples.y), r.attack.value)
                                          for r in kept if r.examples])
        buffer = io.BytesIO()
        np.savez_compressed(buffer, allow_pickle=False, **parts)
        atomic_write(Path(path), buffer.getvalue())
        return len(parts["y"])


def _digests(data: Any) -> dict[str, str | None] | None:
    """A recorded mapping of names to digests (or ``None``) read back."""
    return None if data is None else {str(k): None if v is None else str(v)
                                      for k, v in dict(data).items()}


def class_indices(labels: npt.ArrayLike, predictor: Predictor, n_classes: int,
                  ) -> npt.NDArray[np.int64]:
    """Labels as positions in the model's classes: by name when the model names them (a
    scikit-learn ``classes_``), else as the integers ``0 … n_classes-1`` themselves.

    Raises:
        AssessError: a label the model does not know.
    """
    values = np.asarray(labels)
    names = predictor.spec.labels
    if names is not None:
        table = {str(n): i for i, n in enumerate(names)}
        unknown = sorted({str(v) for v in values} - set(table))
        if unknown:
            raise AssessError(f"labels the model does not know: {', '.join(unknown[:5])}",
                              hint=f"the model's classes are {', '.join(map(str, names[:20]))}")
        return np.array([table[str(v)] for v in values], dtype=np.int64)
    try:
        numbers = values.astype(np.float64)
    except ValueError:
        numbers = np.array([np.nan])
    if not (np.isfinite(numbers).all() and (numbers == np.round(numbers)).all()
            and numbers.min(initial=0) >= 0 and numbers.max(initial=0) < n_classes):
        raise AssessError(
            f"the model names no classes, so labels must be class indices 0 … {n_classes - 1}",
            hint="give the labels as the integers the model was trained on")
    return numbers.astype(np.int64)


def sample_order(y: npt.NDArray[np.int64], seed: int) -> npt.NDArray[np.intp]:
    """Every index once, shuffled by ``seed`` and interleaved by class, so any prefix holds
    each class in proportion (a smaller black-box sample is the start of the white-box one)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    key = np.empty(len(y))
    for c in np.unique(y):
        members = perm[y[perm] == c]
        key[members] = (np.arange(len(members)) + 0.5) / len(members)
    return perm[np.argsort(key[perm], kind="stable")]


def _clip(policy: Policy, predictor: Predictor, x: npt.NDArray[Any],
          ) -> tuple[tuple[float, float], str]:
    if policy.input_range is not None:
        return policy.input_range, "policy"
    if predictor.spec.value_range is not None:
        return predictor.spec.value_range, "model"
    low, high = float(np.min(x)), float(np.max(x))
    return (low, high if high > low else low + 1.0), "data"


def _versions() -> dict[str, str]:
    found = {}
    for name in _LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _digest(x: npt.NDArray[Any], y: npt.NDArray[Any]) -> str:
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def assess(predictor: Predictor, x: npt.ArrayLike, labels: npt.ArrayLike | None,
           policy: Policy, *, source: str = "<model>", model_sha256: str | None = None,
           images: npt.NDArray[Any] | None = None, progress: Progress | None = None,
           keep_examples: bool = False, clock: Callable[[], float] = time.monotonic,
           members: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
           non_members: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
           shadow: Any = None, thief: npt.ArrayLike | None = None,
           ood: npt.ArrayLike | None = None) -> Assessment:
    """Run ``policy``'s tests against ``predictor`` on ``x`` (exactly what the model takes)
    labelled ``labels``; with no labels or no samples every test is a failed requirement.

    Args:
        images: the same samples as NHWC images, to draw clean against adversarial ones.
        keep_examples: keep the adversarial examples (for :meth:`Assessment.save_adversarial`).
        members: the membership test's member data, ``(inputs, labels)`` as the model takes
            them: rows it was trained on. Without them the test is a failed requirement.
        non_members: rows it was not trained on; default ``x`` and ``labels`` (test data).
        shadow: LiRA's shadow template when the model cannot be cloned (an unfitted
            scikit-learn estimator or a ``torch.nn.Module`` of its architecture).
        thief: the extraction test's query pool, inputs as the model takes them (no labels:
            the attacker labels them with the model); default: part of ``x``, the rest held
            out to score the stolen models.
        ood: the OoD test's own out-of-distribution inputs, as the model takes them (scored
            beside the generated shifts). Its detectors are fitted on ``members`` when given
            (the training rows), else on half of ``x``.

    Raises:
        AssessError: labels the model does not know.
    """
    inputs = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    where = Location(path=source)
    n_classes = predictor.spec.n_classes or (
        predictor.predict_proba(inputs[:1]).shape[1] if len(inputs) else 1)
    names = predictor.spec.labels
    classes = tuple(str(n) for n in names) if names else tuple(map(str, range(n_classes)))
    shared = None if policy.membership is None else {
        "members_sha256": None if members is None else _digest(*_arrays(members)),
        "non_members_sha256": _digest(*_arrays(non_members)) if non_members is not None
        else None}
    stolen = None if policy.extraction is None else {
        "thief_sha256": None if thief is None else _digest(_as_inputs(thief), np.zeros(0))}
    unusual = None if policy.ood is None else {
        "ood_sha256": None if ood is None else _digest(_as_inputs(ood), np.zeros(0)),
        "fitted_on": "data" if members is None else "members"}
    if labels is None or not len(inputs):
        why = "the data has no labels" if labels is None else "the data has no samples"
        results: Sequence[Result] = [
            SkippedTest(Attack(name), why, "give labelled data (--label names the column)")
            for name in policy.test_names]
        return Assessment(source, model_sha256, policy, _digest(inputs, np.zeros(0)), (0, 1),
                          "none", classes, tuple(results),
                          tuple(judge(policy, results, where)), _versions(),
                          membership_data=shared, extraction_data=stolen, ood_data=unusual)
    y = class_indices(labels, predictor, n_classes)  # 1
    chosen = sample_order(y, policy.seed)[:policy.sample_size]  # 2
    clip, clip_source = _clip(policy, predictor, inputs)  # 3
    target = Target(predictor, np.clip(inputs[chosen], *clip), y[chosen], classes, clip,
                    policy.seed, keep_examples)
    results = [run_test(spec, target, progress=progress, clock=clock)  # 4
               for spec in policy.tests]
    if policy.membership is not None:
        others = (inputs, y) if non_members is None else _labelled(non_members, predictor,
                                                                  n_classes)
        results.append(_membership(policy, predictor, members, others, n_classes, progress,
                                   clock, shadow))
    if policy.extraction is not None:
        results.append(_extraction(policy, predictor, inputs, y,
                                   None if thief is None else _as_inputs(thief), progress,
                                   clock))
    if policy.ood is not None:
        fit = None if members is None else _labelled(members, predictor, n_classes)
        results.append(_ood(policy, predictor, inputs, y, fit, None if ood is None
                            else _as_inputs(ood), clip, model_sha256, progress, clock))
    if policy.pruning is not None:
        results.append(_pruning(policy, target, progress, clock))
    return Assessment(source, model_sha256, policy, _digest(target.x, target.y), clip,
                      clip_source, classes, tuple(results),
                      tuple(judge(policy, results, where)), _versions(),  # 5
                      images=None if images is None else np.asarray(images,
                                                                    np.float32)[chosen],
                      membership_data=shared, extraction_data=stolen, ood_data=unusual)


def _ood(policy: Policy, predictor: Predictor, x: npt.NDArray[np.float32],
         y: npt.NDArray[np.int64],
         fit: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]] | None,
         given: npt.NDArray[np.float32] | None, clip: tuple[float, float],
         model_sha256: str | None, progress: Progress | None, clock: Callable[[], float],
         ) -> OodResult | SkippedTest:
    """The OoD test, or why it cannot run: too few rows to fit on and score.

    The detectors are fitted on ``fit`` (the members) when given, scored on a sample of the
    data; else the data's class-interleaved order is cut in two: the first half fits, the
    second is scored (never the same row in both)."""
    from bastion.assess.ood import run_ood
    from bastion.models.interface import ModelError

    spec = policy.ood
    if spec is None:  # pragma: no cover - the caller checks
        raise AssessError("the policy runs no OoD test")
    order = sample_order(y, policy.seed)
    if fit is None:
        half = len(order) // 2
        fit_rows, eval_rows = order[:half][:spec.fit_samples], order[half:][:spec.samples]
        fit = (x[fit_rows], y[fit_rows])
    else:
        fit_order = sample_order(fit[1], policy.seed)[:spec.fit_samples]
        fit, eval_rows = (fit[0][fit_order], fit[1][fit_order]), order[:spec.samples]
    if len(fit[1]) < 10 or len(eval_rows) < 10 or (given is not None and not len(given)):
        return SkippedTest(Attack.OOD, "needs at least 10 rows to fit the detectors on and 10 "
                           "to score them on (and a non-empty --ood set)",
                           "give more labelled rows in --data, or --members TRAIN to fit on")
    if progress is not None:
        progress.start(Attack.OOD.value, len(spec.detectors))
    try:
        return run_ood(spec, predictor, fit=fit, evaluation=(x[eval_rows], y[eval_rows]),
                       clip=clip, seed=policy.seed, given=given, model_sha256=model_sha256,
                       progress=progress, clock=clock)
    except ModelError as exc:
        return SkippedTest(Attack.OOD, exc.message, exc.hint or "see the model's capabilities")
    finally:
        if progress is not None:
            progress.stop(Attack.OOD.value)


def _pruning(policy: Policy, target: Target, progress: Progress | None,
             clock: Callable[[], float]) -> PruningResult | SkippedTest:
    """The pruning sweep on the white-box sample (it draws its own progress bar)."""
    from bastion.assess.pruning import run_pruning

    spec = policy.pruning
    if spec is None:  # pragma: no cover - the caller checks
        raise AssessError("the policy runs no pruning test")
    return run_pruning(target.predictor, target.x, target.y, levels=spec.levels,
                       max_accuracy_loss=spec.max_accuracy_loss, robust=spec.robust,
                       classes=target.classes, clip=target.clip, seed=policy.seed,
                       max_seconds=spec.max_seconds, progress=progress, clock=clock)


def _as_inputs(data: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Unlabelled inputs (the thief pool, the OoD set) as the tests take them."""
    return np.ascontiguousarray(np.asarray(data, dtype=np.float32))


def _extraction(policy: Policy, predictor: Predictor, x: npt.NDArray[np.float32],
                y: npt.NDArray[np.int64], thief: npt.NDArray[np.float32] | None,
                progress: Progress | None, clock: Callable[[], float],
                ) -> ExtractionResult | SkippedTest:
    """The extraction test, or why it cannot run: too little data, or a model without
    probabilities."""
    from bastion.assess.extraction import run_extraction, threshold_for
    from bastion.models.interface import ModelError

    spec = policy.extraction
    if spec is None:  # pragma: no cover - the caller checks
        raise AssessError("the policy runs no extraction test")
    if len(y) < 4 or (thief is not None and not len(thief)):
        return SkippedTest(Attack.EXTRACTION, "needs rows to query and rows to score the "
                           "stolen model on: the data is too small", "give more labelled "
                           "rows in --data (or a --thief set to query with)")
    threshold, source = threshold_for(policy)
    if progress is not None:
        progress.start(Attack.EXTRACTION.value, len(spec.budgets) * len(spec.outputs))
    try:
        return run_extraction(spec, predictor, x, y, seed=policy.seed, threshold=threshold,
                              threshold_source=source, thief=thief, progress=progress,
                              clock=clock)
    except ModelError as exc:
        return SkippedTest(Attack.EXTRACTION, exc.message,
                           exc.hint or "assess a model that gives class probabilities")
    finally:
        if progress is not None:
            progress.stop(Attack.EXTRACTION.value)


def _arrays(data: tuple[npt.ArrayLike, npt.ArrayLike],
            ) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    return (np.ascontiguousarray(np.asarray(data[0], dtype=np.float32)),
            np.ascontiguousarray(np.asarray(data[1]).astype(str)))


def _labelled(data: tuple[npt.ArrayLike, npt.ArrayLike], predictor: Predictor,
              n_classes: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    x = np.ascontiguousarray(np.asarray(data[0], dtype=np.float32))
    return x, class_indices(data[1], predictor, n_classes)


def _membership(policy: Policy, predictor: Predictor,
                members: tuple[npt.ArrayLike, npt.ArrayLike] | None,
                non_members: tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]],
                n_classes: int, progress: Progress | None, clock: Callable[[], float],
                shadow: Any) -> MembershipResult | SkippedTest:
    """The membership test, or why it cannot run: no members, or no non-members."""
    from bastion.assess.membership import run_membership
    from bastion.models.interface import ModelError

    spec = policy.membership
    if spec is None:  # pragma: no cover - the caller checks
        raise AssessError("the policy runs no membership test")
    given = None if members is None else _labelled(members, predictor, n_classes)
    if given is None or not len(given[1]) or not len(non_members[1]):
        return SkippedTest(Attack.MEMBERSHIP, _NO_MEMBERS if given is None or not len(given[1])
                           else "needs member and non-member data: the non-members are empty",
                           "pass --members TRAIN (the rows the model was trained on; "
                           "--non-members default to --data, rows it was not)")
    _art.require_art()
    if progress is not None:
        progress.start(Attack.MEMBERSHIP.value, len(spec.attacks))
    try:
        return run_membership(spec, predictor, given, non_members, n_classes=n_classes,
                              seed=policy.seed, progress=progress, clock=clock,
                              shadow=shadow)
    except ModelError as exc:
        return SkippedTest(Attack.MEMBERSHIP, exc.message,
                           exc.hint or "assess a model that gives class probabilities")
    finally:
        if progress is not None:
            progress.stop(Attack.MEMBERSHIP.value)
