"""Model and dataset cards: the security metadata NCSC 2.5 asks for.

``model`` holds the versioned pydantic models, validation and the disclosure table (NCSC 1.3);
``parse`` reads cards people write (YAML, JSON, Hugging Face front matter); ``export`` writes
them in other people's formats (YAML, JSON, Hugging Face, CycloneDX 1.6). Imports go
``export → parse → model``::

    >>> from bastion.catalog.cards import load_card_text, export_card, CardFormat, DisclosureLevel
    >>> card = load_card_text("kind: model\\ndescription: d\\narchitecture: cnn\\n", source="x")
    >>> "architecture" in export_card(card, CardFormat.JSON, DisclosureLevel.PUBLIC)
    False
"""

from __future__ import annotations

from bastion.catalog.cards.export import (
    CardFormat,
    export_card,
    library_component,
    to_cyclonedx,
    to_hf,
    validate_cyclonedx,
)
from bastion.catalog.cards.model import (
    CARD_SCHEMA_VERSION,
    COMPUTED_FIELDS,
    DISCLOSURE_RULES,
    MAX_CARD_BYTES,
    AcceptedRisk,
    AnyCard,
    CardError,
    CardKind,
    Contact,
    DataCard,
    DatasetMetrics,
    DisclosureLevel,
    DisclosureRule,
    FileDigest,
    Integrity,
    Metric,
    ModelCard,
    Retention,
    Sensitivity,
    card_from_dict,
    card_schema,
    disclose,
)
from bastion.catalog.cards.parse import (
    card_from_hf,
    dump_yaml,
    load_card,
    load_card_text,
    safe_yaml,
    split_front_matter,
)

__all__ = [
    "CARD_SCHEMA_VERSION",
    "COMPUTED_FIELDS",
    "DISCLOSURE_RULES",
    "MAX_CARD_BYTES",
    "AcceptedRisk",
    "AnyCard",
    "CardError",
    "CardFormat",
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
    "card_from_hf",
    "card_schema",
    "disclose",
    "dump_yaml",
    "export_card",
    "library_component",
    "load_card",
    "load_card_text",
    "safe_yaml",
    "split_front_matter",
    "to_cyclonedx",
    "to_hf",
    "validate_cyclonedx",
]
