"""Cards as versioned pydantic models: the security metadata NCSC 2.5 asks for.

A card is what people write about an asset (who made it, what it is for, how long it lives, how
it ends); Bastion adds what it computes itself (digests, signature, dataset metrics, accepted
risks), which a card file may not claim::

    >>> card = card_from_dict({"kind": "model", "description": "digits classifier"})
    >>> card.kind, card.schema_version
    ('model', '1')
    >>> "training_datasets" in disclose(card, DisclosureLevel.PUBLIC)
    False

What a card may reveal outside the organisation (NCSC 1.3) is one declarative table,
:data:`DISCLOSURE_RULES`, documented in ``docs/cards.md``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.config import JsonDict

from bastion.errors import UsageError

__all__ = [
    "CARD_SCHEMA_VERSION",
    "DISCLOSURE_RULES",
    "MAX_CARD_BYTES",
    "AcceptedRisk",
    "AnyCard",
    "CardError",
    "CardKind",
    "Contact",
    "DataCard",
    "DatasetMetrics",
    "DisclosureLevel",
    "DisclosureRule",
    "FileDigest",
    "Integrity",
    "Metric",
    "ModelCard",
    "Retention",
    "Sensitivity",
    "card_from_dict",
    "card_schema",
    "disclose",
]

CARD_SCHEMA_VERSION: Final = "1"
MAX_CARD_BYTES: Final = 1 << 20
"""A card is prose and references; anything larger is refused before parsing."""

_TRUSTED: Final = "bastion_computed"


class CardError(UsageError):
    """A card does not validate; the message lists each field and its problem."""


class CardKind(enum.StrEnum):
    """Which asset a card describes."""

    MODEL = "model"
    DATASET = "dataset"


class Sensitivity(enum.StrEnum):
    """How sensitive an asset is; decides who may read it and how it must end."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class DisclosureLevel(enum.StrEnum):
    """Who an exported card is for (NCSC 1.3): the public, or people inside the organisation."""

    PUBLIC = "public"
    INTERNAL = "internal"


AssetRef = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}@[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    ),
    Field(description="A catalog reference NAME@VERSION, e.g. digits-train@3."),
]
IsoDuration = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        pattern=r"^P(\d+Y(\d+M)?(\d+W)?(\d+D)?|\d+M(\d+W)?(\d+D)?|\d+W(\d+D)?|\d+D)$",
    ),
    Field(description="An ISO 8601 duration in years, months, weeks or days: P5Y, P18M, P90D."),
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000)]
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False)


class Contact(_Strict):
    """A person or team to reach about the asset."""

    name: Line
    email: (
        Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)]
        | None
    ) = None
    organisation: Line | None = None
    role: Line | None = None


class Retention(_Strict):
    """How long the asset is kept: a period, a date, or both (NCSC 5.1)."""

    period: IsoDuration | None = None
    until: date | None = None


class Metric(_Strict):
    """One measured performance figure (accuracy, F1…), with what it was measured on."""

    name: Line
    value: float
    dataset: AssetRef | None = None


class FileDigest(_Strict):
    """One file of a version's manifest."""

    path: Line
    size: int = Field(ge=0)
    sha256: Sha256


class Integrity(_Strict):
    """What Bastion computed and signed: the manifest digest, each file, the signing key."""

    manifest_sha256: Sha256
    files: tuple[FileDigest, ...] = ()
    key_id: Sha256 | None = None
    signed_at: Line | None = None


class DatasetMetrics(_Strict):
    """Key figures Bastion computes from the data itself, never taken from the author."""

    rows: int = Field(ge=0)
    features: int = Field(ge=0)
    label_counts: dict[str, int] = Field(default_factory=dict)


class Library(_Strict):
    """One installed distribution of the software environment a model was registered from."""

    name: Line
    version: Line


class AcceptedRisk(_Strict):
    """Findings at or above the gate that someone accepted with ``--accept-risk``."""

    reason: Text
    by: Line
    at: Line
    findings: tuple[Line, ...] = ()


_READ_ONLY: Final[JsonDict] = {"readOnly": True}
COMPUTED_FIELDS: Final = ("integrity", "metrics", "accepted_risks", "environment")
"""Fields only Bastion fills in; a card file that claims one is refused."""


class _Card(_Strict):
    schema_version: Literal["1"] = CARD_SCHEMA_VERSION
    name: Line | None = Field(None, description="Asset name; filled in from the catalog.")
    description: Text
    sensitivity: Sensitivity | None = None
    license: Line | None = None
    tags: tuple[Line, ...] = ()
    creator: Contact | None = None
    public_contact: Line | None = Field(
        None, description="Where outsiders report problems (security@…); the only public contact."
    )
    intended_use: tuple[Text, ...] = ()
    limitations: tuple[Text, ...] = ()
    known_biases: tuple[Text, ...] = ()
    authorised_users: tuple[Line, ...] = ()
    retention: Retention | None = None
    integrity: Integrity | None = Field(None, json_schema_extra=_READ_ONLY)
    accepted_risks: tuple[AcceptedRisk, ...] = Field((), json_schema_extra=_READ_ONLY)

    @field_validator("integrity", "accepted_risks", mode="before")
    @classmethod
    def _computed_only(cls, value: Any, info: ValidationInfo) -> Any:
        return _reject_claimed(value, info)


