"""RemoteCatalog: the Catalog methods over HTTP, same records, same CLI output."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient

from bastion.catalog.bundle import BundleError
from bastion.catalog.records import RegistrationRefusedError, Status
from bastion.catalog.service import Catalog
from bastion.cli.app import main
from bastion.client.remote import RemoteCatalog
from bastion.errors import AccessDeniedError, ConfigError, NotFoundError
from bastion.server.app import create_app
from bastion.store.workspace import Workspace


def remote(client: TestClient, token: str, key_ids: tuple[str, ...] = ()) -> RemoteCatalog:
    client.headers["Authorization"] = f"Bearer {token}"
    return RemoteCatalog(client, key_ids=key_ids)


def test_reads_return_the_same_records_as_the_local_catalog(
    served: tuple[TestClient, dict[str, str]], workspace: Workspace
) -> None:
    client, tokens = served
    far, near = remote(client, tokens["carol"]), Catalog(workspace)
    assert far.show("m@1") == near.show("m@1")
    assert far.search(text="demo") == near.search(text="demo")
    assert far.lineage("m@1") == near.lineage("m@1")
    assert far.verify("m@1") == near.verify("m@1")
    with pytest.raises(NotFoundError, match="ghost@2"):
        far.show("ghost@2")


def test_writes_go_through_the_server_as_the_token_principal(
    served: tuple[TestClient, dict[str, str]],
    workspace: Workspace,
    tmp_path: Path,
    canary: Path,
) -> None:
    client, tokens = served
    data = tmp_path / "data"
    (data / "nested").mkdir(parents=True)
    np.save(data / "nested" / "x.npy", np.ones(4))
    (data / "README.txt").write_text("ones\n")
    alice = remote(client, tokens["alice"])
    added = alice.add_dataset("ones", data, card={"kind": "dataset", "description": "ones"})
    assert added == Catalog(workspace).show("ones@1")
    assert added.summary.author == "alice"
    assert [m["path"] for m in added.manifest] == ["README.txt", "nested/x.npy"]
    assert alice.request_review("m@1") is Status.IN_REVIEW
    with pytest.raises(AccessDeniedError, match="cannot approve it"):
        remote(client, tokens["alice-rev"]).approve("m@1")
    assert remote(client, tokens["bob"]).approve("m@1") is Status.APPROVED
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"\x80\x04cposix\nsystem\n(Vtouch " + str(canary).encode() + b"\ntR.")
    with pytest.raises(RegistrationRefusedError) as refused:
        alice.add_model("evil", evil)
    assert refused.value.findings and not canary.exists()


def test_get_verifies_against_the_pinned_key(
    served: tuple[TestClient, dict[str, str]], workspace: Workspace, tmp_path: Path
) -> None:
    client, tokens = served
    key_id = workspace.signer.verifying_key.key_id
    with pytest.raises(ConfigError, match="signing key id"):
        remote(client, tokens["alice"]).get("m@1", tmp_path / "none")
    with pytest.raises(BundleError, match="does not trust"):
        remote(client, tokens["alice"], ("0" * 64,)).get("m@1", tmp_path / "wrong")
    assert not (tmp_path / "wrong").exists()
    manifest = remote(client, tokens["alice"], (key_id,)).get(
        "m@1", tmp_path / "got", signature=tmp_path / "sig.json"
    )
    as_alice = dataclasses.replace(
        workspace, settings=dataclasses.replace(workspace.settings, actor="alice")
    )
    local = Catalog(as_alice).get("m@1", tmp_path / "local")
    assert manifest == local
    assert (tmp_path / "got" / "weights.npy").read_bytes() == (
        tmp_path / "local" / "weights.npy"
    ).read_bytes()
    assert json.loads((tmp_path / "sig.json").read_text())["dsseEnvelope"]


def test_the_cli_prints_the_same_through_a_real_server(
    served: tuple[TestClient, dict[str, str]],
    workspace: Workspace,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _, tokens = served
    home = str(workspace.settings.home)
    commands = [
        ["list", "--format", "json"],
        ["show", "m@1", "--format", "json"],
        ["lineage", "m@1", "--format", "json"],
    ]
    local = []
    for argv in commands:
        assert main(["--home", home, *argv]) == 0
        local.append(capsys.readouterr().out)
    # log_config=None: uvicorn must not bind its log handlers to pytest's captured stderr
    config = uvicorn.Config(
        create_app(workspace), host="127.0.0.1", port=0, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start within 60 s"
        port = server.servers[0].sockets[0].getsockname()[1]
        # No workspace here: BASTION_URL alone sends every command to the server.
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("BASTION_HOME", raising=False)
        monkeypatch.setenv("BASTION_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("BASTION_TOKEN", tokens["carol"])
        for argv, expected in zip(commands, local, strict=True):
            assert main(argv) == 0
            assert capsys.readouterr().out == expected
        monkeypatch.setenv("BASTION_TOKEN", "bst_not-a-token")
        assert main(["list"]) == 2
        assert "the API token is not known" in capsys.readouterr().err
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_configuration_comes_from_the_environment() -> None:
    assert RemoteCatalog.from_env({}) is None
    with pytest.raises(ConfigError, match="BASTION_TOKEN is not"):
        RemoteCatalog.from_env({"BASTION_URL": "https://catalog.example.org"})
    with pytest.raises(ConfigError, match="plain HTTP"):
        RemoteCatalog.from_env(
            {"BASTION_URL": "http://catalog.example.org", "BASTION_TOKEN": "bst_x"}
        )
    assert (
        RemoteCatalog.from_env({"BASTION_URL": "http://127.0.0.1:8470", "BASTION_TOKEN": "bst_x"})
        is not None
    )


def test_a_user_signed_version_reads_and_verifies_through_the_server(
    served: tuple[TestClient, dict[str, str]], workspace: Workspace, tmp_path: Path
) -> None:
    import model_signing
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from bastion.errors import UsageError

    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "alice.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    weights = tmp_path / "signed.npy"
    np.save(weights, np.arange(8, dtype=np.float32))
    Catalog(dataclasses.replace(
        workspace, settings=dataclasses.replace(workspace.settings, actor="alice")
    )).add_model("signed", weights, signing_key=key_file)
    client, tokens = served
    far = remote(client, tokens["alice"], (workspace.signer.verifying_key.key_id,))
    info = far.show("signed@1")
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    assert info.public_key == pem.decode() and far.verify("signed@1").ok
    far.get("signed@1", tmp_path / "got", signature=tmp_path / "sig.json")
    (tmp_path / "alice.pub.pem").write_bytes(pem)
    model_signing.verifying.Config().use_elliptic_key_verifier(
        public_key=tmp_path / "alice.pub.pem"
    ).verify(tmp_path / "got", tmp_path / "sig.json")
    # A private key never travels: adding through a server with one is refused up front.
    with pytest.raises(UsageError, match="only on a local workspace"):
        far.add_model("signed", weights, signing_key=key_file)
    assert [v.version for v in Catalog(workspace).search(text="signed")] == [1]


def test_a_derivation_record_travels_with_the_upload_and_cannot_forge_the_digest(
    served: tuple[TestClient, dict[str, str]], workspace: Workspace, tmp_path: Path
) -> None:
    """How a dataset was derived is audited by the server as by a local catalog, in the add's
    transaction; the digest in that entry is the server's, whatever the client claims."""
    client, tokens = served
    np.save(tmp_path / "x.npy", np.ones(4))
    record = {"reason": "cleaned", "removed_rows": [3, 5], "digest": "forged", "connection": 1}
    added = remote(client, tokens["alice"]).add_dataset("ones", tmp_path / "x.npy",
                                                         derivation=record)
    (entry,) = workspace.audit.entries(subject="ones@1", action="dataset.clean")
    assert entry.actor == "alice" and entry.details["removed_rows"] == [3, 5]
    assert entry.details["digest"] == added.summary.digest != "forged"
    assert entry.details["connection"] == 1  # kept as data, never taken as an argument


