from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update

from bastion.cli.app import main
from bastion.cli.audit import parse_since
from bastion.store.schema import audit_entries
from bastion.store.workspace import Workspace


def _home(ws: Workspace) -> list[str]:
    return ["--home", str(ws.settings.home)]


def test_log_filters_and_json(workspace: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    workspace.record("model.add", "digits@1", files=2)
    workspace.record("blob.read", "digits@1")
    workspace.record("model.add", "other@1")
    capsys.readouterr()
    assert main([*_home(workspace), "audit", "log", "--action", "model.*", "--format", "json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["action"], e["subject"]) for e in entries] == [
        ("model.add", "digits@1"),
        ("model.add", "other@1"),
    ]
    assert entries[0]["details"] == {"files": 2}
    assert main([*_home(workspace), "audit", "log", "--subject", "digits@1"]) == 0
    out = capsys.readouterr().out
    assert "blob.read" in out and "other@1" not in out


def test_verify_exit_codes_and_sarif(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace.record("model.add", "digits@1")
    workspace.audit.checkpoint()
    assert main([*_home(workspace), "audit", "verify"]) == 0
    assert "audit chain intact" in capsys.readouterr().out
    with workspace.engine.begin() as conn:
        conn.execute(
            update(audit_entries).where(audit_entries.c.seq == 2).values(subject="digits@2")
        )
    assert main([*_home(workspace), "audit", "verify", "--format", "sarif"]) == 1
    sarif = json.loads(capsys.readouterr().out)
    results = sarif["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["audit.chain.modified"]
    assert "entry #2" in results[0]["message"]["text"]


def test_bad_since_is_a_usage_error(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*_home(workspace), "audit", "log", "--since", "last tuesday"]) == 2
    assert "neither a date nor a duration" in capsys.readouterr().err


def test_parse_since_accepts_dates_and_durations() -> None:
    assert parse_since("2026-11-01") == "2026-11-01T00:00:00.000000Z"
    assert parse_since("2026-11-01T10:30+01:00") == "2026-11-01T09:30:00.000000Z"
    assert parse_since("7d") < parse_since("1h")


def test_checkpoint_command_seals_the_head(
    workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace.record("model.add", "x")
    assert main([*_home(workspace), "audit", "checkpoint"]) == 0
    assert "sealed through #2" in capsys.readouterr().err
