"""CycloneDX 1.6 bills of materials for a registered model version (NCSC 2.5, 2.3).

The BOM holds the model component with its model card and file hashes (the catalog's CycloneDX
card export, ``bastion.catalog.card_formats.to_cyclonedx``), the dataset components it was
trained and evaluated on (each with its own card data and hashes), and the software environment
as ``library`` components with PyPI package URLs, which the model depends on. It is validated
against CycloneDX's JSON schema (shipped with ``cyclonedx-python-lib``, offline) before it is
returned::

    bom = build_bom(info.card, ref="digits@2", datasets={"digits-data@1": data_card},
                    environment=current_environment(), captured="export")
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from packaging.utils import canonicalize_name

from bastion.catalog.cards import (
    DisclosureLevel,
    card_from_dict,
    disclose,
    library_component,
    to_cyclonedx,
    validate_cyclonedx,
)
from bastion.errors import UsageError

if TYPE_CHECKING:
    from bastion.catalog.api import CatalogAPI

__all__ = [
    "Distribution",
    "Library",
    "bom_for",
    "build_bom",
    "environment_components",
    "purl",
]

Captured = Literal["registration", "export"]


class Distribution(Protocol):
    """An installed Python distribution, as the BOM needs it (``bastion.deps.Package`` is one:
    the catalog takes the environment as an argument and never asks ``deps`` for it)."""

    @property
    def name(self) -> str:
        """The distribution's name as published."""
        ...

    @property
    def version(self) -> str | None:
        """Its exact version, if known."""
        ...


@dataclass(frozen=True, slots=True)
class Library:
    """A distribution recorded in a model's card at registration."""

    name: str
    """The distribution's name."""
    version: str | None
    """Its version."""


def purl(package: Distribution) -> str:
    """The package URL of a PyPI distribution (purl-spec: lower case, ``_`` as ``-``)."""
    return str(library_component(package.name, package.version)["purl"])


def environment_components(packages: Sequence[Distribution]) -> list[dict[str, Any]]:
    """One ``library`` component per distribution, deduplicated, in name order."""
    components: dict[str, dict[str, Any]] = {}
    for package in sorted(packages, key=lambda p: (canonicalize_name(p.name), p.version or "")):
        component = library_component(package.name, package.version)
        components.setdefault(component["bom-ref"], component)
    return list(components.values())


def _card_bom(card: Mapping[str, Any], ref: str, level: DisclosureLevel) -> dict[str, Any]:
    data = disclose(card_from_dict(dict(card), source=f"card of {ref}", trusted=True), level)
    data.pop("environment", None)  # build_bom adds the environment it was given, with its source
    return to_cyclonedx(data, ref=ref, level=level)


def build_bom(
    model_card: Mapping[str, Any],
    *,
    ref: str,
    datasets: Mapping[str, Mapping[str, Any]],
    environment: Sequence[Distribution] | None,
    captured: Captured = "registration",
    level: DisclosureLevel = DisclosureLevel.INTERNAL,
) -> dict[str, Any]:
    """The BOM of model version ``ref`` (``NAME@VERSION``).

    Args:
        model_card: The model's stored card (with its computed ``integrity`` section).
        ref: The model version.
        datasets: Stored cards of the datasets the card names, by ``NAME@VERSION``; a dataset
            missing here keeps the name-only component the card export makes.
        environment: The software environment, or ``None`` to leave it out.
        captured: When the environment was recorded, stated in the BOM's metadata.
        level: Who the BOM is for (NCSC 1.3); the cards are filtered accordingly.
    """
    bom = _card_bom(model_card, ref, level)
    model_ref = bom["metadata"]["component"]["bom-ref"]
    # 1. Replace name-only dataset components with each dataset's own component (card + hashes).
    components = []
    for placeholder in bom.get("components", []):
        dataset_ref = placeholder["bom-ref"].removeprefix("dataset:")
        card = datasets.get(dataset_ref)
        if card is None:
            components.append(placeholder)
            continue
        component = _card_bom(card, dataset_ref, level)["metadata"]["component"]
        component["bom-ref"] = placeholder["bom-ref"]
        components.append(component)
    # 2. The environment: libraries the model depends on.
    properties = bom["metadata"].setdefault("properties", [])
    if environment is not None:
        libraries = environment_components(environment)
        components += libraries
        bom["dependencies"] = [
            {"ref": model_ref, "dependsOn": [lib["bom-ref"] for lib in libraries]},
            *({"ref": lib["bom-ref"]} for lib in libraries),
        ]
        properties.append({"name": "bastion:environment:captured", "value": captured})
    else:
        properties.append({"name": "bastion:environment:captured", "value": "none"})
    if components:
        bom["components"] = components
    # 3. A new serial number: the same inputs give the same BOM, different ones a different one.
    digest = hashlib.sha256(json.dumps(bom, sort_keys=True).encode()).hexdigest()
    bom["serialNumber"] = uuid.uuid5(uuid.NAMESPACE_URL, f"bastion:bom:{digest}").urn
    validate_cyclonedx(bom)
    return bom


def bom_for(
    catalog: CatalogAPI,
    ref: str,
    *,
    environment: Sequence[Distribution] | None,
    captured: Captured,
    level: DisclosureLevel = DisclosureLevel.INTERNAL,
    include_environment: bool = True,
) -> dict[str, Any]:
    """The BOM of a registered model version, with the stored cards of its datasets.

    Without ``environment``, the one recorded in the model's card at registration is used.
    """
    info = catalog.show(ref)
    if info.summary.kind.value != "model":
        raise UsageError(
            f"{info.summary.ref} is a {info.summary.kind.value}, not a model",
            hint="bastion bom takes a model version; a dataset's card export is 'bastion card'",
        )
    names = [*info.card.get("training_datasets", ()), *info.card.get("evaluation_datasets", ())]
    datasets = {name: catalog.show(name).card for name in dict.fromkeys(names)}
    if environment is None and "environment" in info.card:
        environment = [Library(lib["name"], lib["version"]) for lib in info.card["environment"]]
    if not include_environment or level is DisclosureLevel.PUBLIC:
        environment = None  # library versions are internal (cards.DISCLOSURE_RULES)
    return build_bom(
        info.card,
        ref=info.summary.ref,
        datasets=datasets,
        environment=environment,
        captured=captured,
        level=level,
    )
