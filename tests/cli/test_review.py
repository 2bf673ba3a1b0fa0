"""``bastion review``, ``alias set``, ``rollback``, ``grant`` through ``main([...])``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bastion.cli.app import main
from bastion.store.workspace import Workspace


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err


def test_review_and_release_flow(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("BASTION_HOME", str(workspace.settings.home))
    for seed in (1, 2):
        path = tmp_path / f"m{seed}.npy"
        np.save(path, np.full(10, seed))
        assert main(["model", "add", "m", str(path)]) == 0
    capsys.readouterr()
    assert run(capsys, "grant", "m", "rev", "reviewer")[0] == 0
    for number in (1, 2):
        assert run(capsys, "review", "request", f"m@{number}")[0] == 0
    code, err = run(capsys, "review", "approve", "m@1")
    assert code == 2 and "cannot approve" in err  # the author (tester)
    monkeypatch.setenv("BASTION_ACTOR", "rev")
    assert run(capsys, "review", "approve", "m@1", "-m", "ok")[0] == 0
    code, err = run(capsys, "review", "reject", "m@2", "-m", "missing card")
    assert code == 0 and "draft" in err
    monkeypatch.setenv("BASTION_ACTOR", "tester")
    assert run(capsys, "grant", "m", "vic", "viewer")[0] == 0
    monkeypatch.setenv("BASTION_ACTOR", "vic")
    code, err = run(capsys, "alias", "set", "m", "production", "1")
    assert code == 2 and "needs the contributor role" in err
    monkeypatch.setenv("BASTION_ACTOR", "tester")
    code, err = run(capsys, "alias", "set", "m", "production", "2")
    assert code == 2 and "only point at an approved version" in err
    assert run(capsys, "alias", "set", "m", "production", "1")[0] == 0
    assert run(capsys, "review", "request", "m@2")[0] == 0
    monkeypatch.setenv("BASTION_ACTOR", "rev")
    assert run(capsys, "review", "approve", "m@2")[0] == 0
    monkeypatch.setenv("BASTION_ACTOR", "tester")
    assert run(capsys, "alias", "set", "m", "production", "2")[0] == 0
    code, err = run(capsys, "rollback", "m")
    assert code == 0 and "m@1" in err
    assert main(["show", "m@production", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
