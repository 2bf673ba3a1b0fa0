"""Bastion against the reference tool: pip-audit, in OSV mode, asking a loopback OSV endpoint.

pip-audit is pointed at the endpoint with its own ``--osv-url`` option (pip-audit >= 2.7; the
environment variable ``PIP_AUDIT_OSV_URL`` is the same setting). It runs with ``--no-deps
--disable-pip`` on pinned requirements, and with proxies pointed at a closed port so that any
request leaving the loopback would fail the run instead of reaching the network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.cli.app import main

from .conftest import EDGE_RECORDS, REQUIREMENT_SETS, endpoint, write_records


def _pip_audit(requirements: Path, url: str, cache: Path) -> set[tuple[str, str]]:
    env = {
        **os.environ,
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1",
        "PIP_NO_INDEX": "1",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "-r",
            str(requirements),
            "--no-deps",
            "--disable-pip",
            "--vulnerability-service",
            "osv",
            "--osv-url",
            f"{url}/v1/query",
            "--format",
            "json",
            "--progress-spinner",
            "off",
            "--cache-dir",
            str(cache),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert all("skip_reason" not in d for d in report["dependencies"]), report
    # pip-audit names a result by its preferred id (a CVE alias here); map back to the record.
    found = set()
    for dependency in report["dependencies"]:
        for vuln in dependency["vulns"]:
            (record,) = [i for i in (vuln["id"], *vuln["aliases"]) if i.startswith("EDGE-")]
            found.add((dependency["name"], record))
    return found


def _bastion(args: list[str], capsys: pytest.CaptureFixture[str]) -> set[tuple[str, str]]:
    code = main(["deps", "audit", *args, "--format", "json", "--max-age", "100000"])
    out = capsys.readouterr().out
    findings = json.loads(out)["findings"]
    assert code == (1 if any(f["rule"] == "deps.vulnerable" for f in findings) else 0)
    return {
        (
            f["evidence"]["package"].lower().replace("_", "-").replace(".", "-"),
            f["evidence"]["advisory"],
        )
        for f in findings
        if f["rule"] == "deps.vulnerable"
    }


@pytest.mark.parametrize("name", sorted(REQUIREMENT_SETS))
def test_same_advisories_as_pip_audit(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, expected = REQUIREMENT_SETS[name]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(text, encoding="utf-8")
    db = tmp_path / "index.sqlite"
    assert (
        main(
            [
                "deps",
                "db",
                "import",
                str(write_records(tmp_path / "vulns", EDGE_RECORDS)),
                "--db",
                str(db),
            ]
        )
        == 0
    )
    with endpoint.serve(EDGE_RECORDS) as (url, requests):
        reference = _pip_audit(requirements, url, tmp_path / "cache")
        assert requests and all(r == "/v1/query" for r in requests)  # pip-audit asked us
        requests.clear()
        online = _bastion(["-r", str(requirements), "--osv-url", url], capsys)
        assert "/v1/querybatch" in requests
    offline = _bastion(["-r", str(requirements), "--db", str(db)], capsys)
    assert reference == expected
    assert offline == expected
    assert online == expected


def test_aliases_and_fixed_versions_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "index.sqlite"
    main(
        [
            "deps",
            "db",
            "import",
            str(write_records(tmp_path / "vulns", EDGE_RECORDS)),
            "--db",
            str(db),
        ]
    )
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("edge-multi-two==2.1\n", encoding="utf-8")
    args = ["deps", "audit", "-r", str(requirements), "--db", str(db), "--format", "json"]
    assert main(args) == 1
    (finding,) = [
        f for f in json.loads(capsys.readouterr().out)["findings"] if f["rule"] == "deps.vulnerable"
    ]
    alias = next(r for r in EDGE_RECORDS if r["id"] == "EDGE-MULTI-1")["aliases"][0]
    assert alias in finding["title"]
    assert finding["evidence"]["aliases"] == [alias]
    assert finding["evidence"]["fixed_versions"] == ["1.5", "2.3"]
    assert finding["evidence"]["suggested_version"] == "2.3"
    assert "Upgrade edge-multi-two to 2.3" in finding["remediation"]
    assert finding["principle"] == "2.3"
    assert finding["techniques"] == ["AML.T0010"]


def test_osv_api_pages_are_followed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("edge-pre==2.0.0rc1\nedge-post==1.0\n", encoding="utf-8")
    with endpoint.serve(EDGE_RECORDS, page_size=1) as (url, requests):
        found = _bastion(["-r", str(requirements), "--osv-url", url], capsys)
        # one advisory per page; edge-pre has three (one withdrawn, which the server still
        # returns and Bastion drops): three batches, then one fetch per record
        assert requests.count("/v1/querybatch") == 3
        assert "/v1/vulns/EDGE-WITHDRAWN-1" in requests
    assert found == {
        ("edge-pre", "EDGE-PRE-1"),
        ("edge-pre", "EDGE-PRE-2"),
        ("edge-post", "EDGE-POST-1"),
        ("edge-post", "EDGE-POST-2"),
    }
