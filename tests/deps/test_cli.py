"""``bastion deps``: exit codes, formats, the audit log, and errors without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bastion.cli.app import main
from bastion.store.workspace import Workspace

from .conftest import EDGE_RECORDS, write_records


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "index.sqlite"
    assert (
        main(
            [
                "deps",
                "db",
                "import",
                str(write_records(tmp_path / "v", EDGE_RECORDS)),
                "--db",
                str(path),
            ]
        )
        == 0
    )
    return path


def _req(tmp_path: Path, text: str) -> str:
    path = tmp_path / "requirements.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_workspace_import_and_audit_are_recorded(
    workspace: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = str(workspace.settings.home)
    source = write_records(tmp_path / "v", EDGE_RECORDS)
    assert main(["--home", home, "deps", "db", "import", str(source)]) == 0
    assert (workspace.settings.home / "osv" / "index.sqlite").is_file()
    assert (
        main(
            [
                "--home",
                home,
                "deps",
                "audit",
                "-r",
                _req(tmp_path, "edge-last==1.0\n"),
                "--format",
                "json",
            ]
        )
        == 1
    )
    report = json.loads(capsys.readouterr().out)
    assert [
        f["evidence"]["advisory"] for f in report["findings"] if f["rule"] == "deps.vulnerable"
    ] == ["EDGE-LAST-1"]
    entries = workspace.audit.entries(action="deps.*")
    assert [e.action for e in entries] == ["deps.db.import", "deps.audit"]
    assert entries[0].details["records"] == len(EDGE_RECORDS)
    assert entries[1].details["vulnerable_packages"] == 1
    assert workspace.audit.verify().ok


def test_every_report_states_the_database_age(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = _req(tmp_path, "edge-clean==1.0\n")
    assert (
        main(
            [
                "deps",
                "audit",
                "-r",
                clean,
                "--db",
                str(db),
                "--format",
                "json",
                "--max-age",
                "100000",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    (age,) = report["findings"]
    assert age["rule"] == "deps.db.age" and age["severity"] == "info"
    assert report["summary"]["database"]["newest_modified"].startswith("2026-11-01T10:00:00")
    assert report["summary"]["database"]["records"] == len(EDGE_RECORDS)
    # The same records judged against a one-day limit: stale, medium, fails --fail-on medium.
    args = ["deps", "audit", "-r", clean, "--db", str(db), "--format", "json", "--max-age", "1"]
    assert main(args) == 0
    (stale,) = json.loads(capsys.readouterr().out)["findings"]
    assert stale["rule"] == "deps.db.stale" and stale["severity"] == "medium"
    assert main([*args, "--fail-on", "medium"]) == 1


def test_unresolved_package_fails_by_default(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requirements = _req(tmp_path, "edge-pre>=1\n")
    assert main(["deps", "audit", "-r", requirements, "--db", str(db), "--format", "json"]) == 1
    rules = [f["rule"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert "deps.unresolved" in rules and "deps.vulnerable" not in rules


def test_sarif_output(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "deps.sarif"
    assert (
        main(
            [
                "deps",
                "audit",
                "-r",
                _req(tmp_path, "edge-pre==2.0.0rc1\n"),
                "--db",
                str(db),
                "--format",
                "sarif",
                "--output",
                str(out),
            ]
        )
        == 1
    )
    run = json.loads(out.read_text(encoding="utf-8"))["runs"][0]
    results = [r for r in run["results"] if r["ruleId"] == "deps.vulnerable"]
    assert len(results) == 2
    assert any("EDGE-PRE-2" in r["message"]["text"] for r in results)
    rule = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == "deps.vulnerable")
    assert "NCSC-2.3" in rule["properties"]["tags"] and "AML.T0010" in rule["properties"]["tags"]


def test_junit_output_has_a_testcase_per_package(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from junitparser import Error, Failure, JUnitXml

    requirements = _req(tmp_path, "edge-last==1.0\nedge-clean==1.0\nedge-pre>=1\n")
    args = ["deps", "audit", "-r", requirements, "--db", str(db), "--format", "junit"]
    assert main([*args, "--max-age", "100000"]) == 1
    (suite,) = list(JUnitXml.fromstring(capsys.readouterr().out.encode()))
    cases = {(c.classname, c.name): c for c in suite}
    assert suite.name == "bastion deps audit"
    vulnerable = cases["deps.vulnerable", f"{requirements}:1 → edge-last==1.0"]
    assert isinstance(vulnerable.result[0], Failure)
    assert "EDGE-LAST-1" in vulnerable.result[0].message
    assert cases["bastion.deps.audit", f"{requirements}:2 → edge-clean==1.0"].is_passed
    # a package without an exact version could not be audited: an error, not a pass
    assert isinstance(cases["deps.unresolved", f"{requirements}:3 → edge-pre"].result[0], Error)
    assert cases["deps.db.age", str(db)].is_passed
    assert (suite.tests, suite.failures, suite.errors) == (4, 1, 1)
    assert main([*args, "--fail-on", "critical", "--max-age", "100000"]) == 0
    (lenient,) = list(JUnitXml.fromstring(capsys.readouterr().out.encode()))
    assert lenient.failures == lenient.errors == 0 and lenient.skipped == 1


def test_db_info(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deps", "db", "info", "--db", str(db), "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["records"] == len(EDGE_RECORDS) and len(info["sha256"]) == 64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["deps", "audit", "-r", "{req}"], "no Bastion workspace"),
        (["deps", "audit", "-r", "{req}", "--db", "{tmp}/none.sqlite"], "no OSV database at"),
        (["deps", "audit", "-r", "{req}", "--db", "{db}", "--fail-on", "bad"], "unknown severity"),
        (["deps", "audit", "-r", "{tmp}/missing.txt", "--db", "{db}"], "cannot read"),
        (["deps", "audit", "-r", "{req}", "--osv-url", "ftp://x"], "is not an http(s) URL"),
        (["deps", "audit", "-r", "{req}", "--osv-url", "http://127.0.0.1:9"], "OSV API"),
        (["deps", "db", "import", "{tmp}/nothing", "--db", "{tmp}/i.sqlite"], "does not exist"),
    ],
)
def test_errors_exit_2_without_traceback(
    args: list[str],
    message: str,
    db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BASTION_HOME", raising=False)
    req = _req(tmp_path, "edge-pre==1.0\n")
    filled = [a.format(req=req, tmp=tmp_path, db=db) for a in args]
    assert main(filled) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
