"""The offline OSV index: import from a directory or an all.zip, atomic replacement, lookups."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bastion import deps
from bastion.deps import database

from .conftest import EDGE_RECORDS, write_records


def _ids(index: deps.LocalIndex, *packages: deps.Package) -> dict[str, list[str]]:
    return {str(p): [r.id for r in rs] for p, rs in index.affecting(list(packages)).items()}


def test_directory_import_reads_json_and_yaml(tmp_path: Path) -> None:
    source = write_records(tmp_path / "vulns", EDGE_RECORDS)
    assert {p.suffix for p in source.rglob("*.*")} == {".json", ".yaml"}
    now = datetime(2026, 11, 20, tzinfo=UTC)
    info = deps.import_database(source, tmp_path / "db" / "index.sqlite", now=now)
    assert info.records == len(EDGE_RECORDS)
    assert info.newest_modified == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert info.imported_at == now
    assert info.source == str(source.resolve())
    assert info.age_days(datetime(2026, 11, 11, 10, tzinfo=UTC)) == 10.0


def test_zip_export_gives_the_same_index_and_skips_other_ecosystems(tmp_path: Path) -> None:
    npm = {
        "id": "GHSA-npm-only",
        "modified": "2026-11-03T00:00:00Z",
        "affected": [{"package": {"ecosystem": "npm", "name": "left-pad"}}],
    }
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for record in [*EDGE_RECORDS, npm]:
            handle.writestr(f"{record['id']}.json", json.dumps(record))
    from_zip = deps.import_database(archive, tmp_path / "zip.sqlite")
    from_dir = deps.import_database(
        write_records(tmp_path / "v", EDGE_RECORDS), tmp_path / "d.sqlite"
    )
    assert from_zip.records == from_dir.records == len(EDGE_RECORDS)
    assert from_zip.newest_modified == from_dir.newest_modified  # the npm record is not counted
    package = deps.Package("edge-pre", "2.0.0rc1", "t")
    for path in (tmp_path / "zip.sqlite", tmp_path / "d.sqlite"):
        index = deps.LocalIndex.open(path)
        assert _ids(index, package) == {"edge-pre==2.0.0rc1": ["EDGE-PRE-1", "EDGE-PRE-2"]}
        index.close()


def test_failed_import_keeps_the_previous_index(tmp_path: Path) -> None:
    target = tmp_path / "osv" / "index.sqlite"
    before = deps.import_database(write_records(tmp_path / "good", EDGE_RECORDS), target)
    bad = write_records(tmp_path / "bad", EDGE_RECORDS[:2])
    (bad / "edge-pre" / "BROKEN.json").write_text('{"id": "B", "modified": ', encoding="utf-8")
    with pytest.raises(deps.DepsError, match=r"BROKEN\.json: not valid JSON") as info:
        deps.import_database(bad, target)
    assert info.value.hint and "previous index" in info.value.hint
    after = deps.LocalIndex.open(target)
    assert after.info() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["index.sqlite"]  # no temp left
    after.close()


def test_newest_modified_wins_for_a_duplicate_id(tmp_path: Path) -> None:
    old = {**EDGE_RECORDS[0], "summary": "old"}
    new = {**EDGE_RECORDS[0], "summary": "new", "modified": "2026-11-05T00:00:00Z"}
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a.json").write_text(json.dumps(new), encoding="utf-8")
    (tmp_path / "v" / "b.json").write_text(json.dumps(old), encoding="utf-8")
    deps.import_database(tmp_path / "v", tmp_path / "i.sqlite")
    index = deps.LocalIndex.open(tmp_path / "i.sqlite")
    (record,) = index.records_for(["edge-pre"])["edge-pre"]
    assert record.data["summary"] == "new"
    index.close()


def test_oversized_zip_member_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database, "MAX_RECORD_BYTES", 100)
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("big.json", json.dumps({**EDGE_RECORDS[0], "details": "x" * 5000}))
    with pytest.raises(deps.DepsError, match=r"big\.json: larger than 100 bytes"):
        deps.import_database(archive, tmp_path / "i.sqlite")
    assert not (tmp_path / "i.sqlite").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [("missing", "no OSV database at"), ("garbage", "not a Bastion OSV index")],
)
def test_unusable_index_says_how_to_import(tmp_path: Path, setup: str, message: str) -> None:
    path = tmp_path / "index.sqlite"
    if setup == "garbage":
        path.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(deps.DepsError, match=message) as info:
        deps.LocalIndex.open(path)
    assert info.value.hint and "bastion deps db import" in info.value.hint


def test_source_that_is_neither_folder_nor_zip(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(deps.DepsError, match="neither a directory of OSV records nor a zip"):
        deps.import_database(tmp_path / "notes.txt", tmp_path / "i.sqlite")
    with pytest.raises(deps.DepsError, match="no OSV records for PyPI"):
        deps.import_database(tmp_path, tmp_path / "i.sqlite")


def test_withdrawn_records_never_affect(edge_index: deps.LocalIndex) -> None:
    assert "EDGE-WITHDRAWN-1" in [r.id for r in edge_index.records_for(["edge-last"])["edge-last"]]
    found = _ids(edge_index, deps.Package("edge-last", "1.0", "t"))
    assert found == {"edge-last==1.0": ["EDGE-LAST-1"]}


def test_real_pypa_snapshot(pypa_index: deps.LocalIndex) -> None:
    info = pypa_index.info()
    assert info.records > 2000
    assert info.newest_modified is not None and info.newest_modified.year == 2024
    found = _ids(
        pypa_index,
        deps.Package("Jinja2", "2.10", "t"),
        deps.Package("jinja2", "2.11.3", "t"),
        deps.Package("jinja2", "2.7.2", "t"),
    )
    # From the PyPA records: fixed in 2.10.1 (PYSEC-2019-217), 2.11.3 (PYSEC-2021-66),
    # 2.7.2 (PYSEC-2014-8), 2.7.3 (PYSEC-2014-82), 2.8.1 (PYSEC-2019-220).
    assert found == {
        "Jinja2==2.10": ["PYSEC-2019-217", "PYSEC-2021-66"],
        "jinja2==2.7.2": ["PYSEC-2014-82", "PYSEC-2019-217", "PYSEC-2019-220", "PYSEC-2021-66"],
    }
