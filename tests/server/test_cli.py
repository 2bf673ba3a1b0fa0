"""``bastion server`` for real: a uvicorn process answering with authentication on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from bastion.store.roles import Role
from bastion.store.tokens import TokenStore
from bastion.store.workspace import init_workspace


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_bastion_server_serves_the_api_with_authentication_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BASTION_DATABASE_URL", raising=False)
    ws = init_workspace(tmp_path, env={"BASTION_ACTOR": "admin"})
    secret, _ = TokenStore(ws).create("ops", Role.VIEWER)
    key_id = ws.signer.verifying_key.key_id
    ws.close()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from bastion.cli.app import run; run()",
            "--home",
            str(tmp_path),
            "server",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx2.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the server did not start")
        denied = httpx2.get(f"{url}/v1/versions")
        assert denied.status_code == 401
        assert denied.headers["content-type"] == "application/problem+json"
        assert "server" not in denied.headers  # no version banner
        allowed = httpx2.get(f"{url}/v1/whoami", headers={"Authorization": f"Bearer {secret}"})
        assert allowed.json() == {
            "principal": "ops",
            "role": "viewer",
            "token": "ops",
            "key_id": key_id,
        }
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "serving" in output and secret not in output
