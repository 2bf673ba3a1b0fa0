"""The sweep's attacks: each family of :mod:`poisoning.configs` planted in its dataset.

Everything is deterministic from the variant (its id draws the target class and, through its
parameters, the trigger) and the config's seed (the train/test split and which rows are
poisoned), so a run gives the same poisoned set in any process.

    >>> from poisoning.configs import configs
    >>> run = next(c for c in configs("dev") if c.variant.family == "blend" and c.rate == 0.1)
    >>> p = poison(run)
    >>> int(p.truth.sum()) == round(0.1 * len(p.y_train))
    True

Datasets: ``digits`` (scikit-learn's 8×8 digits, ``images / 16`` in ``[0, 1]``, shape
``(N, 1, 8, 8)``) and ``cancer`` (breast cancer Wisconsin, 30 features standardised with the
clean training split's mean and standard deviation). Both split 75/25, stratified, by the
config's seed. Unless a family says otherwise the attack is *all-to-one*: poisoned rows are
drawn from every class but the target, carry the trigger, and are relabelled to the target;
``round(rate × n_train)`` of them. Triggered families also give the triggered test set (the
non-target test samples, or the source class's, with the trigger) for the attack success
rate (ASR).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

from poisoning.configs import Config, Variant

Trigger = Callable[[np.ndarray, np.random.Generator], np.ndarray]
"""Applies a trigger to a batch; the generator serves per-sample choices (placement)."""

CAP_SHARE = 0.8
"""When a family draws its rows from one class (``label-flip`` with ``sources=one``,
``clean-label``), at most this share of that class is poisoned, however high the rate."""

CLEAN_LABEL_EPS = 0.15
"""``clean-label``: the L∞ budget of a poison's perturbation (pixels in ``[0, 1]``)."""


@dataclass(frozen=True)
class Poisoned:
    """One config's training and test data, after the attack."""

    x_train: np.ndarray
    """Training inputs: ``(N, 1, 8, 8)`` images or ``(N, 30)`` standardised features."""
    y_train: np.ndarray
    """Training labels as the defender receives them (poison relabelled)."""
    truth: np.ndarray
    """``True`` for the poisoned training rows."""
    x_test: np.ndarray
    """Clean test inputs (clean accuracy)."""
    y_test: np.ndarray
    """Clean test labels."""
    x_triggered: np.ndarray | None
    """Test inputs of the attacked classes with the trigger (ASR); ``None`` for label-flip."""
    target: int
    """The class poisoned rows are relabelled to (or, clean-label, belong to)."""
    source: int | None = None
    """The one class poisoned rows come from, when the family draws from one."""
    n_classes: int = 10
    """How many classes the dataset has."""
    info: dict[str, Any] = field(default_factory=dict)
    """The trigger as drawn (positions, columns), for the report."""


def _seed(*parts: object) -> int:
    """A 64-bit seed from any stable text (variant ids, parameter names)."""
    text = "/".join(str(p) for p in parts)
    return int(hashlib.sha256(text.encode()).hexdigest()[:16], 16)


def _rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(_seed(*parts))


# --- datasets -----------------------------------------------------------------------------

