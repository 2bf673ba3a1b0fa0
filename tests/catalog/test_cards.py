"""Cards: validation naming the field, schema, HF and CycloneDX formats, disclosure levels."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from bastion.catalog.cards import (
    DISCLOSURE_RULES,
    MAX_CARD_BYTES,
    CardError,
    CardFormat,
    CardKind,
    DataCard,
    DisclosureLevel,
    ModelCard,
    card_from_dict,
    card_schema,
    export_card,
    load_card,
    load_card_text,
)
from bastion.catalog.service import Catalog
from bastion.cli.app import main
from bastion.store.workspace import Workspace

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cards.md"

# Every field carries a value that appears nowhere else, so its presence in an export is
# detectable as plain text in any format.
MODEL: dict[str, Any] = {
    "kind": "model",
    "name": "digits",
    "description": "Handwritten digit classifier",
    "task": "classification",
    "license": "Apache-2.0",
    "tags": ["vision"],
    "public_contact": "security@example.org",
    "intended_use": ["sorting postcodes"],
    "limitations": ["thick pens"],
    "known_biases": ["continental sevens"],
    "framework": "FRAMEWORK-MARK",
    "architecture": "ARCH-MARK",
    "parameter_count": 987654321,
    "training_datasets": ["trainmark@3"],
    "evaluation_datasets": ["evalmark@1"],
    "parent_model": "parentmark@7",
    "creator": {"name": "CREATOR-MARK", "email": "creator-mark@example.org"},
    "point_of_contact": {"name": "POC-MARK", "email": "poc-mark@example.org"},
    "authorised_users": ["AUTHUSER-MARK"],
    "sensitivity": "restricted",
    "performance": [{"name": "PERF-MARK", "value": 0.123456}],
    "expected_lifespan": "P17M",
    "retention": {"period": "P9Y", "until": "2031-07-19"},
    "retirement_method": "RETIRE-MARK",
    "integrity": {
        "manifest_sha256": "a" * 64,
        "files": [{"path": "model.pkl", "size": 12, "sha256": "b" * 64}],
        "key_id": "c" * 64,
    },
    "accepted_risks": [{"reason": "RISK-MARK", "by": "alice", "at": "2026-11-28T10:00:00Z"}],
    "environment": [{"name": "envlib-mark", "version": "6.6.6"}],
}
DATASET: dict[str, Any] = {
    "kind": "dataset",
    "name": "digits-train",
    "description": "Scanned digits",
    "collection": "COLLECTION-MARK",
    "maintainer": {"name": "MAINTAINER-MARK"},
    "creator": {"name": "DSCREATOR-MARK"},
    "authorised_users": ["DSUSER-MARK"],
    "sensitivity": "confidential",
    "retention": {"until": "2032-02-29"},
    "destruction_method": "DESTROY-MARK",
    "metrics": {"rows": 4242424, "features": 64, "label_counts": {"LABEL-MARK": 17}},
    "integrity": {"manifest_sha256": "a" * 64},
    "accepted_risks": [{"reason": "DSRISK-MARK", "by": "bob", "at": "2026-11-28T11:00:00Z"}],
}
COMPUTED = ("integrity", "accepted_risks", "environment")
# The text each internal field leaves in an export when it leaks.
MARKERS: dict[str, list[str]] = {
    "framework": ["FRAMEWORK-MARK"],
    "architecture": ["ARCH-MARK"],
    "parameter_count": ["987654321"],
    "training_datasets": ["trainmark"],
    "evaluation_datasets": ["evalmark"],
    "parent_model": ["parentmark"],
    "creator": ["CREATOR-MARK", "creator-mark@", "DSCREATOR-MARK"],
    "point_of_contact": ["POC-MARK", "poc-mark@"],
    "authorised_users": ["AUTHUSER-MARK", "DSUSER-MARK"],
    "sensitivity": ["restricted", "confidential"],
    "performance": ["PERF-MARK", "0.123456"],
    "expected_lifespan": ["P17M"],
    "retention": ["P9Y", "2031-07-19", "2032-02-29"],
    "retirement_method": ["RETIRE-MARK"],
    "accepted_risks": ["RISK-MARK", "DSRISK-MARK"],
    "collection": ["COLLECTION-MARK"],
    "maintainer": ["MAINTAINER-MARK"],
    "destruction_method": ["DESTROY-MARK"],
    "metrics": ["4242424", "LABEL-MARK"],
    "environment": ["envlib-mark", "6.6.6"],
}


def full(kind: CardKind) -> ModelCard | DataCard:
    return card_from_dict(MODEL if kind is CardKind.MODEL else DATASET, trusted=True)


def error_lines(exc: pytest.ExceptionInfo[CardError]) -> list[str]:
    return [line.strip() for line in exc.value.message.splitlines()[1:]]


# -- validation -------------------------------------------------------------------------------


def test_yaml_json_and_hf_front_matter_read_the_same_card(tmp_path: Path) -> None:
    data = {k: v for k, v in MODEL.items() if k not in COMPUTED}
    (tmp_path / "card.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "card.json").write_text(json.dumps(data))
    (tmp_path / "README.md").write_text(
        "---\n" + yaml.safe_dump({"bastion": data}) + "---\n# digits\n\nprose\n"
    )
    cards = [load_card(tmp_path / n) for n in ("card.yaml", "card.json", "README.md")]
    assert cards[0] == cards[1] == cards[2]
    assert isinstance(cards[0], ModelCard)
    assert cards[0].parent_model == "parentmark@7"
    assert cards[0].retention is not None and str(cards[0].retention.until) == "2031-07-19"


def test_every_problem_is_one_line_naming_its_field() -> None:
    text = (
        "kind: model\n"
        "description: x\n"
        "training_datasets: [ok@1, not-a-ref]\n"
        "retention: {period: 5 years}\n"
        "creator: {name: A, email: nope}\n"
        "parameter_count: -3\n"
        "retension: P5Y\n"
    )
    with pytest.raises(CardError) as exc:
        load_card_text(text, source="card.yaml")
    assert exc.value.message.startswith("card.yaml: the card is not valid:")
    assert sorted(error_lines(exc)) == sorted(
        [
            "field training_datasets[1]: not a catalog reference NAME@VERSION "
            "(e.g. digits-train@3)",
            "field retention.period: not an ISO 8601 duration such as P5Y, P18M or P90D",
            "field creator.email: not an email address",
            "field parameter_count: Input should be greater than or equal to 0",
            "field retension: unknown field (check the spelling against 'bastion card schema')",
        ]
    )
    assert exc.value.hint == "see 'bastion card schema model' for every field"


def test_missing_description_and_missing_kind_are_named() -> None:
    with pytest.raises(CardError) as exc:
        load_card_text("kind: dataset\n", source="c")
    assert error_lines(exc) == ["field description: Field required"]
    with pytest.raises(CardError, match="field kind: missing"):
        load_card_text("description: x\n", source="c")
    card = load_card_text("description: x\n", source="c", kind=CardKind.DATASET)
    assert isinstance(card, DataCard)
    with pytest.raises(CardError, match="field kind: is 'model' but a dataset card is needed"):
        load_card_text("kind: model\ndescription: x\n", source="c", kind=CardKind.DATASET)


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("model", "integrity", {"manifest_sha256": "a" * 64}),
        ("model", "accepted_risks", [{"reason": "r", "by": "b", "at": "t"}]),
        ("model", "environment", [{"name": "numpy", "version": "2.0"}]),
        ("dataset", "metrics", {"rows": 1, "features": 1}),
    ],
)
def test_a_card_file_cannot_claim_what_bastion_computes(kind: str, field: str, value: Any) -> None:
    data = {"kind": kind, "description": "x", field: value}
    with pytest.raises(CardError) as exc:
        card_from_dict(data, source="c")
    assert error_lines(exc) == [f"field {field}: is filled in by Bastion; remove it from the card"]
    assert getattr(card_from_dict(data, trusted=True), field)  # Bastion's own cards may


def test_unknown_schema_version_is_refused_not_half_read() -> None:
    with pytest.raises(CardError, match="schema_version: '2' is not supported") as exc:
        load_card_text("kind: model\nschema_version: '2'\ndescription: x\n", source="c")
    assert exc.value.hint is not None and "upgrade" in exc.value.hint


def test_bad_yaml_names_the_line_and_aliases_are_refused() -> None:
    with pytest.raises(CardError, match=r"c: not valid YAML at line 3"):
        load_card_text("kind: model\ndescription: x\nname: [y]]\nfoo: 1\n", source="c")
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\nkind: model\ndescription: x\n"
    with pytest.raises(CardError, match="YAML aliases are not allowed"):
        load_card_text(bomb, source="c")


def test_not_a_mapping_oversized_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(CardError, match="a card is a mapping of fields, not list"):
        load_card_text("- a\n- b\n", source="c")
    big = tmp_path / "big.yaml"
    big.write_text("kind: model\ndescription: " + "x" * MAX_CARD_BYTES + "\n")
    with pytest.raises(CardError, match="at most 1048576 bytes"):
        load_card(big)
    with pytest.raises(CardError, match="does not exist"):
        load_card(tmp_path / "absent.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"kind: model\ndescription: caf\xe9\n")
    with pytest.raises(CardError, match="must be UTF-8"):
        load_card(tmp_path / "latin1.yaml")


# -- schema -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(CardKind))
def test_json_schema_accepts_a_full_card_and_rejects_a_typo(kind: CardKind) -> None:
    schema = card_schema(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    document = json.loads(export_card(full(kind), CardFormat.JSON, DisclosureLevel.INTERNAL))
    assert list(validator.iter_errors(document)) == []
    errors = list(validator.iter_errors({**document, "retension": "P1Y"}))
    assert [e.validator for e in errors] == ["additionalProperties"]
    computed = {
        "model": ["accepted_risks", "environment", "integrity"],
        "dataset": ["accepted_risks", "integrity", "metrics"],
    }
    read_only = sorted(k for k, v in schema["properties"].items() if v.get("readOnly"))
    assert read_only == computed[kind.value]


# -- disclosure -------------------------------------------------------------------------------


def test_the_disclosure_table_covers_every_card_field_once() -> None:
    fields = [rule.field for rule in DISCLOSURE_RULES]
    assert len(fields) == len(set(fields))
    assert set(fields) == set(ModelCard.model_fields) | set(DataCard.model_fields)


def test_docs_state_the_same_disclosure_rules_as_the_code() -> None:
    rows = re.findall(r"^\| (\w+) \| (public|internal) \| (.+?) \|$", DOCS.read_text(), re.M)
    assert [(f, lvl, why) for f, lvl, why in rows] == [
        (r.field, r.level.value, r.reason) for r in DISCLOSURE_RULES
    ]


def test_markers_cover_every_internal_field() -> None:
    internal = {r.field for r in DISCLOSURE_RULES if r.level is DisclosureLevel.INTERNAL}
    assert internal == set(MARKERS)


@pytest.mark.parametrize("fmt", list(CardFormat))
@pytest.mark.parametrize("kind", list(CardKind))
def test_public_exports_leave_out_every_internal_field_in_every_format(
    fmt: CardFormat, kind: CardKind
) -> None:
    card = full(kind)
    internal = export_card(card, fmt, DisclosureLevel.INTERNAL, ref=f"{card.name}@2")
    public = export_card(card, fmt, DisclosureLevel.PUBLIC, ref=f"{card.name}@2")
    present = {f: m for f, ms in MARKERS.items() for m in ms if m in internal}
    # The internal export shows the card's internal fields, so the check below can fail...
    expected = {
        r.field
        for r in DISCLOSURE_RULES
        if r.level is DisclosureLevel.INTERNAL and r.field in type(card).model_fields
    }
    assert set(present) == expected
    # ...and the public export shows none of them.
    leaked = [m for ms in MARKERS.values() for m in ms if m in public]
    assert leaked == []
    assert card.description in public and "a" * 64 in public  # public fields stay


# -- formats ----------------------------------------------------------------------------------


def test_hf_export_round_trips_and_has_standard_keys() -> None:
    card = full(CardKind.MODEL)
    text = export_card(card, CardFormat.HF, DisclosureLevel.INTERNAL)
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["license"] == "Apache-2.0"
    assert front["pipeline_tag"] == "classification"
    assert front["library_name"] == "FRAMEWORK-MARK"
    assert "## Known biases\n\n- continental sevens" in text
    assert load_card_text(text, source="README.md", trusted=True) == card


def test_plain_hugging_face_card_is_mapped() -> None:
    text = (
        "---\nlicense: mit\ntags: vision\npipeline_tag: image-classification\n"
        "library_name: timm\ndatasets: [imagenet-1k, digits-train@3]\nbase_model: org/base\n"
        "language: en\n---\n# My model\n\nClassifies digits.\n\n## Training\n\nlots\n"
    )
    card = load_card_text(text, source="README.md")
    assert isinstance(card, ModelCard)
    assert (card.license, card.tags, card.task, card.framework) == (
        "mit",
        ("vision",),
        "image-classification",
        "timm",
    )
    assert card.description == "Classifies digits."
    assert card.training_datasets == ("digits-train@3",)  # hub ids are not catalog references
    assert card.parent_model is None
    dataset = load_card_text(
        "---\npretty_name: Digits\nsize_categories: [1K<n<10K]\nlicense: cc0-1.0\n---\n"
        "Scans of digits.\n",
        source="README.md",
    )
    assert isinstance(dataset, DataCard)
    assert (dataset.name, dataset.description) == ("Digits", "Scans of digits.")


@pytest.mark.parametrize("kind", list(CardKind))
@pytest.mark.parametrize("level", list(DisclosureLevel))
def test_cyclonedx_export_validates_against_the_official_schema(
    kind: CardKind, level: DisclosureLevel
) -> None:
    text = export_card(full(kind), CardFormat.CYCLONEDX, level, ref="asset@4")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    bom = json.loads(text)
    component = bom["metadata"]["component"]
    assert (component["name"], component["version"]) == ("asset", "4")
    assert component["type"] == ("machine-learning-model" if kind is CardKind.MODEL else "data")
    if kind is CardKind.MODEL and level is DisclosureLevel.INTERNAL:
        refs = [d["ref"] for d in component["modelCard"]["modelParameters"]["datasets"]]
        assert refs == ["dataset:trainmark@3", "dataset:evalmark@1"]
        assert {c["bom-ref"] for c in bom["components"]} == {*refs, "pkg:pypi/envlib-mark@6.6.6"}
        (library,) = [c for c in bom["components"] if c["type"] == "library"]
        assert (library["name"], library["version"]) == ("envlib-mark", "6.6.6")
        assert bom["dependencies"][0] == {"ref": component["bom-ref"],
                                          "dependsOn": ["pkg:pypi/envlib-mark@6.6.6"]}
        assert component["pedigree"]["ancestors"][0]["name"] == "parentmark"
    if kind is CardKind.MODEL:
        assert component["components"][0]["hashes"] == [{"alg": "SHA-256", "content": "b" * 64}]
    assert text == export_card(full(kind), CardFormat.CYCLONEDX, level, ref="asset@4")


# -- CLI --------------------------------------------------------------------------------------


def test_cli_schema_and_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["card", "schema", "dataset"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["properties"]["kind"]["const"] == "dataset"

    good = tmp_path / "card.yaml"
    good.write_text("kind: model\ndescription: digits\ntraining_datasets: [d@1]\n")
    assert main(["card", "validate", str(good), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["training_datasets"] == ["d@1"]
    assert "valid model card" in captured.err

    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: model\ndescription: digits\nparent_model: base\n")
    assert main(["card", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "field parent_model: not a catalog reference" in err
    assert "Traceback" not in err


def test_cli_exports_a_registered_card_and_audits_the_disclosure(
    workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "weights.npy"
    np.save(weights, np.arange(12, dtype=np.float32))
    card = {k: v for k, v in MODEL.items() if k not in COMPUTED}
    card = {**card, "training_datasets": [], "evaluation_datasets": [], "parent_model": None}
    Catalog(workspace).add_model("digits", weights, card={k: v for k, v in card.items() if v})
    home = str(workspace.settings.home)
    argv = ["--home", home, "card", "export", "digits@1", "--format", "cyclonedx"]
    assert main([*argv, "--level", "public"]) == 0
    public = capsys.readouterr().out
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(public) is None
    assert [m for ms in MARKERS.values() for m in ms if m in public] == []
    assert hashlib.sha256(weights.read_bytes()).hexdigest() in public
    assert main(argv) == 0  # internal by default
    assert "ARCH-MARK" in capsys.readouterr().out
    exports = workspace.audit.entries(action="card.export")
    assert [(e.subject, e.details["level"], e.actor) for e in exports] == [
        ("digits@1", "public", "tester"),
        ("digits@1", "internal", "tester"),
    ]
    assert main(["--home", home, "card", "export", "nothing@1"]) == 2
    assert "'nothing@1'" in capsys.readouterr().err
