"""``bastion model|dataset add``, ``list``, ``show``, ``lineage``, ``get``, ``verify``, ``fsck``
through ``main([...])``: outputs and exit codes (0 clean, 1 findings/damage, 2 errors)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from bastion.cli.app import main
from bastion.store.workspace import Workspace


@pytest.fixture
def home(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.setenv("BASTION_HOME", str(workspace.settings.home))
    return workspace


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    np.save(directory / "w.npy", np.arange(1000, dtype="float32"))
    return directory


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_show_lineage_json(
    home: Workspace, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x,label\n1,0\n2,1\n")
    card = tmp_path / "card.yaml"
    card.write_text("kind: dataset\ndescription: two rows of toy data\ncollection: typed in\n")
    code, out, _ = run(capsys, "dataset", "add", "toy", str(data), "--card", str(card),
                       "--format", "json")
    assert code == 0
    assert json.loads(out)["ref"] == "toy@1"
    code, out, _ = run(capsys, "model", "add", "clf", str(model_dir), "--trained-on", "toy@1",
                       "--format", "json")
    assert code == 0
    added = json.loads(out)
    assert added["lineage"] == [{"relation": "trained_on", "ref": "toy@1"}]
    code, out, _ = run(capsys, "list", "--kind", "dataset", "--format", "json")
    assert [r["ref"] for r in json.loads(out)] == ["toy@1"]
    code, out, _ = run(capsys, "list", "--q", "toy data", "--format", "json")
    assert [r["ref"] for r in json.loads(out)] == ["toy@1"]
    code, out, _ = run(capsys, "show", "clf@1", "--format", "json")
    assert json.loads(out)["digest"] == added["digest"]
    code, out, _ = run(capsys, "lineage", "toy@1", "--format", "json")
    assert [n["ref"] for n in json.loads(out)["downstream"]] == ["clf@1"]
    code, out, _ = run(capsys, "show", "clf@1")
    assert code == 0 and "trained_on toy@1" in out


def test_malicious_model_exits_1_and_stores_nothing(
    home: Workspace, tmp_path: Path, canary: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(canary), "w"))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Payload()))
    code, _, err = run(capsys, "model", "add", "evil", str(evil))
    assert code == 1
    assert "refused" in err and "--accept-risk" in err
    assert run(capsys, "list", "--format", "json")[1].strip() == "[]"
    assert not canary.exists()


def test_bad_input_exits_2_without_traceback(
    home: Workspace, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "show", "no such@@thing")
    assert code == 2 and "not an asset reference" in err and "Traceback" not in err
    code, _, err = run(capsys, "show", "ghost@1")
    assert code == 2 and "no version 'ghost@1'" in err
    code, _, err = run(capsys, "model", "add", "m", str(model_dir / "missing"))
    assert code == 2 and "does not exist" in err


def test_get_verify_and_tamper(
    home: Workspace, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "model", "add", "m", str(model_dir))[0] == 0
    code, _, err = run(capsys, "get", "m@1", str(tmp_path / "out"))
    assert code == 0 and "wrote 1 file(s)" in err
    assert (tmp_path / "out" / "w.npy").read_bytes() == (model_dir / "w.npy").read_bytes()
    code, out, _ = run(capsys, "verify", "m@1")
    assert code == 0 and "verified" in out
    with home.engine.begin() as conn:
        conn.execute(text("UPDATE versions SET status = 'approved'"))
    code, out, _ = run(capsys, "verify", "m@1", "--format", "json")
    assert code == 1
    [finding] = json.loads(out)["findings"]
    assert finding["rule"] == "catalog.verify.version-row"
    code, out, _ = run(capsys, "fsck", "--format", "json")
    assert code == 0 and json.loads(out)["ok"] is True


def test_fsck_exit_1_on_missing_blob(
    home: Workspace, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "model", "add", "m", str(model_dir))[0] == 0
    for blob in Path(home.settings.blob_url).glob("*/??/*"):
        blob.unlink()
    code, out, _ = run(capsys, "fsck")
    assert code == 1 and "is missing" in out


def test_signing_key_option(
    home: Workspace, model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    key = tmp_path / "me.pem"
    made = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-out", str(key)], check=False, capture_output=True, text=True,
    )
    assert made.returncode == 0, made.stderr
    key.chmod(0o644)
    code, _, err = run(capsys, "model", "add", "m", str(model_dir), "--signing-key", str(key))
    assert code == 2 and "readable by other users" in err and f"chmod 600 {key}" in err
    assert "Traceback" not in err
    key.chmod(0o600)
    code, out, _ = run(capsys, "model", "add", "m", str(model_dir), "--signing-key", str(key),
                       "--format", "json")
    assert code == 0
    added = json.loads(out)
    assert added["key_id"] != home.signer.verifying_key.key_id
    code, _, _ = run(capsys, "get", "m@1", str(tmp_path / "out"), "--signature",
                     str(tmp_path / "m.sig"), "--public-key", str(tmp_path / "m.pub.pem"))
    assert code == 0
    assert (tmp_path / "m.pub.pem").read_text() == added["public_key"]
    verified = subprocess.run(
        [str(Path(sys.executable).with_name("model_signing")), "verify", "key",
         str(tmp_path / "out"), "--signature", str(tmp_path / "m.sig"),
         "--public_key", str(tmp_path / "m.pub.pem")],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    code, out, _ = run(capsys, "verify", "m@1")
    assert code == 0 and "verified" in out
    code, out, _ = run(capsys, "model", "add", "--help")
    assert "--signing-key" in out and "PKCS#8" in out


def test_the_cli_names_its_option_where_the_service_names_the_argument(
    home: Workspace, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The catalog says which argument is wrong (``accept_risk``); only the CLI calls it
    ``--accept-risk``, and the library's own message names no flag."""
    from bastion.catalog.service import Catalog
    from bastion.errors import UsageError

    code, _, err = run(capsys, "model", "add", "m", str(model_dir), "--accept-risk", " ")
    assert code == 2
    assert "the reason for accepting the risk is empty" in err
    assert "hint: say why the findings are acceptable (--accept-risk)" in err
    with pytest.raises(UsageError) as raised:
        Catalog(home).add_model("m", model_dir, accept_risk=" ")
    assert raised.value.param == "accept_risk" and "--" not in str(raised.value)
