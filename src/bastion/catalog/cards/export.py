"""Cards in other people's formats: YAML, JSON, Hugging Face front matter, CycloneDX 1.6 ML-BOM.

Every exporter starts from :func:`bastion.catalog.cards.disclose`, so a field the disclosure
table keeps internal never reaches a public export in any format::

    text = export_card(card, CardFormat.CYCLONEDX, DisclosureLevel.PUBLIC, ref="digits@2")
"""

from __future__ import annotations

import enum
import json
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from packaging.utils import canonicalize_name

from bastion import __version__
from bastion.catalog.cards.model import AnyCard, DisclosureLevel, disclose
from bastion.catalog.cards.parse import HF_KEYS, dump_yaml
from bastion.errors import IntegrityError

if TYPE_CHECKING:
    from cyclonedx.validation.json import JsonStrictValidator

__all__ = [
    "CardFormat",
    "export_card",
    "library_component",
    "to_cyclonedx",
    "to_hf",
    "validate_cyclonedx",
]


class CardFormat(enum.StrEnum):
    """Formats ``bastion card export`` writes."""

    YAML = "yaml"
    JSON = "json"
    HF = "hf"
    CYCLONEDX = "cyclonedx"


def export_card(
    card: AnyCard, fmt: CardFormat, level: DisclosureLevel, *, ref: str | None = None
) -> str:
    """Render ``card`` for the audience ``level`` in ``fmt``; ``ref`` is ``NAME@VERSION``."""
    data = disclose(card, level)
    if ref is not None:
        data["name"] = ref.partition("@")[0]
    if fmt is CardFormat.YAML:
        return dump_yaml(data)
    if fmt is CardFormat.JSON:
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if fmt is CardFormat.HF:
        return to_hf(data)
    bom = to_cyclonedx(data, ref=ref, level=level)
    validate_cyclonedx(bom)
    return json.dumps(bom, indent=2) + "\n"


# -- Hugging Face ------------------------------------------------------------------------------

_SECTIONS: Final = (
    ("intended_use", "Intended use"),
    ("limitations", "Limitations"),
    ("known_biases", "Known biases"),
)


def to_hf(data: Mapping[str, Any]) -> str:
    """A Hugging Face card: front matter (HF keys plus the whole card under ``bastion``), then
    Markdown written from the same, already filtered, data."""
    front: dict[str, Any] = {hf: data[ours] for ours, hf in HF_KEYS if ours in data}
    front["bastion"] = dict(data)
    lines = [
        f"# {data.get('name', 'Untitled ' + str(data.get('kind', 'asset')))}",
        "",
        str(data.get("description", "")).strip(),
        "",
    ]
    for key, title in _SECTIONS:
        if data.get(key):
            lines += [f"## {title}", "", *(f"- {item}" for item in data[key]), ""]
    if data.get("public_contact"):
        lines += ["## Contact", "", str(data["public_contact"]), ""]
    body = "\n".join(lines).rstrip() + "\n"
    return "---\n" + dump_yaml(front) + "---\n" + body


# -- CycloneDX 1.6 -----------------------------------------------------------------------------

_VALIDATORS: dict[str, JsonStrictValidator] = {}
# Card fields carried as CycloneDX properties ("bastion:card:FIELD"): the spec has no place
# for them, and properties are the spec's extension point.
_AS_PROPERTIES: Final = (
    "sensitivity",
    "public_contact",
    "parameter_count",
    "framework",
    "expected_lifespan",
    "retirement_method",
    "destruction_method",
    "collection",
)


def to_cyclonedx(
    data: Mapping[str, Any], *, ref: str | None, level: DisclosureLevel
) -> dict[str, Any]:
    """A CycloneDX 1.6 BOM whose main component carries the (filtered) card. Not validated
    here: whoever finishes the document (:func:`export_card`, ``bom.build_bom``) validates it
    once with :func:`validate_cyclonedx`, so Bastion never emits an invalid BOM."""
    name, _, version = (ref or str(data.get("name", "unnamed"))).partition("@")
    main_ref = f"{data['kind']}:{name}@{version}" if version else f"{data['kind']}:{name}"
    datasets = [
        _dataset_component(d)
        for d in _unique([*data.get("training_datasets", ()), *data.get("evaluation_datasets", ())])
    ]
    component: dict[str, Any] = {
        "type": "machine-learning-model" if data["kind"] == "model" else "data",
        "bom-ref": main_ref,
        "name": name,
    }
    if version:
        component["version"] = version
    if data.get("description"):
        component["description"] = data["description"]
    if data.get("license"):
        component["licenses"] = [{"license": {"name": data["license"]}}]
    if data.get("tags"):
        component["tags"] = list(data["tags"])
    authors = [
        _contact(data[k]) for k in ("creator", "point_of_contact", "maintainer") if k in data
    ]
    if authors:
        component["authors"] = authors
    integrity = data.get("integrity")
    if integrity:
        component["hashes"] = [{"alg": "SHA-256", "content": integrity["manifest_sha256"]}]
        component["components"] = [
            {
                "type": "file",
                "bom-ref": f"{main_ref}#{f['path']}",
                "name": f["path"],
                "hashes": [{"alg": "SHA-256", "content": f["sha256"]}],
            }
            for f in integrity.get("files", ())
        ]
    if data.get("parent_model"):
        parent, _, parent_version = str(data["parent_model"]).partition("@")
        component["pedigree"] = {
            "ancestors": [
                {
                    "type": "machine-learning-model",
                    "bom-ref": f"model:{data['parent_model']}",
                    "name": parent,
                    "version": parent_version,
                }
            ]
        }
    properties = _properties(data)
    if data["kind"] == "model":
        component["modelCard"] = _model_card(data, datasets, properties)
    else:
        component["data"] = [_data_entry(name, data)]
        if properties:
            component["properties"] = properties
    serial = uuid.uuid5(
        uuid.NAMESPACE_URL,
        "bastion:"
        + json.dumps([main_ref, level.value, integrity and integrity.get("manifest_sha256")]),
    )
    bom: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial.urn,
        "version": 1,
        "metadata": {
            "tools": {
                "components": [{"type": "application", "name": "bastion", "version": __version__}]
            },
            "component": component,
            "properties": [{"name": "bastion:disclosure", "value": level.value}],
        },
    }
    libraries = [
        library_component(lib["name"], lib["version"]) for lib in data.get("environment", ())
    ]
    if datasets or libraries:
        bom["components"] = datasets + libraries
    if libraries:
        bom["dependencies"] = [
            {"ref": main_ref, "dependsOn": [lib["bom-ref"] for lib in libraries]},
            *({"ref": lib["bom-ref"]} for lib in libraries),
        ]
    return bom