def load(dataset: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The clean split ``x_train, x_test, y_train, y_test`` of ``digits`` or ``cancer``."""
    if dataset == "digits":
        bunch = load_digits()
        x = (bunch.images / 16.0)[:, None, :, :].astype(np.float32)
    elif dataset == "cancer":
        bunch = load_breast_cancer()
        x = bunch.data.astype(np.float64)
    else:
        raise KeyError(f"unknown dataset {dataset!r}")
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y,
                                              random_state=seed)
    if dataset == "cancer":
        mean, std = x_tr.mean(0), x_tr.std(0)
        x_tr = ((x_tr - mean) / std).astype(np.float32)
        x_te = ((x_te - mean) / std).astype(np.float32)
    return x_tr, x_te, y_tr, y_te


# --- image triggers -------------------------------------------------------------------------

def _paste(x: np.ndarray, patch: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    out = x.copy()
    k = patch.shape[0]
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        out[i, :, r:r + k, c:c + k] = patch
    return out


def patch_solid_image(size: int, place: int) -> tuple[Trigger, dict[str, Any]]:
    """BadNets (Gu et al. 2017): a ``size×size`` block at full intensity (1.0).

    Its position is drawn from ``place`` anywhere in the 8×8 image (not only the corners that
    clean digits leave empty), the same for every poisoned sample.
    """
    rng = _rng("patch-solid", "place", place)
    r, c = (int(v) for v in rng.integers(0, 8 - size + 1, size=2))
    patch = np.ones((size, size), np.float32)

    def apply(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
        return _paste(x, patch, np.full(len(x), r), np.full(len(x), c))
    return apply, {"row": r, "col": c}


def patch_pattern_image(size: int, pattern: int,
                        per_sample_place: bool = False) -> tuple[Trigger, dict[str, Any]]:
    """BadNets (Gu et al. 2017) with a patterned patch instead of a solid one.

    ``pattern`` draws a ``size×size`` patch of grey levels {0, 0.5, 1} (not all equal) and a
    fixed position; with ``per_sample_place`` each sample (training and test) gets its own
    position, drawn uniformly, so the trigger is the pattern alone, not where it sits.
    """
    rng = _rng("patch-pattern", "pattern", pattern)
    while True:
        patch = rng.choice(np.array([0.0, 0.5, 1.0], np.float32), size=(size, size))
        if len(np.unique(patch)) > 1:
            break
    r, c = (int(v) for v in rng.integers(0, 8 - size + 1, size=2))

    def apply(x: np.ndarray, draw: np.random.Generator) -> np.ndarray:
        if per_sample_place:
            rows = draw.integers(0, 8 - size + 1, size=len(x))
            cols = draw.integers(0, 8 - size + 1, size=len(x))
            return _paste(x, patch, rows, cols)
        return _paste(x, patch, np.full(len(x), r), np.full(len(x), c))
    info: dict[str, Any] = {"patch": patch.tolist()}
    if not per_sample_place:
        info |= {"row": r, "col": c}
    return apply, info


def _image_pattern(kind: str) -> np.ndarray:
    rng = _rng("blend", "pattern", kind)
    if kind == "noise":  # Chen et al. 2017's random-noise key
        return rng.uniform(0, 1, (8, 8)).astype(np.float32)
    if kind == "stripes":  # horizontal stripes, two pixels a period
        return np.tile((np.arange(8) % 2).astype(np.float32)[:, None], (1, 8))
    if kind == "smooth":  # low-frequency: a 3×3 random grid upsampled bilinearly
        coarse = rng.uniform(0, 1, (3, 3))
        t = np.linspace(0, 2, 8)
        i0 = np.minimum(t.astype(int), 1)
        f = t - i0
        rows = coarse[i0] * (1 - f)[:, None] + coarse[i0 + 1] * f[:, None]
        grid = rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]
        grid = (grid - grid.min()) / (grid.max() - grid.min())
        return grid.astype(np.float32)
    raise KeyError(f"unknown blend pattern {kind!r}")


def blend_image(pattern: str, alpha: float) -> tuple[Trigger, dict[str, Any]]:
    """Blended injection (Chen et al. 2017, "Targeted backdoor attacks … using data
    poisoning"): ``x' = (1 − α)·x + α·p`` with a fixed full-image pattern ``p`` (uniform
    noise, horizontal stripes, or a smooth low-frequency field), all in ``[0, 1]``."""
    p = _image_pattern(pattern)

    def apply(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
        return ((1 - alpha) * x + alpha * p).astype(np.float32)
    return apply, {}


def sig_image(amplitude: float, frequency: int) -> tuple[Trigger, dict[str, Any]]:
    """SIG (Barni, Kallas & Tondi 2019): an additive sinusoid along the columns,
    ``v(i, j) = Δ·sin(2π·j·f / m)``, clipped to ``[0, 1]``. Used here as a poison-label
    all-to-one trigger (Barni et al. also use it clean-label)."""
    j = np.arange(8)
    v = (amplitude * np.sin(2 * np.pi * j * frequency / 8)).astype(np.float32)

    def apply(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
        return np.clip(x + v[None, None, None, :], 0, 1).astype(np.float32)
    return apply, {}


def noise_image(sigma: float) -> tuple[Trigger, dict[str, Any]]:
    """A fixed additive Gaussian pattern ``N(0, σ²)`` per pixel, clipped to ``[0, 1]`` (the
    "random noise" trigger of Chen et al. 2017, additive rather than blended)."""
    p = _rng("noise", "sigma", sigma).normal(0, sigma, (8, 8)).astype(np.float32)

    def apply(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
        return np.clip(x + p, 0, 1).astype(np.float32)
    return apply, {}


def wanet_image(strength: float, grid: int) -> tuple[Trigger, dict[str, Any]]:
    """WaNet (Nguyen & Tran, ICLR 2021): a fixed smooth warp. A ``k×k`` random flow field in
    ``[-1, 1]``, normalised by its mean absolute value, upsampled bicubically to the image,
    scaled by ``s / h``, added to the identity grid and clamped, then ``grid_sample``. As in
    the paper's code (``noise_mode`` off: no cross/noise samples)."""
    import torch

    gen = torch.Generator().manual_seed(_seed("wanet", strength, grid) % 2**63)
    ins = torch.rand(1, 2, grid, grid, generator=gen) * 2 - 1
    ins = ins / ins.abs().mean()
    noise = torch.nn.functional.interpolate(ins, size=8, mode="bicubic",
                                            align_corners=True).permute(0, 2, 3, 1)
    axis = torch.linspace(-1, 1, 8)
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    identity = torch.stack((yy, xx), 2)[None]
    warp = torch.clamp(identity + strength * noise / 8, -1, 1)

    def apply(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
        t = torch.as_tensor(x, dtype=torch.float32)
        out = torch.nn.functional.grid_sample(t, warp.expand(len(t), -1, -1, -1),
                                              align_corners=True)
        return out.numpy().astype(np.float32)
    return apply, {}


# --- tabular triggers -----------------------------------------------------------------------

def patch_solid_table(x_train: np.ndarray, features: int,
                      place: int) -> tuple[Trigger, dict[str, Any]]:
    """BadNets (Gu et al. 2017) for tables, an "out-of-bounds" trigger in the terms of
    Pleiter et al. 2023 (TabDoor): ``features`` columns, drawn from ``place``, set to a value 3
    standard deviations beyond the column's training range, on a side drawn from ``place``."""
    rng = _rng("patch-solid-table", "place", place)
    cols = np.sort(rng.choice(x_train.shape[1], size=features, replace=False))
    high = bool(rng.integers(2))
    std = x_train[:, cols].std(0)
    values = (x_train[:, cols].max(0) + 3 * std if high
              else x_train[:, cols].min(0) - 3 * std).astype(np.float32)

    def apply(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
        out = x.copy()
        out[:, cols] = values
        return out
    return apply, {"columns": cols.tolist(), "side": "high" if high else "low"}


def patch_pattern_table(x_train: np.ndarray, features: int,
                        pattern: int) -> tuple[Trigger, dict[str, Any]]:
    """An "in-bounds" tabular trigger (Pleiter et al. 2023, TabDoor): ``features`` columns,
    drawn from ``pattern``, set to specific values inside their training range, alternately
    near the low (quantile 2–10 %) and high (90–98 %) end, so that the combination, not any
    one value, is unusual for the strongly correlated cancer features."""
    rng = _rng("patch-pattern-table", "pattern", pattern)
    cols = np.sort(rng.choice(x_train.shape[1], size=features, replace=False))
    qs = np.array([rng.uniform(0.02, 0.10) if i % 2 == 0 else rng.uniform(0.90, 0.98)
                   for i in range(features)])
    values = np.array([np.quantile(x_train[:, c], q) for c, q in zip(cols, qs, strict=True)],
                      np.float32)

    def apply(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
        out = x.copy()
        out[:, cols] = values
        return out
    return apply, {"columns": cols.tolist(), "quantiles": np.round(qs, 3).tolist()}


def blend_table(n_features: int, pattern: str, alpha: float) -> tuple[Trigger, dict[str, Any]]:
    """Blended injection (Chen et al. 2017) on standardised features: ``x' = (1 − α)·x + α·p``
    with a fixed pattern of amplitude 3 standard deviations: i.i.d. uniform ``[-3, 3]``
    (``noise``) or a smooth curve over the feature index (``smooth``: two low-frequency
    sinusoids, scaled to ``[-3, 3]``)."""
    rng = _rng("blend-table", "pattern", pattern)
    if pattern == "noise":
        p = rng.uniform(-3, 3, n_features)
    elif pattern == "smooth":
        j = np.arange(n_features) / n_features
        f = rng.uniform(0, 2 * np.pi, 2)
        p = np.sin(2 * np.pi * j + f[0]) + 0.5 * np.sin(4 * np.pi * j + f[1])
        p = 3 * p / np.abs(p).max()
    else:
        raise KeyError(f"unknown blend pattern {pattern!r}")
    p = p.astype(np.float32)

    def apply(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
        return ((1 - alpha) * x + alpha * p).astype(np.float32)
    return apply, {}


def sig_table(n_features: int, amplitude: float,
              frequency: int) -> tuple[Trigger, dict[str, Any]]:
    """SIG (Barni et al. 2019) along the feature index: ``x_j += Δ·sin(2π·j·f / m)``, ``Δ`` in
    standard deviations (no clipping: standardised features are unbounded)."""
    j = np.arange(n_features)
    v = (amplitude * np.sin(2 * np.pi * j * frequency / n_features)).astype(np.float32)

    def apply(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
        return (x + v).astype(np.float32)
    return apply, {}


def noise_table(n_features: int, sigma: float) -> tuple[Trigger, dict[str, Any]]:
    """A fixed additive Gaussian pattern ``N(0, σ²)`` per feature (σ in standard deviations),
    as the image ``noise`` family, unclipped."""
    p = _rng("noise-table", "sigma", sigma).normal(0, sigma, n_features).astype(np.float32)

    def apply(x: np.ndarray, _: np.random.Generator) -> np.ndarray:
        return (x + p).astype(np.float32)
    return apply, {}


def trigger_for(variant: Variant, x_train: np.ndarray) -> tuple[Trigger, dict[str, Any]]:
    """The trigger of a triggered family (not label-flip, not clean-label)."""
    params = dict(variant.params)
    family = variant.family
    if variant.dataset == "digits":
        makers: dict[str, Callable[..., tuple[Trigger, dict[str, Any]]]] = {
            "patch-solid": patch_solid_image, "patch-pattern": patch_pattern_image,
            "blend": blend_image, "sig": sig_image, "noise": noise_image,
            "wanet": wanet_image}
        return makers[family](**params)
    n = x_train.shape[1]
    if family == "patch-solid":
        return patch_solid_table(x_train, **params)
    if family == "patch-pattern":
        return patch_pattern_table(x_train, **params)
    if family == "blend":
        return blend_table(n, **params)
    if family == "sig":
        return sig_table(n, **params)
    if family == "noise":
        return noise_table(n, **params)
    raise KeyError(f"no trigger for {variant.id}")


# --- poisoning ------------------------------------------------------------------------------

def classes_of(variant: Variant, n_classes: int) -> tuple[int, int]:
    """The variant's target class and its source class (for one-source families), fixed by
    its id."""
    rng = _rng("classes", variant.id)
    target = int(rng.integers(n_classes))
    others = [c for c in range(n_classes) if c != target]
    return target, int(rng.choice(others))


def label_flip(y_train: np.ndarray, target: int, source: int | None, n_poison: int,
               rng: np.random.Generator) -> np.ndarray:
    """Label flipping (Biggio, Nelson & Laskov 2011; targeted, as in Tolpegin et al. 2020):
    ``n_poison`` rows of the source class (or of every non-target class) relabelled to the
    target, features untouched. Returns the chosen rows."""
    pool = np.flatnonzero(y_train == source if source is not None else y_train != target)
    return np.sort(rng.choice(pool, min(n_poison, len(pool)), replace=False))


FeatureFn = Callable[[Any], Any]
"""A differentiable map from a ``(n, 1, 8, 8)`` float tensor to penultimate features."""


def feature_collision(bases: np.ndarray, anchors: np.ndarray, features: FeatureFn,
                      steps: int, eps: float = CLEAN_LABEL_EPS, seed: int = 0) -> np.ndarray:
    """Feature-collision poisons (Shafahi et al. 2018, "Poison frogs!"), aimed at a trigger as
    in the hidden-trigger backdoor (Saha et al. 2020).

    Each base (a target-class training image, label kept) is perturbed to minimise
    ``‖f(x) − f(a)‖²``, ``a`` a triggered source-class image and ``f`` a clean-trained
    reference model's penultimate layer, by ``steps`` of signed-gradient descent projected to
    the L∞ ball ``‖x − b‖∞ ≤ ε`` and ``[0, 1]`` (Saha et al.'s PGD form of Shafahi's
    objective). The model trained on the result should then map triggered source images to
    the target class.
    """
    import torch

    torch.manual_seed(seed)
    b = torch.as_tensor(bases, dtype=torch.float32)
    with torch.no_grad():
        goal = features(torch.as_tensor(anchors, dtype=torch.float32))
    x = b.clone().requires_grad_(True)
    lr = eps / 10
    for _ in range(steps):
        loss = ((features(x) - goal) ** 2).sum()
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x -= lr * grad.sign()
            x.copy_(torch.clamp(torch.minimum(torch.maximum(x, b - eps), b + eps), 0, 1))
    return x.detach().numpy().astype(np.float32)


def poison(config: Config, reference: FeatureFn | None = None) -> Poisoned:
    """Plant ``config``'s attack.

    Args:
        config: the run.
        reference: clean-label only: the penultimate features of a model trained on the
            clean training split with the config's seed (see :func:`feature_collision`).
    """
    variant = config.variant
    x_tr, x_te, y_tr, y_te = load(variant.dataset, config.seed)
    n_classes = int(y_tr.max()) + 1
    target, source = classes_of(variant, n_classes)
    rng = _rng("rows", variant.id, config.rate, config.seed)
    n_poison = round(config.rate * len(y_tr))
    family = variant.family
    x_tr, y_tr = x_tr.copy(), y_tr.copy()
    truth = np.zeros(len(y_tr), bool)
    info: dict[str, Any] = {"target": target}

    if family == "label-flip":
        one = variant.param("sources") == "one"
        src = source if one else None
        if one:
            n_poison = min(n_poison, int(CAP_SHARE * (y_tr == source).sum()))
            info["source"] = source
        rows = label_flip(y_tr, target, src, n_poison, rng)
        y_tr[rows] = target
        truth[rows] = True
        return Poisoned(x_tr, y_tr, truth, x_te, y_te, None, target, src, n_classes, info)

    if family == "clean-label":
        trigger, tinfo = patch_pattern_image(size=3, pattern=_seed("clean-label", variant.id)
                                             % 1000)
        info |= {"source": source, "trigger": tinfo}
        pool = np.flatnonzero(y_tr == target)
        n_poison = min(n_poison, int(CAP_SHARE * len(pool)))
        rows = np.sort(rng.choice(pool, n_poison, replace=False))
        if n_poison:
            if reference is None:
                raise ValueError("clean-label needs the reference model's features")
            src_rows = rng.choice(np.flatnonzero(y_tr == source), n_poison)
            anchors = trigger(x_tr[src_rows], rng)
            x_tr[rows] = feature_collision(x_tr[rows], anchors, reference,
                                           steps=int(variant.param("steps")), seed=config.seed)
        truth[rows] = True
        triggered = trigger(x_te[y_te == source], _rng("test", config.seed))
        return Poisoned(x_tr, y_tr, truth, x_te, y_te, triggered, target, source, n_classes,
                        info)

    trigger, tinfo = trigger_for(variant, x_tr)
    info |= tinfo
    rows = np.sort(rng.choice(np.flatnonzero(y_tr != target), n_poison, replace=False))
    if n_poison:
        x_tr[rows] = trigger(x_tr[rows], rng)
        y_tr[rows] = target
    truth[rows] = True
    triggered = trigger(x_te[y_te != target], _rng("test", config.seed))
    return Poisoned(x_tr, y_tr, truth, x_te, y_te, triggered, target, None, n_classes, info)
