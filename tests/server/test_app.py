"""The catalog REST API through FastAPI's TestClient, on SQLite and PostgreSQL: tokens and
roles, the review rules, problem details without internals, audit of every request."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from fastapi.testclient import TestClient

from bastion.catalog.service import Catalog
from bastion.server.app import create_app
from bastion.store.roles import Role
from bastion.store.tokens import TokenStore
from bastion.store.workspace import Workspace, init_workspace

PROBLEM = "application/problem+json"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:bastion:problem:{slug}"
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


ROUTES = [
    ("GET", "/v1/whoami"),
    ("GET", "/v1/versions"),
    ("GET", "/v1/versions/m@1"),
    ("GET", "/v1/lineage/m@1"),
    ("GET", "/v1/verify/m@1"),
    ("GET", "/v1/cards/m@1"),
    ("GET", "/v1/fsck"),
    ("GET", "/v1/export/m@1"),
    ("POST", "/v1/reviews/approve/m@1"),
    ("PUT", "/v1/aliases/production/m"),
    ("POST", "/v1/rollback/production/m"),
    ("POST", "/v1/import"),
]


def test_every_route_needs_a_valid_token(
    served: tuple[TestClient, dict[str, str]], workspace: Workspace
) -> None:
    client, tokens = served
    before = workspace.audit.head()
    for method, path in ROUTES:
        response = client.request(method, path)
        body = assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"] == 'Bearer realm="bastion"'
        assert body["instance"] == path
        assert_problem(
            client.request(method, path, headers=auth("bst_" + "x" * 43)), 401, "unauthenticated"
        )
        assert_problem(
            client.request(method, path, headers={"Authorization": "Basic YTpi"}),
            401,
            "unauthenticated",
        )
    TokenStore(workspace).revoke("carol")
    body = assert_problem(
        client.get("/v1/versions", headers=auth(tokens["carol"])), 401, "unauthenticated"
    )
    assert body["detail"] == "the API token was revoked"
    assert workspace.audit.head() == before + 1  # only the revocation: no anonymous writes
    assert client.get("/health").json() == {"status": "ok"}


DENIED = [
    ("carol", "POST", "/v1/reviews/request/m@1", "contributor"),
    ("carol", "GET", "/v1/export/m@1", "contributor"),
    ("alice", "POST", "/v1/reviews/approve/m@1", "reviewer"),
    ("bob", "PUT", "/v1/aliases/staging/m", "admin"),
    ("bob", "GET", "/v1/fsck", "admin"),
]


def test_a_token_below_the_needed_role_gets_403_and_is_audited(
    served: tuple[TestClient, dict[str, str]], workspace: Workspace
) -> None:
    client, tokens = served
    for token, method, path, needed in DENIED:
        kwargs: dict[str, Any] = {"json": {"version": 1}} if method == "PUT" else {}
        response = client.request(method, path, headers=auth(tokens[token]), **kwargs)
        body = assert_problem(response, 403, "forbidden")
        assert needed in body["detail"] and body["hint"]
        denied = workspace.audit.entries(action="api.denied")[-1]
        assert (denied.actor, denied.subject) == (token, f"{method} {path}")
        assert denied.details["needed"] == needed
    assert workspace.audit.entries(action="api.request") == []  # nothing else was let through


def test_review_flow_and_a_reviewer_cannot_approve_their_own_version(
    served: tuple[TestClient, dict[str, str]], workspace: Workspace
) -> None:
    client, tokens = served
    requested = client.post(
        "/v1/reviews/request/m@1", headers=auth(tokens["alice"]), json={"comment": "ready"}
    )
    assert requested.json() == {"ref": "m@1", "status": "in_review"}
    own = client.post("/v1/reviews/approve/m@1", headers=auth(tokens["alice-rev"]))
    body = assert_problem(own, 403, "forbidden")
    assert body["detail"] == "alice registered m@1 and cannot approve it"
    early = client.put(
        "/v1/aliases/production/m", headers=auth(tokens["root"]), json={"version": 1}
    )
    assert_problem(early, 403, "forbidden")  # production needs an approved version
    approved = client.post(
        "/v1/reviews/approve/m@1", headers=auth(tokens["bob"]), json={"comment": "looks fine"}
    )
    assert approved.json()["status"] == "approved"
    moved = client.put(
        "/v1/aliases/production/m", headers=auth(tokens["root"]), json={"version": 1}
    )
    assert moved.status_code == 200
    shown = client.get("/v1/versions/m@production", headers=auth(tokens["carol"])).json()
    assert shown["status"] == "approved" and shown["aliases"] == ["production"]
    assert [r["reviewer"] for r in shown["reviews"]] == ["alice", "bob"]
    # Every request's identity is the actor of its audit entries.
    requests = [(e.actor, e.subject) for e in workspace.audit.entries(action="api.request")]
    assert requests == [
        ("alice", "POST /v1/reviews/request/m@1"),
        ("alice", "POST /v1/reviews/approve/m@1"),  # refused by the catalog, still recorded
        ("alice", "PUT /v1/aliases/production/m"),
        ("bob", "POST /v1/reviews/approve/m@1"),
        ("alice", "PUT /v1/aliases/production/m"),
        ("carol", "GET /v1/versions/m@production"),
    ]
    approval = workspace.audit.entries(action="version.review.approve")[-1]
    assert (approval.actor, approval.subject) == ("bob", "m@1")


def test_reads_list_show_lineage_verify_and_cards(
    served: tuple[TestClient, dict[str, str]], workspace: Workspace
) -> None:
    client, tokens = served
    viewer = auth(tokens["carol"])
    listed = client.get("/v1/versions", headers=viewer, params={"kind": "model", "q": "demo"})
    assert [v["ref"] for v in listed.json()] == ["m@1"]
    assert client.get("/v1/versions", headers=viewer, params={"q": "nothing"}).json() == []
    assert client.get("/v1/lineage/m@1", headers=viewer).json()["upstream"] == []
    verified = client.get("/v1/verify/m@1", headers=viewer).json()
    assert verified["ok"] is True and verified["files"] == 1
    public = client.get(
        "/v1/cards/m@1", headers=viewer, params={"format": "cyclonedx", "level": "public"}
    )
    assert public.headers["content-type"].startswith("application/vnd.cyclonedx+json")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(public.text) is None
    assert "ARCH-SECRET" not in public.text
    internal = client.get("/v1/cards/m@1", headers=viewer).json()
    assert internal["architecture"] == "ARCH-SECRET"
    schema = client.get("/v1/schemas/cards/dataset", headers=viewer).json()
    assert schema["properties"]["kind"]["const"] == "dataset"
    assert client.get("/v1/whoami", headers=viewer).json() == {
        "principal": "carol",
        "role": "viewer",
        "token": "carol",
        "key_id": workspace.signer.verifying_key.key_id,
    }


def test_errors_are_problem_details_without_internals(
    served: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, tokens = served
    viewer = auth(tokens["carol"])
    missing = assert_problem(client.get("/v1/versions/ghost@3", headers=viewer), 404, "not-found")
    assert "ghost@3" in missing["detail"]
    invalid = assert_problem(
        client.get("/v1/versions", headers=viewer, params={"status": "bogus"}),
        422,
        "invalid-request",
    )
    assert invalid["errors"][0]["field"] == "query.status"
    bad_ref = assert_problem(client.get("/v1/versions/m@!!", headers=viewer), 400, "bad-request")
    assert "neither a version number nor an alias" in bad_ref["detail"]
    no_comment = assert_problem(  # the argument at fault, in the API's words, no CLI flag
        client.post("/v1/reviews/reject/m@1", headers=auth(tokens["bob"]), json={"comment": ""}),
        400, "bad-request",
    )
    assert no_comment["param"] == "comment" and "--" not in json.dumps(no_comment)

    def explode(*_: Any, **__: Any) -> None:
        raise RuntimeError("connection to /var/secret/db.sqlite failed at line 42")

    monkeypatch.setattr(Catalog, "search", explode)
    crash = assert_problem(client.get("/v1/versions", headers=viewer), 500, "server-error")
    assert crash["detail"] == "the server could not complete the request"
    assert "secret" not in json.dumps(crash) and "RuntimeError" not in json.dumps(crash)
    assert client.get("/nowhere", headers=viewer).headers["content-type"] == PROBLEM


def test_openapi_is_published_with_bearer_security(
    served: tuple[TestClient, dict[str, str]],
) -> None:
    client, _ = served
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Bastion catalog API"
    assert {"/v1/versions", "/v1/versions/{ref}", "/v1/import"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 404  # no CDN-loaded pages


def test_export_then_import_over_http_into_another_server(
    served: tuple[TestClient, dict[str, str]],
    workspace: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, tokens = served
    exported = client.get("/v1/export/m@1", headers=auth(tokens["alice"]))
    assert exported.status_code == 200 and exported.headers["content-type"] == "application/x-tar"
    assert hashlib.sha256(exported.content).hexdigest() == exported.headers["x-bundle-sha256"]
    assert not list(workspace.settings.home.glob("export-*"))  # scratch removed

    monkeypatch.delenv("BASTION_DATABASE_URL", raising=False)
    other = init_workspace(tmp_path / "other", env={"BASTION_ACTOR": "ops"})
    secret, _ = TokenStore(other).create("dave", Role.CONTRIBUTOR)
    with TestClient(create_app(other), raise_server_exceptions=False) as remote:
        headers = {**auth(secret), "Content-Type": "application/x-tar"}
        untrusted = remote.post("/v1/import", headers=headers, content=exported.content)
        assert "does not trust" in assert_problem(untrusted, 422, "integrity")["detail"]
        key_id = exported.headers["x-key-id"]
        tampered = _tamper(exported.content)
        refused = remote.post(
            "/v1/import", headers=headers, content=tampered, params={"key_id": key_id}
        )
        assert "it was modified" in assert_problem(refused, 422, "integrity")["detail"]
        imported = remote.post(
            "/v1/import", headers=headers, content=exported.content, params={"key_id": key_id}
        )
        assert imported.status_code == 200, imported.text
        assert imported.json()["ref"] == "m@1"
        assert imported.json()["digest"] == Catalog(workspace).show("m@1").summary.digest
        entry = other.audit.entries(action="bundle.import")[-1]
        assert entry.actor == "dave"
        wrong_type = remote.post("/v1/import", headers=auth(secret), content=b"{}")
        assert_problem(wrong_type, 400, "bad-request")


def _tamper(bundle: bytes) -> bytes:
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(bundle)) as src,
        tarfile.open(fileobj=out, mode="w:") as dst,
    ):
        for member in src:
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.startswith("files/"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _upload(files: dict[str, bytes], card: dict[str, Any] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:") as tar:
        members = {"bastion-card.json": json.dumps(card).encode()} if card else {}
        members |= {f"files/{name}": data for name, data in files.items()}
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


class Canary:
    """Creates the canary file when unpickled (and only then)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