def _model_card(
    data: Mapping[str, Any], datasets: list[dict[str, Any]], properties: list[dict[str, str]]
) -> dict[str, Any]:
    card: dict[str, Any] = {"bom-ref": "card"}
    parameters: dict[str, Any] = {}
    if data.get("task"):
        parameters["task"] = data["task"]
    if data.get("architecture"):
        parameters["modelArchitecture"] = data["architecture"]
    if datasets:
        parameters["datasets"] = [{"ref": d["bom-ref"]} for d in datasets]
    if parameters:
        card["modelParameters"] = parameters
    if data.get("performance"):
        card["quantitativeAnalysis"] = {
            "performanceMetrics": [
                {
                    "type": m["name"],
                    "value": repr(m["value"]),
                    **({"slice": m["dataset"]} if m.get("dataset") else {}),
                }
                for m in data["performance"]
            ]
        }
    considerations: dict[str, Any] = {}
    if data.get("authorised_users"):
        considerations["users"] = list(data["authorised_users"])
    if data.get("intended_use"):
        considerations["useCases"] = list(data["intended_use"])
    if data.get("limitations"):
        considerations["technicalLimitations"] = list(data["limitations"])
    if data.get("known_biases"):
        considerations["ethicalConsiderations"] = [{"name": b} for b in data["known_biases"]]
    if considerations:
        card["considerations"] = considerations
    if properties:
        card["properties"] = properties
    return card


def _data_entry(name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "dataset", "name": name}
    if data.get("description"):
        entry["description"] = data["description"]
    if data.get("sensitivity"):
        entry["classification"] = data["sensitivity"]
    owners = [{"contact": _contact(data[k])} for k in ("creator", "maintainer") if k in data]
    if owners:
        entry["governance"] = {"owners": owners}
    return entry


def _dataset_component(ref: str) -> dict[str, Any]:
    name, _, version = ref.partition("@")
    return {
        "type": "data",
        "bom-ref": f"dataset:{ref}",
        "name": name,
        "version": version,
        "data": [{"type": "dataset", "name": name}],
    }


def _contact(contact: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(contact[k]) for k in ("name", "email") if contact.get(k)}


def _properties(data: Mapping[str, Any]) -> list[dict[str, str]]:
    props = [
        {"name": f"bastion:card:{key}", "value": str(data[key])}
        for key in _AS_PROPERTIES
        if key in data
    ]
    retention = data.get("retention") or {}
    props += [
        {"name": f"bastion:card:retention.{k}", "value": str(v)} for k, v in retention.items()
    ]
    metrics = data.get("metrics") or {}
    props += [
        {"name": f"bastion:card:metrics.{k}", "value": str(metrics[k])}
        for k in ("rows", "features")
        if k in metrics
    ]
    props += [
        {"name": f"bastion:card:metrics.label_counts.{label}", "value": str(count)}
        for label, count in (metrics.get("label_counts") or {}).items()
    ]
    props += [
        {"name": "bastion:card:accepted_risk", "value": str(r["reason"])}
        for r in data.get("accepted_risks", ())
    ]
    props += [
        {"name": "bastion:card:authorised_user", "value": str(u)}
        for u in data.get("authorised_users", ())
        if data["kind"] == "dataset"
    ]
    return props


def library_component(name: str, version: str | None) -> dict[str, Any]:
    """A CycloneDX ``library`` component for a PyPI distribution, keyed by its package URL
    (purl-spec: the PEP 503 name, lower case, ``-`` for runs of ``-_.``)."""
    ref = "pkg:pypi/" + canonicalize_name(name)
    if version:
        ref += "@" + urllib.parse.quote(version, safe="._-~!")
    component: dict[str, Any] = {"type": "library", "bom-ref": ref, "name": name, "purl": ref}
    if version:
        component["version"] = version
    return component


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def validate_cyclonedx(bom: Mapping[str, Any], version: str = "1.6") -> None:
    """Check ``bom`` against CycloneDX's JSON schema ``version`` (shipped with
    cyclonedx-python-lib, so offline; loaded on first use); raise :class:`IntegrityError`
    naming where it is invalid."""
    validator = _VALIDATORS.get(version)
    if validator is None:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator

        schema = SchemaVersion.from_version(version)
        validator = _VALIDATORS[version] = JsonStrictValidator(schema)
    error = validator.validate_str(json.dumps(bom))
    if error is not None:
        detail = error.data  # a jsonschema ValidationError
        where = "/".join(str(p) for p in getattr(detail, "absolute_path", ()))
        message = getattr(detail, "message", str(detail))
        raise IntegrityError(
            f"the BOM does not validate against CycloneDX {version} at "
            f"/{where}: {message}",
            hint="this is a Bastion bug; please report it with the card or model reference",
        )
