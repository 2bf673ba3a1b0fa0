"""Out-of-distribution detection: will the model notice inputs unlike its training data? (NCSC
2.6; the gateway abstains or alerts on what a detector flags.)

    >>> from bastion.assess.ood import run_ood                      # doctest: +SKIP
    >>> result = run_ood(policy.ood, predictor, fit=(x_train, y_train), evaluation=(x, y),
    ...                  clip=(0.0, 1.0), seed=0)
    >>> [(f.detector.value, f.shift.value, round(f.auroc, 2)) for f in result.figures][:2]
    [('msp', 'noise', 0.97), ('msp', 'blur', 0.71)]
    >>> result.detector.save("model.ood.npz")                        # doctest: +SKIP

Each detector is fitted on in-distribution rows (the training data, ``--members``, when given;
else half of the test sample) and scored on in-distribution rows it never saw against each
**shift**: the user's own ``--ood`` set, uniform noise, blurred or low-contrast test images,
and a class held out of a feature detector's fit. The figures are the ROC's area (higher
scores for the unusual rows: 1 tells every one apart) and the false positive rate at 95 %
true positives as Liang et al. (2018) define it, in-distribution rows as positives: the share
of unusual rows a gateway lets through when its threshold lets 95 % of ordinary traffic
through.

The detectors (``OodScore``) read what the model gives: probabilities (``msp``), logits
(``energy``: a network that ends in a softmax has none, and the detector says so), or the
penultimate layer's features (``mahalanobis``, ``knn``; the inputs themselves for a model
without readable layers, as the result's ``features`` says).

The chosen detector is an :class:`OodDetector`: plain arrays and a JSON header in an ``.npz``
(no pickle), bound to the model's SHA-256, with the threshold the gateway applies. It is
registered in the catalog beside a registered model (scanned and signed like any version).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

import numpy as np
import numpy.typing as npt

from bastion._fs import atomic_write
from bastion.assess.interface import (
    AssessError,
    OodFigures,
    OodResult,
    OodScore,
    OodShift,
    Progress,
)
from bastion.assess.policy import OodSpec
from bastion.models import CapabilityError, Predictor, Representable, Scorable

__all__ = ["FORMAT", "MAX_BYTES", "OodDetector", "calibrated", "detector_from_bytes", "figures",
           "load_detector", "run_ood", "shifted"]

Array = npt.NDArray[Any]
Floats = npt.NDArray[np.float64]
Clock = Callable[[], float]
Labelled = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]

FORMAT: Final = "bastion-ood/1"
"""The artefact's format name, in its header."""
MAX_BYTES: Final = 1 << 30
"""The largest detector file read (a k-NN bank of 10,000 rows of 4,096 floats is 160 MiB)."""
TPR: Final = 0.95
"""The share of in-distribution inputs the threshold lets through."""
_BANK: Final = 10_000
"""k-NN: at most this many fitted rows are kept (a seeded sample), as the paper's 1 % to
100 % subsets show little loss."""
_MAX_FEATURES: Final = 4096
"""Mahalanobis: a covariance over more features than this is too big to fit here."""
_HOLDOUT_CLASSES: Final = 3
_BINS: Final = 30
_CONTRAST: Final = 0.3
_BLUR_SIGMA: Final = 1.0
_CHUNK: Final = 1024


# ---------------------------------------------------------------------------- detector


