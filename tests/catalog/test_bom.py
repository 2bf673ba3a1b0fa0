"""``bastion bom``: a CycloneDX 1.6 BOM of a registered model, its datasets and environment."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest

from bastion import deps
from bastion.catalog.bom import build_bom
from bastion.catalog.cards import validate_cyclonedx
from bastion.catalog.service import Catalog
from bastion.cli.app import main
from bastion.errors import IntegrityError
from bastion.store.workspace import Workspace


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def registered(workspace: Workspace, tmp_path: Path) -> dict[str, Path]:
    """A real dataset (CSV) and a model (NumPy weights + config) trained on it."""
    data = tmp_path / "train.csv"
    rng = np.random.default_rng(0)
    np.savetxt(data, rng.normal(size=(50, 4)), delimiter=",", header="a,b,c,d", comments="")
    model = tmp_path / "model"
    model.mkdir()
    np.save(model / "weights.npy", rng.normal(size=(4, 3)).astype("float32"))
    (model / "config.json").write_text('{"layers": 1}', encoding="utf-8")
    catalog = Catalog(workspace)
    catalog.add_dataset("train", data, card={"description": "training rows"})
    catalog.add_model(
        "clf",
        model,
        trained_on=["train@1"],
        card={"description": "a classifier", "tags": ["tabular"]},
    )
    return {"data": data, "model": model}


def test_bom_of_a_registered_model(
    workspace: Workspace, registered: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "clf.cdx.json"
    assert main(["--home", str(workspace.settings.home), "bom", "clf@1", "--output", str(out)]) == 0
    bom = json.loads(out.read_text(encoding="utf-8"))
    assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.6")
    model = bom["metadata"]["component"]
    assert (model["type"], model["name"], model["version"]) == (
        "machine-learning-model",
        "clf",
        "1",
    )
    files = {f["name"]: f["hashes"][0]["content"] for f in model["components"]}
    assert files == {
        "config.json": _sha256(registered["model"] / "config.json"),
        "weights.npy": _sha256(registered["model"] / "weights.npy"),
    }
    assert model["modelCard"]["modelParameters"]["datasets"] == [{"ref": "dataset:train@1"}]
    (dataset,) = [c for c in bom["components"] if c["type"] == "data"]
    assert dataset["bom-ref"] == "dataset:train@1"
    assert dataset["components"][0]["hashes"][0]["content"] == _sha256(registered["data"])
    libraries = {c["name"]: c for c in bom["components"] if c["type"] == "library"}
    packaging = libraries["packaging"]
    assert packaging["version"] == importlib.metadata.version("packaging")
    assert packaging["purl"] == f"pkg:pypi/packaging@{packaging['version']}"
    assert len(libraries) == len({(d.metadata["Name"]) for d in importlib.metadata.distributions()})
    (model_deps,) = [d for d in bom["dependencies"] if d["ref"] == model["bom-ref"]]
    assert set(model_deps["dependsOn"]) == {c["bom-ref"] for c in libraries.values()}
    # the environment recorded when the model was registered, not the one of this export
    assert {"name": "bastion:environment:captured", "value": "registration"} in bom["metadata"][
        "properties"
    ]
    (entry,) = workspace.audit.entries(action="model.bom")
    assert entry.subject == "clf@1" and entry.details["serial"] == bom["serialNumber"]


def test_bom_without_environment_and_for_the_public(
    workspace: Workspace, registered: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(workspace.settings.home)
    assert main(["--home", home, "bom", "clf@1", "--no-environment", "--level", "public"]) == 0
    bom = json.loads(capsys.readouterr().out)
    assert not [c for c in bom.get("components", []) if c["type"] == "library"]
    properties = bom["metadata"]["properties"]
    assert {"name": "bastion:disclosure", "value": "public"} in properties
    assert {"name": "bastion:environment:captured", "value": "none"} in properties


def test_bom_of_a_dataset_is_refused(
    workspace: Workspace, registered: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--home", str(workspace.settings.home), "bom", "train@1"]) == 2
    assert "is a dataset, not a model" in capsys.readouterr().err


def test_purl_encodes_local_versions_and_the_bom_validates() -> None:
    card = {"kind": "model", "description": "m", "name": "m"}
    environment = [
        deps.Package("Foo_Bar", "1.0+cpu", "t"),
        deps.Package("foo-bar", "1.0+cpu", "t"),  # the same distribution spelled differently
        deps.Package("nover", None, "t", "unknown"),
    ]
    bom = build_bom(card, ref="m@1", datasets={}, environment=environment)
    libraries = [c for c in bom["components"] if c["type"] == "library"]
    assert [c["purl"] for c in libraries] == ["pkg:pypi/foo-bar@1.0%2Bcpu", "pkg:pypi/nover"]


def test_invalid_bom_is_an_integrity_error() -> None:
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "components": [{"type": "not-a-type", "name": "x"}],
    }
    with pytest.raises(IntegrityError, match=r"does not validate against CycloneDX 1\.6"):
        validate_cyclonedx(bom)


def test_public_bom_leaves_out_the_recorded_environment(
    workspace: Workspace, registered: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(workspace.settings.home)
    assert main(["--home", home, "bom", "clf@1"]) == 0
    internal = json.loads(capsys.readouterr().out)
    assert [c for c in internal["components"] if c["type"] == "library"]
    assert main(["--home", home, "bom", "clf@1", "--level", "public"]) == 0
    public = json.loads(capsys.readouterr().out)
    assert not [c for c in public.get("components", []) if c["type"] == "library"]


def test_a_bom_is_validated_once_whatever_it_holds(
    workspace: Workspace, registered: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model's and each dataset's components are built unvalidated; the finished BOM is
    checked against the schema once (it was N + 2 times for N datasets)."""
    from cyclonedx.validation.json import JsonStrictValidator

    from bastion.catalog.bom import bom_for

    calls: list[int] = []
    original = JsonStrictValidator.validate_str

    def counting(self: JsonStrictValidator, data: str) -> object:
        calls.append(len(data))
        return original(self, data)

    monkeypatch.setattr(JsonStrictValidator, "validate_str", counting)
    document = bom_for(Catalog(workspace), "clf@1", environment=None, captured="registration")
    assert any(c.get("bom-ref") == "dataset:train@1" for c in document["components"])
    assert len(calls) == 1 and calls[0] == len(json.dumps(document))