def test_a_read_refused_by_the_gate_is_a_read_refusal_with_its_findings(
    served: tuple[TestClient, dict[str, str]], workspace: Workspace, tmp_path: Path
) -> None:
    from sqlalchemy import text

    from bastion.catalog.records import ReadRefusedError

    client, tokens = served
    with workspace.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO findings (version_id, digest, severity, accepted, data) "
            "SELECT id, digest, 'high', false, :data FROM versions"
        ), {"data": json.dumps({"rule": "data.poison", "severity": "high", "title": "poisoned",
                                "principle": "2.2"})})
    far = remote(client, tokens["alice"], (workspace.signer.verifying_key.key_id,))
    with pytest.raises(ReadRefusedError, match="unaccepted") as refused:
        far.get("m@1", tmp_path / "out")
    assert [f.rule for f in refused.value.findings] == ["data.poison"]
    assert not (tmp_path / "out").exists()


def test_the_release_gate_holds_through_the_server(
    served: tuple[TestClient, dict[str, str]], workspace: Workspace
) -> None:
    client, tokens = served
    Catalog(workspace).set_release_policy("c" * 64, {"version": 1}, "release.yaml")
    alice, bob = remote(client, tokens["alice"]), remote(client, tokens["bob"])
    assert alice.request_review("m@1") is Status.IN_REVIEW
    with pytest.raises(AccessDeniedError, match="requires a passing assessment"):
        bob.approve("m@1")
    assert bob.approve("m@1", accept_risk="internal pilot") is Status.APPROVED
    shown = Catalog(workspace).show("m@1")
    assert shown.summary.status is Status.APPROVED
    assert [e.details["reason"] for e in workspace.audit.entries(subject="m@1")
            if e.action == "version.accept_risk"] == ["internal pilot"]
