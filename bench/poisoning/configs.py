"""Every configuration of the poisoning sweep, and its split into a development half and a
held-out half.

The split was fixed before any detector was tuned on the sweep, and must not change after:
the held-out half is the measurement of triggers the detector was not shaped around. The unit
of the split is an *attack variant* (dataset, family, trigger parameters and placement, model
type): all its poison rates and seeds fall in the same half, so no held-out trigger is seen in
development at another rate. Within each (dataset, family) the variants are ordered by the
SHA-256 of their id and alternate between the halves, so every family is in both.

    >>> from poisoning.configs import configs
    >>> len([c for c in configs() if c.half == "held-out"]) > 0
    True
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

HALVES = ("dev", "held-out")
RATES = (0.0, 0.01, 0.03, 0.05, 0.10, 0.15)
"""Share of the whole training set that is poison (0: a clean control)."""
SEEDS = (0, 1)
"""Each seed draws another train/test split, other poisoned rows and another training run."""

IMAGE_MODELS = ("cnn", "mlp")
TABLE_MODELS = ("mlp", "sklearn-mlp")


@dataclass(frozen=True)
class Variant:
    """One attack: which data, which trigger (family and parameters), which model type."""

    dataset: str
    family: str
    params: tuple[tuple[str, Any], ...]
    model: str = ""
    half: str = ""

    @property
    def id(self) -> str:
        """A stable name, e.g. ``digits/patch-solid/size=2,place=1/cnn``."""
        shown = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.dataset}/{self.family}/{shown}/{self.model}"

    def param(self, name: str) -> Any:
        return dict(self.params)[name]


@dataclass(frozen=True)
class Config:
    """One run: a variant at one poison rate and seed."""

    variant: Variant
    rate: float
    seed: int
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def id(self) -> str:
        return f"{self.variant.id}/rate={self.rate:g}/seed={self.seed}"

    @property
    def half(self) -> str:
        return self.variant.half


def _p(**kwargs: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(kwargs.items())


def _image_variants() -> Iterator[Variant]:
    # ``place`` and ``pattern`` are seeds: where a patch goes and what it looks like are drawn
    # from them, so a variant is one fixed trigger, as an attacker would plant it.
    for size, place in itertools.product((1, 2, 3), (0, 1)):
        yield Variant("digits", "patch-solid", _p(size=size, place=place))
    for size, pattern in itertools.product((2, 3), (0, 1)):
        yield Variant("digits", "patch-pattern", _p(size=size, pattern=pattern))
    yield Variant("digits", "patch-pattern", _p(size=3, pattern=2, per_sample_place=True))
    yield Variant("digits", "patch-pattern", _p(size=2, pattern=3, per_sample_place=True))
    for pattern, alpha in itertools.product(("noise", "stripes", "smooth"), (0.1, 0.2)):
        yield Variant("digits", "blend", _p(pattern=pattern, alpha=alpha))
    for amplitude, frequency in itertools.product((0.1, 0.2), (2, 3)):
        yield Variant("digits", "sig", _p(amplitude=amplitude, frequency=frequency))
    for sigma in (0.05, 0.1):
        yield Variant("digits", "noise", _p(sigma=sigma))
    for strength in (0.5, 1.0):
        yield Variant("digits", "wanet", _p(strength=strength, grid=4))
    for sources in ("all", "one"):
        yield Variant("digits", "label-flip", _p(sources=sources))
    for steps in (100, 200):
        yield Variant("digits", "clean-label", _p(steps=steps))


def _table_variants() -> Iterator[Variant]:
    for features, place in itertools.product((1, 2, 3), (0, 1)):
        yield Variant("cancer", "patch-solid", _p(features=features, place=place))
    for features, pattern in itertools.product((2, 3), (0, 1)):
        yield Variant("cancer", "patch-pattern", _p(features=features, pattern=pattern))
    for pattern, alpha in itertools.product(("noise", "smooth"), (0.1, 0.2)):
        yield Variant("cancer", "blend", _p(pattern=pattern, alpha=alpha))
    for amplitude in (0.5, 1.0):
        yield Variant("cancer", "sig", _p(amplitude=amplitude, frequency=3))
    for sigma in (0.5, 1.0):
        yield Variant("cancer", "noise", _p(sigma=sigma))
    for sources in ("all", "one"):
        yield Variant("cancer", "label-flip", _p(sources=sources))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def variants() -> list[Variant]:
    """Every variant, with its model type and half assigned."""
    out: list[Variant] = []
    drawn = [*_image_variants(), *_table_variants()]
    for (dataset, _family), group in itertools.groupby(drawn, key=lambda v: (v.dataset, v.family)):
        models = IMAGE_MODELS if dataset == "digits" else TABLE_MODELS
        members = sorted(group, key=lambda v: _digest(f"{v.dataset}/{v.family}/{v.params}"))
        for i, v in enumerate(members):
            model = models[(i // 2) % len(models)]
            out.append(Variant(v.dataset, v.family, v.params, model, HALVES[i % 2]))
    return out


def configs(half: str | None = None) -> list[Config]:
    """Every run of the sweep (``half``: only that half's)."""
    return [Config(v, rate, seed) for v in variants() if half in (None, v.half)
            for rate in RATES for seed in (SEEDS if rate else SEEDS[:1])]


if __name__ == "__main__":
    for v in variants():
        print(f"{v.half:9} {v.id}")
    print(len(configs("dev")), "dev runs,", len(configs("held-out")), "held-out runs")