def _reject_claimed(value: Any, info: ValidationInfo) -> Any:
    if not (info.context or {}).get(_TRUSTED):
        raise ValueError("is filled in by Bastion; remove it from the card")
    return value


class ModelCard(_Card):
    """A model's card (NCSC 2.5): provenance, scope, lifespan and how it is retired."""

    kind: Literal["model"] = "model"
    task: Line | None = Field(None, description="classification, regression, generation…")
    framework: Line | None = None
    architecture: Line | None = None
    parameter_count: int | None = Field(None, ge=0)
    training_datasets: tuple[AssetRef, ...] = ()
    evaluation_datasets: tuple[AssetRef, ...] = ()
    parent_model: AssetRef | None = Field(
        None, description="The model this one was fine-tuned or continued from (derived_from)."
    )
    point_of_contact: Contact | None = None
    performance: tuple[Metric, ...] = ()
    expected_lifespan: IsoDuration | None = None
    retirement_method: Text | None = None
    environment: tuple[Library, ...] = Field(
        (),
        json_schema_extra=_READ_ONLY,
        description="Python distributions installed where the model was registered (NCSC 2.3).",
    )

    @field_validator("environment", mode="before")
    @classmethod
    def _environment_computed(cls, value: Any, info: ValidationInfo) -> Any:
        return _reject_claimed(value, info)


class DataCard(_Card):
    """A dataset's card (NCSC 2.5): origin, sensitivity, who may use it, and its end."""

    kind: Literal["dataset"] = "dataset"
    collection: Text | None = Field(None, description="How the data was collected and labelled.")
    maintainer: Contact | None = None
    destruction_method: Text | None = None
    metrics: DatasetMetrics | None = Field(None, json_schema_extra=_READ_ONLY)

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics_computed(cls, value: Any, info: ValidationInfo) -> Any:
        return _reject_claimed(value, info)


AnyCard = ModelCard | DataCard
_ADAPTER: Final[TypeAdapter[AnyCard]] = TypeAdapter(Annotated[AnyCard, Field(discriminator="kind")])
_MODELS: Final[dict[CardKind, type[ModelCard] | type[DataCard]]] = {
    CardKind.MODEL: ModelCard,
    CardKind.DATASET: DataCard,
}


# -- disclosure (NCSC 1.3) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DisclosureRule:
    """Whether one card field may leave the organisation, and why."""

    field: str
    """The card field (top level)."""
    level: DisclosureLevel
    """The lowest audience allowed to see it: ``PUBLIC`` means everyone."""
    reason: str
    """Why, in a sentence: what an attacker would gain, or why users need it."""


_P, _I = DisclosureLevel.PUBLIC, DisclosureLevel.INTERNAL
DISCLOSURE_RULES: Final[tuple[DisclosureRule, ...]] = (
    DisclosureRule("schema_version", _P, "needed to read the card"),
    DisclosureRule("kind", _P, "needed to read the card"),
    DisclosureRule("name", _P, "the asset's published name"),
    DisclosureRule("description", _P, "what users are told the asset is"),
    DisclosureRule("license", _P, "users need the terms"),
    DisclosureRule("tags", _P, "discovery"),
    DisclosureRule("task", _P, "users need to know what the model does"),
    DisclosureRule("intended_use", _P, "safe use depends on it"),
    DisclosureRule("limitations", _P, "safe use depends on it"),
    DisclosureRule("known_biases", _P, "fair use depends on it"),
    DisclosureRule("public_contact", _P, "where outsiders report vulnerabilities (NCSC 5.2)"),
    DisclosureRule("integrity", _P, "recipients verify digests and the signature"),
    DisclosureRule("training_datasets", _I, "training data helps poisoning and inference attacks"),
    DisclosureRule("evaluation_datasets", _I, "test data helps tune evasions against the model"),
    DisclosureRule("collection", _I, "how data is gathered shows where to poison it"),
    DisclosureRule("metrics", _I, "row and label counts describe the training data"),
    DisclosureRule("architecture", _I, "architecture lets an attacker build a surrogate model"),
    DisclosureRule("framework", _I, "names the loader and its known vulnerabilities"),
    DisclosureRule("parameter_count", _I, "sizes the surrogate for extraction attacks"),
    DisclosureRule("parent_model", _I, "a known parent model enables transfer attacks (NCSC 1.3)"),
    DisclosureRule("performance", _I, "exact performance guides attack development (NCSC 1.3)"),
    DisclosureRule("creator", _I, "internal contacts are phishing targets"),
    DisclosureRule("point_of_contact", _I, "internal contacts are phishing targets"),
    DisclosureRule("maintainer", _I, "internal contacts are phishing targets"),
    DisclosureRule("authorised_users", _I, "names who holds access worth stealing"),
    DisclosureRule("sensitivity", _I, "marks which assets are worth targeting"),
    DisclosureRule("accepted_risks", _I, "lists known, unfixed weaknesses"),
    DisclosureRule("environment", _I, "library versions point attackers at known CVEs"),
    DisclosureRule("retention", _I, "internal records management"),
    DisclosureRule("expected_lifespan", _I, "internal records management"),
    DisclosureRule("retirement_method", _I, "internal records management"),
    DisclosureRule("destruction_method", _I, "internal records management"),
)
_LEVEL_OF: Final = {rule.field: rule.level for rule in DISCLOSURE_RULES}
_FIRST: Final = ("schema_version", "kind", "name")


