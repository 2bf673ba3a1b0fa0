"""Keras .keras and .h5 files saved by Keras 3 (torch backend), then edited as an attacker would."""

from __future__ import annotations

import base64
import json
import marshal
import zipfile
from pathlib import Path
from typing import Any

import h5py
import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from tests.scan.corpus_formats import first_object, keras_benign, keras_lambda
from tests.scan.formats.conftest import rules, scan_file

from bastion.findings import Severity
from bastion.scan.formats.keras import KerasScanner, review_config
from bastion.scan.interface import ScanLimits

SCANNER = KerasScanner()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keras")
    canary = root / "CANARY"
    paths = {}
    for name, build in [("benign.keras", keras_benign), ("benign.h5", keras_benign),
                        ("lambda.keras", keras_lambda), ("lambda.h5", keras_lambda)]:
        paths[name] = root / name
        build(paths[name], canary)
    paths["canary"] = canary
    return paths


def _edited(tmp_path: Path, clean: Path, edit: Any) -> Path:
    path = tmp_path / "edited.keras"
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            dst.writestr(info, data)
    return path


@pytest.mark.parametrize("name", ["benign.keras", "benign.h5"])
def test_benign_models_have_no_findings(models: dict[str, Path], name: str) -> None:
    findings, members = scan_file(SCANNER, models[name])
    assert findings == []
    if name.endswith(".keras"):
        assert [m.name for m in members] == ["model.weights.h5"]


@pytest.mark.parametrize("name", ["lambda.keras", "lambda.h5"])
def test_lambda_in_a_nested_model_is_critical(models: dict[str, Path], name: str) -> None:
    findings, _ = scan_file(SCANNER, models[name])
    (found,) = findings
    assert found.rule == "keras.lambda.bytecode" and found.severity is Severity.CRITICAL
    # The lambda sits in a Sequential nested inside the Functional model.
    assert found.evidence["where"].startswith("$.config.layers[")
    assert ".config.layers[" in found.evidence["where"].split("$.config.layers[", 1)[1]
    assert not models["canary"].exists()


def test_weights_member_is_handed_back_and_scanned_as_hdf5(models: dict[str, Path]) -> None:
    _, (member,) = scan_file(SCANNER, models["benign.keras"])
    assert member.source.location.member == "model.weights.h5"
    with member.source.open() as stream:
        assert stream.read(8) == b"\x89HDF\r\n\x1a\n"
    assert list(SCANNER.scan(member.source, ScanLimits())) == []


def test_layer_from_outside_keras(models: dict[str, Path], tmp_path: Path) -> None:
    def edit(config: dict[str, Any]) -> None:
        first_object(config, "LSTM").update(module="evil.layers", registered_name="evil>LSTM")

    (found,) = scan_file(SCANNER, _edited(tmp_path, models["benign.keras"], edit))[0]
    assert found.rule == "keras.module.external" and found.severity is Severity.HIGH
    assert found.evidence["class_name"] == "LSTM"


def test_function_from_outside_keras(models: dict[str, Path], tmp_path: Path) -> None:
    def edit(config: dict[str, Any]) -> None:
        dense = first_object(config, "Dense")
        dense["config"]["activation"] = {"module": "os", "class_name": "function",
                                         "config": "system", "registered_name": "system"}

    (found,) = scan_file(SCANNER, _edited(tmp_path, models["benign.keras"], edit))[0]
    assert found.rule == "keras.module.external" and found.evidence["module"] == "os"


@pytest.mark.parametrize("api", ["get_file", "enable_unsafe_deserialization", "load_model"])
def test_non_modelling_keras_apis(models: dict[str, Path], tmp_path: Path, api: str) -> None:
    def edit(config: dict[str, Any]) -> None:
        first_object(config, "Dense")["config"]["activation"] = {
            "module": "keras.utils", "class_name": "function", "config": api,
            "registered_name": None}

    findings = scan_file(SCANNER, _edited(tmp_path, models["benign.keras"], edit))[0]
    assert [(f.rule, f.evidence["name"]) for f in findings] == [("keras.api.unsafe", api)]


def test_layer_that_opens_a_file(models: dict[str, Path], tmp_path: Path) -> None:
    def edit(config: dict[str, Any]) -> None:
        first_object(config, "Dense")["config"]["vocabulary"] = "/etc/passwd"

    (found,) = scan_file(SCANNER, _edited(tmp_path, models["benign.keras"], edit))[0]
    assert found.rule == "keras.layer.external-file"
    assert found.evidence["value"] == "/etc/passwd"


def test_archive_without_config(tmp_path: Path) -> None:
    path = tmp_path / "x.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", "{}")
    assert rules(scan_file(SCANNER, path)[0]) == {"keras.config.invalid"}


def test_config_that_is_not_json(models: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(models["benign.keras"]) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, b"{not json" if info.filename == "config.json" else src.read(info))
    assert rules(scan_file(SCANNER, path)[0]) == {"keras.config.invalid"}


def _legacy_lambda(code: str) -> dict[str, Any]:
    """tf.keras 2's Lambda config, as stored in .h5 model_config and SavedModel metadata."""
    return {"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {
        "name": "lambda", "function": [code, None, None], "function_type": "lambda",
        "module": "__main__", "output_shape": None, "output_shape_type": "raw",
        "arguments": {}}}]}}


