"""Fixtures for the server tests: a small catalog served with one token per role."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bastion.catalog.service import Catalog
from bastion.server.app import create_app
from bastion.store.roles import Role
from bastion.store.tokens import TokenStore
from bastion.store.workspace import Workspace


def acting(ws: Workspace, actor: str) -> Workspace:
    return dataclasses.replace(ws, settings=dataclasses.replace(ws.settings, actor=actor))


@pytest.fixture
def served(workspace: Workspace, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A catalog where alice registered m@1 and granted bob reviewer and carol viewer, served
    with one token per principal and role."""
    weights = tmp_path / "weights.npy"
    np.save(weights, np.arange(16, dtype=np.float32))
    alice = Catalog(acting(workspace, "alice"))
    alice.add_model(
        "m",
        weights,
        card={"kind": "model", "description": "demo model", "architecture": "ARCH-SECRET"},
    )
    alice.grant("m", "bob", Role.REVIEWER)
    alice.grant("m", "carol", Role.VIEWER)
    store = TokenStore(workspace)
    tokens = {
        name: store.create(name, role, principal=principal)[0]
        for name, principal, role in [
            ("alice", "alice", Role.CONTRIBUTOR),
            ("alice-rev", "alice", Role.REVIEWER),
            ("bob", "bob", Role.REVIEWER),
            ("carol", "carol", Role.VIEWER),
            ("root", "alice", Role.ADMIN),
        ]
    }
    with TestClient(create_app(workspace), raise_server_exceptions=False) as client:
        yield client, tokens