@dataclass(frozen=True, eq=False)
class OodDetector:
    """A fitted detector: ``score`` an input batch through the model, ``flags`` above the
    threshold. Built by :meth:`fit`; saved and loaded as an ``.npz`` without pickle."""

    kind: OodScore
    """Which score."""
    features: str
    """What it reads: ``probabilities``, ``logits``, ``penultimate`` or ``inputs``."""
    arrays: dict[str, Floats]
    """Its fitted state: ``means`` and ``precision`` (Mahalanobis), ``bank`` (k-NN)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """``k`` (k-NN), ``threshold``, and what the gateway shows: ``model_sha256``, figures."""

    @classmethod
    def fit(cls, kind: OodScore, predictor: Predictor, x: npt.NDArray[np.float32],
            y: npt.NDArray[np.int64], *, seed: int = 0) -> Self:
        """Fit ``kind`` on in-distribution rows ``x`` labelled ``y`` (class indices).

        Raises:
            CapabilityError: the model cannot give what ``kind`` reads (logits for energy), or
                the features are too wide for a covariance.
        """
        if kind is OodScore.MSP:
            return cls(kind, "probabilities", {})
        if kind is OodScore.ENERGY:
            if not isinstance(predictor, Scorable):
                raise CapabilityError("the energy score needs the model's logits, and this "
                                      "model gives probabilities only",
                                      hint="use msp, mahalanobis or knn")
            predictor.logits(x[:1])  # a softmax network says it has none, now
            return cls(kind, "logits", {})
        source = "penultimate" if isinstance(predictor, Representable) else "inputs"
        f = _features(predictor, x, source)
        if kind is OodScore.MAHALANOBIS:
            return cls(kind, source, _gaussians(f, y))
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.permutation(len(f))[:_BANK])
        bank = _unit(f[keep])
        k = max(1, min(50, round(0.01 * len(bank)) or 1, len(bank)))
        return cls(kind, source, {"bank": bank}, {"k": int(k)})

    def score(self, predictor: Predictor, x: npt.ArrayLike) -> Floats:
        """One score per input: higher is further from the training data."""
        inputs = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        if not len(inputs):
            return np.zeros(0)
        if self.kind is OodScore.MSP:
            return np.asarray(-predictor.predict_proba(inputs).max(axis=1), dtype=np.float64)
        if self.kind is OodScore.ENERGY:
            if not isinstance(predictor, Scorable):
                raise CapabilityError("the energy score needs the model's logits")
            z = predictor.logits(inputs)
            top = z.max(axis=1, keepdims=True)
            return np.asarray(-(top[:, 0] + np.log(np.exp(z - top).sum(axis=1))),
                              dtype=np.float64)
        f = _features(predictor, inputs, self.features)
        if self.kind is OodScore.MAHALANOBIS:
            return _mahalanobis(f, self.arrays["means"], self.arrays["precision"])
        return _kth_distance(_unit(f), self.arrays["bank"], int(self.settings["k"]))

    @property
    def threshold(self) -> float | None:
        """The score above which an input is flagged (``None`` before it is calibrated)."""
        value = self.settings.get("threshold")
        return None if value is None else float(value)

    def flags(self, predictor: Predictor, x: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        """Which inputs score above the threshold.

        Raises:
            AssessError: the detector was never calibrated.
        """
        if self.threshold is None:
            raise AssessError("this detector has no threshold", hint="fit it with bastion "
                              "assess run (an ood test), which calibrates it")
        return np.asarray(self.score(predictor, x) > self.threshold)

    def with_settings(self, **settings: Any) -> OodDetector:
        """A copy with ``settings`` added (the threshold, the model it is bound to)."""
        return OodDetector(self.kind, self.features, self.arrays, {**self.settings, **settings})

    # ---------------------------------------------------------------- the artefact

    def to_bytes(self) -> bytes:
        """The ``.npz``: each array, and ``header`` (JSON text) holding the format, the kind,
        the features, the settings and the SHA-256 of the arrays, so a changed byte is
        caught on loading even outside the catalog."""
        header = {"format": FORMAT, "kind": self.kind.value, "features": self.features,
                  "settings": self.settings, "arrays_sha256": _arrays_digest(self.arrays)}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, allow_pickle=False,
                            header=np.array(json.dumps(header, sort_keys=True)),
                            **{f"array_{k}": v for k, v in self.arrays.items()})
        return buffer.getvalue()

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_bytes` to ``path``, atomically."""
        atomic_write(Path(path), self.to_bytes())