def test_register_over_http_scans_first_and_records_the_caller(
    served: tuple[TestClient, dict[str, str]], workspace: Workspace, canary: Path
) -> None:
    client, tokens = served
    headers = {**auth(tokens["alice"]), "Content-Type": "application/x-tar"}
    buffer = io.BytesIO()
    np.save(buffer, np.ones(8, dtype=np.float32))
    body = _upload(
        {"data/x.npy": buffer.getvalue(), "README.txt": b"ones\n"},
        {"kind": "dataset", "description": "eight ones"},
    )
    created = client.post("/v1/datasets/ones", headers=headers, content=body)
    assert created.status_code == 200, created.text
    info = created.json()
    assert (info["ref"], info["author"], info["card"]["description"]) == (
        "ones@1",
        "alice",
        "eight ones",
    )
    assert [m["path"] for m in info["manifest"]] == ["README.txt", "data/x.npy"]
    model = _upload({"m.npy": buffer.getvalue()})
    trained = client.post(
        "/v1/models/tiny", headers=headers, content=model, params={"trained_on": "ones@1"}
    )
    assert trained.json()["lineage"] == [{"relation": "trained_on", "ref": "ones@1"}]
    added = workspace.audit.entries(action="dataset.add")[-1]
    assert (added.actor, added.subject) == ("alice", "ones@1")

    evil = _upload({"weights.pkl": pickle.dumps(Canary(canary), protocol=4)})
    refused = assert_problem(
        client.post("/v1/models/evil", headers=headers, content=evil), 422, "refused"
    )
    assert refused["findings"] and refused["findings"][0]["severity"] in ("high", "critical")
    assert not canary.exists()
    escape = _upload({"../../escape.txt": b"x"})
    assert_problem(client.post("/v1/models/esc", headers=headers, content=escape), 422, "integrity")
    bad_card = _upload({"x.txt": b"x"}, {"kind": "dataset", "descripton": "typo"})
    problem = assert_problem(
        client.post("/v1/datasets/typo", headers=headers, content=bad_card), 400, "bad-request"
    )
    assert "field descripton: unknown field" in problem["detail"]
    viewer = {**auth(tokens["carol"]), "Content-Type": "application/x-tar"}
    assert_problem(client.post("/v1/datasets/ones", headers=viewer, content=body), 403, "forbidden")
    assert [v["ref"] for v in client.get("/v1/versions", headers=viewer).json()] == [
        "m@1",
        "ones@1",
        "tiny@1",
    ]