def disclose(card: AnyCard, level: DisclosureLevel) -> dict[str, Any]:
    """The card as plain JSON data, keeping only the fields ``level`` may see.

    A field without a rule is treated as internal: a new field stays private until someone
    decides otherwise (fail closed).
    """
    dumped = card.model_dump(mode="json", exclude_none=True)
    data: dict[str, Any] = {k: dumped[k] for k in _FIRST if k in dumped}
    data.update((k, v) for k, v in dumped.items() if k not in data and v not in ([], {}))
    if level is DisclosureLevel.INTERNAL:
        return data
    return {k: v for k, v in data.items() if _LEVEL_OF.get(k) is DisclosureLevel.PUBLIC}


def card_from_dict(
    data: Any, *, source: str = "card", kind: CardKind | None = None, trusted: bool = False
) -> AnyCard:
    """Validate plain data as a card.

    ``trusted`` is for cards Bastion stored itself: only they may carry computed fields
    (digests, metrics, accepted risks). ``kind`` is used when the data does not say.
    """
    if not isinstance(data, Mapping):
        raise CardError(
            f"{source}: a card is a mapping of fields, not {type(data).__name__}",
            hint="see 'bastion card schema model' or 'bastion card schema dataset'",
        )
    data = dict(data)
    if "kind" not in data:
        if kind is None:
            raise CardError(
                f"{source}: field kind: missing (model or dataset)",
                hint="add 'kind: model' or 'kind: dataset'",
            )
        data["kind"] = kind.value
    elif kind is not None and data["kind"] != kind.value:
        raise CardError(
            f"{source}: field kind: is {data['kind']!r} but a {kind.value} card is needed"
        )
    version = data.get("schema_version", CARD_SCHEMA_VERSION)
    if str(version) != CARD_SCHEMA_VERSION:
        raise CardError(
            f"{source}: field schema_version: {version!r} is not supported "
            f"(this Bastion reads version {CARD_SCHEMA_VERSION})",
            hint="upgrade Bastion, or rewrite the card against 'bastion card schema'",
        )
    data["schema_version"] = CARD_SCHEMA_VERSION
    try:
        return _ADAPTER.validate_python(data, context={_TRUSTED: trusted})
    except ValidationError as exc:
        raise CardError(
            f"{source}: the card is not valid:\n" + "\n".join(_describe(exc)),
            hint=f"see 'bastion card schema {data['kind']}' for every field",
        ) from None


def card_schema(kind: CardKind) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a card kind; computed fields are ``readOnly``."""
    schema = _MODELS[kind].model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:bastion:card:{kind.value}:{CARD_SCHEMA_VERSION}"
    return schema


def _describe(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [part for part in error["loc"] if part not in ("model", "dataset")]
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling against 'bastion card schema')"
        elif error["type"] == "string_pattern_mismatch":
            message = _PATTERN_HINTS.get(_last_name(loc), message)
        lines.append(f"  field {path or '(card)'}: {message}")
    return lines


def _last_name(loc: list[int | str]) -> str:
    names = [p for p in loc if isinstance(p, str)]
    return names[-1] if names else ""


_REF_HINT: Final = "not a catalog reference NAME@VERSION (e.g. digits-train@3)"
_DURATION_HINT: Final = "not an ISO 8601 duration such as P5Y, P18M or P90D"
_PATTERN_HINTS: Final = {
    "training_datasets": _REF_HINT,
    "evaluation_datasets": _REF_HINT,
    "parent_model": _REF_HINT,
    "dataset": _REF_HINT,
    "period": _DURATION_HINT,
    "expected_lifespan": _DURATION_HINT,
    "email": "not an email address",
    "sha256": "not a lowercase hex SHA-256 digest",
    "manifest_sha256": "not a lowercase hex SHA-256 digest",
}