def load_detector(path: str | Path, *, model_sha256: str | None = None) -> OodDetector:
    """Read a detector saved by :meth:`OodDetector.save`, and check it is whole and, with
    ``model_sha256``, bound to that model.

    Raises:
        AssessError: not a detector file, damaged, edited, too big, or made for another model.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise AssessError(f"{path}: cannot read the OoD detector ({exc.strerror or exc})",
                          hint="check the path") from None
    return detector_from_bytes(data, name=str(path), model_sha256=model_sha256)


def detector_from_bytes(data: bytes, *, name: str = "<detector>",
                        model_sha256: str | None = None) -> OodDetector:
    """:func:`load_detector` on bytes already read (a catalog blob)."""
    if len(data) > MAX_BYTES:
        raise AssessError(f"{name}: larger than {MAX_BYTES >> 20} MiB: not an OoD detector",
                          hint="give the .npz that bastion assess saved")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            header = json.loads(str(archive["header"][()]))
            arrays = {k.removeprefix("array_"): np.asarray(archive[k], dtype=np.float64)
                      for k in archive.files if k.startswith("array_")}
        if header.get("format") != FORMAT:
            raise ValueError(f"its format is {header.get('format')!r}, not {FORMAT}")
        kind = OodScore(header["kind"])
        settings = dict(header["settings"])
        features = str(header["features"])
        if header["arrays_sha256"] != _arrays_digest(arrays):
            raise ValueError("its arrays do not match the digest in its header (edited?)")
        _check_shape(kind, arrays, settings)
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError,
            zipfile.BadZipFile) as exc:
        detail = f"no {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc) or "damaged"
        raise AssessError(f"{name}: not a whole OoD detector: {detail}",
                          hint="save it again with bastion assess run (an ood test), or get "
                               "it from the catalog, which verifies its signature") from None
    bound = settings.get("model_sha256")
    if model_sha256 is not None and bound != model_sha256:
        raise AssessError(f"{name}: the OoD detector was fitted for another model "
                          f"(SHA-256 {str(bound)[:16]}…, not {model_sha256[:16]}…)",
                          hint="assess this model with an ood test to fit its own detector")
    return OodDetector(kind, features, arrays, settings)


def _check_shape(kind: OodScore, arrays: dict[str, Floats], settings: dict[str, Any]) -> None:
    if kind is OodScore.MAHALANOBIS:
        means, precision = arrays["means"], arrays["precision"]
        if means.ndim != 2 or precision.shape != (means.shape[1], means.shape[1]):
            raise ValueError("its class means and precision matrix do not fit each other")
    elif kind is OodScore.KNN:
        k = settings["k"]
        if arrays["bank"].ndim != 2 or not (isinstance(k, int) and 1 <= k <= len(
                arrays["bank"])):
            raise ValueError("its k-NN bank or k is malformed")
    if not all(np.isfinite(a).all() for a in arrays.values()):
        raise ValueError("it holds values that are not finite")


def _arrays_digest(arrays: dict[str, Floats]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key], dtype=np.float64)
        h.update(f"{key}:{value.shape}:".encode())
        h.update(value.tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- scores


def _features(predictor: Predictor, x: Array, source: str) -> Floats:
    if source == "penultimate":
        if not isinstance(predictor, Representable):
            raise CapabilityError("the detector reads the penultimate layer, which this "
                                  "model does not expose")
        return np.asarray(predictor.representations(x), dtype=np.float64)
    return np.asarray(np.asarray(x, dtype=np.float64).reshape(len(x), -1))


def _gaussians(f: Floats, y: npt.NDArray[np.int64]) -> dict[str, Floats]:
    """Class means and the precision of the shared covariance (Ledoit–Wolf shrinkage, so a
    few hundred rows in many dimensions still give an invertible matrix)."""
    from sklearn.covariance import LedoitWolf

    if f.shape[1] > _MAX_FEATURES:
        raise CapabilityError(f"{f.shape[1]} features are too many for a covariance "
                              f"(at most {_MAX_FEATURES})",
                              hint="use knn, or a model whose penultimate layer is narrower")
    classes = np.unique(y)
    means = np.stack([f[y == c].mean(axis=0) for c in classes])
    centred = f - means[np.searchsorted(classes, y)]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    return {"means": means, "precision": np.asarray(precision, dtype=np.float64)}


def _mahalanobis(f: Floats, means: Floats, precision: Floats) -> Floats:
    """The smallest squared distance to a class mean, per row."""
    best = np.full(len(f), np.inf)
    for mean in means:
        d = f - mean
        best = np.minimum(best, np.einsum("ij,jk,ik->i", d, precision, d))
    return np.asarray(best, dtype=np.float64)


def _unit(f: Floats) -> Floats:
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    return np.asarray(f / np.maximum(norms, 1e-12), dtype=np.float64)


def _kth_distance(f: Floats, bank: Floats, k: int) -> Floats:
    """The Euclidean distance of each row to its k-th nearest bank row (in chunks: a
    10,000-row bank against 1,000 queries is 80 MB at once)."""
    out = np.empty(len(f))
    squared = (bank ** 2).sum(axis=1)
    for start in range(0, len(f), _CHUNK):
        part = f[start:start + _CHUNK]
        d2 = (part ** 2).sum(axis=1)[:, None] + squared[None, :] - 2.0 * part @ bank.T
        kth = np.partition(d2, k - 1, axis=1)[:, k - 1]
        out[start:start + len(part)] = np.sqrt(np.maximum(kth, 0.0))
    return out


# ----------------------------------------------------------------------------- shifts


def shifted(shift: OodShift, x: npt.NDArray[np.float32], clip: tuple[float, float],
            seed: int) -> npt.NDArray[np.float32] | str:
    """``x`` moved out of distribution by ``shift``, or why that shift does not apply.

    Images are 3-D ``(n, h, w)`` or 4-D inputs; a 4-D batch is blurred over its two
    spatial axes (the larger ones: ``(n, c, h, w)`` or ``(n, h, w, c)``).
    """
    low, high = clip
    if shift is OodShift.NOISE:
        rng = np.random.default_rng(seed)
        return rng.uniform(low, high, size=x.shape).astype(np.float32)
    if x.ndim not in (3, 4):
        return "the inputs are rows, not images"
    if shift is OodShift.CONTRAST:
        axes = tuple(range(1, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        return np.asarray(np.clip(mean + _CONTRAST * (x - mean), low, high), dtype=np.float32)
    if shift is OodShift.BLUR:
        from scipy.ndimage import gaussian_filter

        sigma: tuple[float, ...] = (0.0, _BLUR_SIGMA, _BLUR_SIGMA)
        if x.ndim == 4:
            sigma = ((0.0, 0.0, _BLUR_SIGMA, _BLUR_SIGMA) if x.shape[1] < x.shape[-1]
                     else (0.0, _BLUR_SIGMA, _BLUR_SIGMA, 0.0))
        return np.asarray(np.clip(gaussian_filter(x, sigma=sigma, mode="nearest"), low, high),
                          dtype=np.float32)
    raise ValueError(f"{shift.value} is not a generated shift")  # pragma: no cover


# ------------------------------------------------------------------------------ figures


def calibrated(inside: Floats) -> float:
    """The smallest score at or under which at least :data:`TPR` of ``inside`` lie (the
    inverted CDF: a higher quantile lets one row more through on a small set)."""
    return float(np.quantile(inside, TPR, method="inverted_cdf"))


def figures(detector: OodScore, shift: OodShift, inside: Floats, outside: Floats,
            ) -> OodFigures:
    """AUROC and FPR at 95 % TPR of ``outside`` against ``inside``, where a higher score means
    out of distribution; and both scores' histogram.

    AUROC: the chance that an unusual row scores above an ordinary one (ties half). FPR at
    95 % TPR (Liang et al. 2018; in-distribution rows are the positives): the threshold is
    the smallest score at or under which at least 95 % of the in-distribution scores lie
    (the gateway's threshold, chosen the same way); the figure is the share of unusual
    scores that also lie at or under it (let through)."""
    from sklearn.metrics import roc_auc_score

    inside, outside = np.nan_to_num(inside, nan=np.inf), np.nan_to_num(outside, nan=np.inf)
    truth = np.concatenate([np.zeros(len(inside)), np.ones(len(outside))])
    auroc = float(roc_auc_score(truth, np.concatenate([inside, outside])))
    threshold = calibrated(inside)
    let_through = float(np.mean(outside <= threshold))
    both = np.concatenate([inside, outside])
    finite = both[np.isfinite(both)]
    edges = np.histogram_bin_edges(finite if len(finite) else [0.0, 1.0], bins=_BINS)
    histogram = {"edges": [float(e) for e in edges],
                 "in": np.histogram(inside, edges)[0].tolist(),
                 "out": np.histogram(outside, edges)[0].tolist()}
    return OodFigures(detector, shift, auroc, let_through, len(inside), len(outside),
                      histogram)


def run_ood(spec: OodSpec, predictor: Predictor, *, fit: Labelled, evaluation: Labelled,
            clip: tuple[float, float], seed: int, given: npt.NDArray[np.float32] | None = None,
            model_sha256: str | None = None, progress: Progress | None = None,
            clock: Clock = time.monotonic) -> OodResult:
    """Fit ``spec.detectors`` on ``fit``, score them on ``evaluation`` against each shift, and
    choose one for the gateway.

    Steps: 1. fit each detector (one that cannot apply is recorded as skipped, with why);
    2. score the in-distribution rows and each shift; a class held out refits the feature
    detectors without it; 3. choose, and calibrate its threshold on the in-distribution
    scores; 4. bind it to the model.
    """
    started = clock()
    x_fit, y_fit = fit
    x_in = evaluation[0]
    fitted: dict[OodScore, OodDetector] = {}
    skipped: dict[str, str] = {}
    for kind in spec.detectors:  # 1
        try:
            fitted[kind] = OodDetector.fit(kind, predictor, x_fit, y_fit, seed=seed)
        except CapabilityError as exc:
            skipped[kind.value] = exc.message + (f" ({exc.hint})" if exc.hint else "")
    sets: list[tuple[OodShift, npt.NDArray[np.float32] | str]] = []
    if given is not None:
        sets.append((OodShift.GIVEN, given))
    sets += [(s, shifted(s, x_in, clip, seed)) for s in spec.shifts if s is not OodShift.HOLDOUT]
    out: list[OodFigures] = []
    complete = True
    inside = {kind: d.score(predictor, x_in) for kind, d in fitted.items()}
    for kind, each in fitted.items():  # 2
        if clock() - started > spec.max_seconds:
            complete = False
            break
        for shift, data in sets:
            if isinstance(data, str):
                out.append(OodFigures(kind, shift, None, None, len(x_in), 0, note=data))
                continue
            out.append(figures(kind, shift, inside[kind], each.score(predictor, data)))
        if OodShift.HOLDOUT in spec.shifts:
            out.append(_holdout(kind, predictor, fit, evaluation, seed))
        if progress is not None:
            progress.advance("ood")
    chosen = _choose(spec, out, fitted)  # 3
    detector: OodDetector | None = None
    threshold = None
    if chosen is not None:
        threshold = calibrated(inside[chosen])
        summary = {f.shift.value: f.auroc for f in out if f.detector is chosen}
        detector = fitted[chosen].with_settings(  # 4
            threshold=threshold, tpr=TPR, model_sha256=model_sha256, auroc=summary,
            fitted_on=len(x_fit))
    return OodResult(fitted_on=len(x_fit), evaluated=len(x_in),
                     features={k.value: d.features for k, d in fitted.items()},
                     figures=tuple(out), skipped=skipped, chosen=chosen, threshold=threshold,
                     complete=complete, seconds=clock() - started,
                     parameters={"detectors": [d.value for d in spec.detectors],
                                 "shifts": [s.value for s in spec.shifts],
                                 "given": given is not None, "tpr": TPR,
                                 "choose": None if spec.choose is None else spec.choose.value},
                     detector=detector)


def _holdout(kind: OodScore, predictor: Predictor, fit: Labelled, evaluation: Labelled,
             seed: int) -> OodFigures:
    """A feature detector refitted without a class, scored on that class against the others'
    test rows; the AUROC and FPR are the means over up to three held-out classes."""
    if not kind.reads_features:
        return OodFigures(kind, OodShift.HOLDOUT, None, None, len(evaluation[1]), 0,
                          note="the model was trained on every class, so its outputs know "
                               "them all: only feature detectors can hold one out")
    x_fit, y_fit = fit
    x_in, y_in = evaluation
    common = sorted(set(np.unique(y_fit).tolist()) & set(np.unique(y_in).tolist()))
    if len(common) < 3:
        return OodFigures(kind, OodShift.HOLDOUT, None, None, len(y_in), 0,
                          note="needs at least three classes in both the fit and test rows")
    rng = np.random.default_rng(seed)
    held = sorted(rng.permutation(common)[:_HOLDOUT_CLASSES].tolist())
    parts = []
    for c in held:
        detector = OodDetector.fit(kind, predictor, x_fit[y_fit != c], y_fit[y_fit != c],
                                   seed=seed)
        parts.append(figures(kind, OodShift.HOLDOUT, detector.score(predictor, x_in[y_in != c]),
                             detector.score(predictor, x_in[y_in == c])))
    return OodFigures(kind, OodShift.HOLDOUT,
                      float(np.mean([p.auroc or 0.0 for p in parts])),
                      float(np.mean([p.fpr_at_95_tpr or 0.0 for p in parts])),
                      len(y_in), int(np.isin(y_in, held).sum()), parts[0].histogram,
                      note=f"classes held out in turn: {held} (the figures are their means; "
                           f"the histogram is class {held[0]}'s)")


def _choose(spec: OodSpec, found: Sequence[OodFigures],
            fitted: dict[OodScore, OodDetector]) -> OodScore | None:
    """The policy's ``choose`` when fitted; else the best mean AUROC over the shifts every
    fitted detector measured (ties: the policy's order)."""
    if spec.choose is not None:
        return spec.choose if spec.choose in fitted else None
    if not fitted:
        return None
    shared = set.intersection(*({f.shift for f in found if f.detector is k and f.auroc
                                 is not None} for k in fitted))

    def mean(kind: OodScore) -> float:
        values = [f.auroc for f in found if f.detector is kind and f.shift in shared
                  and f.auroc is not None]
        return float(np.mean(values)) if values else -math.inf

    return max(fitted, key=mean)