def test_legacy_tf_keras_lambda_is_one_critical_finding() -> None:
    code = base64.encodebytes(marshal.dumps(compile("1 + 1", "<l>", "eval"))).decode()
    issues = review_config(_legacy_lambda(code))
    assert [(i.rule, i.where) for i in issues] == [
        ("keras.lambda.bytecode", "$.config.layers[0].config"),
        ("keras.module.external", "$.config.layers[0].config")]


def test_bytecode_hidden_under_any_key_is_found() -> None:
    code = base64.b64encode(marshal.dumps(compile("1", "<l>", "eval"))).decode()
    (issue,) = review_config({"class_name": "Dense", "config": {"note": {"x": [code]}}})
    assert issue.rule == "keras.lambda.bytecode" and issue.where == "$.config.note.x[0]"


def test_tf_op_lambda_calling_write_file() -> None:
    (issue,) = review_config({"class_name": "TFOpLambda", "config": {
        "name": "w", "function": "io.write_file"}})
    assert issue.rule == "keras.layer.unsafe-op"


def test_hdf5_external_link_and_external_storage(tmp_path: Path) -> None:
    path = tmp_path / "links.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("ok", data=np.zeros(3))
        handle["weights"] = h5py.ExternalLink("/etc/passwd", "/")
        handle.create_group("g").create_dataset(
            "ext", shape=(4,), dtype="u1", external=[(str(tmp_path / "outside.bin"), 0, 4)])
    findings, _ = scan_file(SCANNER, path)
    assert sorted((f.rule, f.evidence["object"]) for f in findings) == [
        ("hdf5.external-file", "/g/ext"), ("hdf5.external-file", "/weights")]


def test_unreadable_hdf5_is_malformed(models: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / "cut.h5"
    path.write_bytes(models["benign.h5"].read_bytes()[:600])
    assert rules(scan_file(SCANNER, path)[0]) == {"hdf5.malformed"}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12)
    | st.sampled_from(["__lambda__", "lambda", "keras.layers", "os", "Lambda", "TFOpLambda"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["class_name", "module", "registered_name", "config", "function",
                         "function_type", "vocabulary", "layers", "x"]), inner, max_size=5),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_fuzz_review_config_never_raises(config: object) -> None:
    for issue in review_config(config):
        assert issue.rule.startswith("keras.")


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_fuzz_bytes_never_raise(tmp_path: Path, data: bytes) -> None:
    for prefix in (b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"):
        path = tmp_path / "fuzz.bin"
        path.write_bytes(prefix + data)
        scan_file(SCANNER, path)


def test_compressed_archive_through_the_engine(models: dict[str, Path], tmp_path: Path) -> None:
    from bastion.scan import scan

    path = tmp_path / "deflated.keras"
    with zipfile.ZipFile(models["lambda.keras"]) as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    report = scan(path)
    assert [(f.rule, f.location.member) for f in report.findings
            if f.location is not None] == [("keras.lambda.bytecode", "config.json")]
    assert {f.format.value for f in report.files} == {"keras", "hdf5"}


def test_second_config_entry_is_reviewed_too(models: dict[str, Path], tmp_path: Path) -> None:
    """zipfile (and so Keras) reads the last of two same-named entries: both are reviewed."""
    path = tmp_path / "two_configs.keras"
    with zipfile.ZipFile(models["benign.keras"]) as clean, \
            zipfile.ZipFile(models["lambda.keras"]) as evil, zipfile.ZipFile(path, "w") as dst:
        for info in clean.infolist():
            dst.writestr(info.filename, clean.read(info))
        with pytest.warns(UserWarning, match="Duplicate name"):
            dst.writestr("config.json", evil.read("config.json"))
    assert "keras.lambda.bytecode" in rules(scan_file(SCANNER, path)[0])


def test_outside_code_is_judged_by_the_pickle_policy() -> None:
    from bastion.scan.pickle.policy import Policy

    system = {"module": "os", "class_name": "function", "config": "system"}
    (issue,) = review_config({"class_name": "Dense", "config": {"activation": system}})
    assert (issue.rule, issue.severity, issue.evidence["global"]) == (
        "keras.module.external", Severity.CRITICAL, "os.system")
    custom = {"module": "mypkg.layers", "class_name": "MyLayer", "registered_name": "mypkg>MyLayer",
              "config": {}}
    (issue,) = review_config(custom)
    assert issue.severity is Severity.HIGH
    # The user vouches for their own layer with --allow, as for pickles.
    assert review_config(custom, Policy.default().allowing(["mypkg.layers.MyLayer"])) == []


def test_allow_reaches_the_scanner_through_the_engine(models: dict[str, Path],
                                                      tmp_path: Path) -> None:
    from bastion.scan import scan
    from bastion.scan.pickle.policy import Policy

    def edit(config: dict[str, Any]) -> None:
        first_object(config, "LSTM").update(module="mypkg.layers", registered_name="mypkg>LSTM")

    path = _edited(tmp_path, models["benign.keras"], edit)
    assert "keras.module.external" in {f.rule for f in scan(path).findings}
    allowed = scan(path, policy=Policy.default().allowing(["mypkg.layers.LSTM"]))
    assert allowed.clean
