"""Fixtures for the dependency audit: edge-case OSV records, the reference endpoint, indexes."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from tests.conftest import shared_file

from bastion import deps


def _load_endpoint() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "osv_endpoint", Path(__file__).with_name("osv_endpoint.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


endpoint = _load_endpoint()


def _record(ident: str, packages: list[str], events: list[dict[str, str]], **extra: Any) -> dict:
    return {
        "schema_version": "1.6.0",
        "id": ident,
        "modified": "2026-11-01T10:00:00Z",
        "published": "2026-10-01T10:00:00Z",
        "aliases": [f"CVE-2026-{int(hashlib.sha256(ident.encode()).hexdigest()[:4], 16) + 10000}"],
        "summary": f"edge case {ident}",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
            }
            for name in packages
        ],
        **extra,
    }


# Each record exercises one rule of the OSV schema's evaluation; the comments say which.
EDGE_RECORDS: list[dict[str, Any]] = [
    # pre-releases order before their final release
    _record("EDGE-PRE-1", ["edge-pre"], [{"introduced": "1.0"}, {"fixed": "2.0"}]),
    _record("EDGE-PRE-2", ["edge-pre"], [{"introduced": "0"}, {"fixed": "2.0.0rc2"}]),
    # post-releases order after their release; last_affected includes its bound
    _record("EDGE-POST-1", ["edge-post"], [{"introduced": "0"}, {"fixed": "1.0.post1"}]),
    _record("EDGE-POST-2", ["edge-post"], [{"introduced": "0"}, {"last_affected": "1.0"}]),
    # an epoch outranks any release number
    _record("EDGE-EPOCH-1", ["edge-epoch"], [{"introduced": "1!0"}, {"fixed": "1!2.0"}]),
    _record("EDGE-EPOCH-2", ["edge-epoch"], [{"introduced": "0"}, {"fixed": "5.0"}]),
    # local versions sort after their public version
    _record("EDGE-LOCAL-1", ["edge-local"], [{"introduced": "0"}, {"fixed": "1.2"}]),
    # several introduced/fixed pairs, one record for two packages
    _record(
        "EDGE-MULTI-1",
        ["edge-multi", "edge-multi-two"],
        [
            {"introduced": "1.0"},
            {"fixed": "1.5"},
            {"introduced": "2.0"},
            {"fixed": "2.3"},
            {"introduced": "3.0"},
        ],
    ),
    # last_affected alone
    _record("EDGE-LAST-1", ["edge-last"], [{"introduced": "0"}, {"last_affected": "2.1.214"}]),
    # a name that only matches after PEP 503 normalisation (requirements say Edge_Name.Mixed)
    _record("EDGE-NAME-1", ["edge-name-mixed"], [{"introduced": "0"}, {"fixed": "1.1"}]),
    # withdrawn: never reported
    _record(
        "EDGE-WITHDRAWN-1",
        ["edge-pre", "edge-last"],
        [{"introduced": "0"}],
        withdrawn="2026-11-02T00:00:00Z",
    ),
]
# An explicit versions list with no ranges.
EDGE_RECORDS.append(
    {
        **_record("EDGE-LIST-1", ["edge-local"], []),
        "affected": [{"package": {"ecosystem": "PyPI", "name": "edge-local"}, "versions": ["1.1"]}],
    }
)

# Two requirement sets probing each boundary from both sides, and what the OSV schema says
# affects them (written by hand from the records above, not computed).
REQUIREMENT_SETS: dict[str, tuple[str, set[tuple[str, str]]]] = {
    "a": (
        "edge-pre==2.0.0rc1\n"
        "edge-post==1.0\n"
        "edge-epoch==1!1.5\n"
        "edge-local==1.1+ubuntu1\n"
        "edge-multi==1.4\n"
        "edge-multi-two==2.5\n"
        "edge-last==2.1.214\n"
        "Edge_Name.Mixed==1.0\n"
        "edge-clean==1.0\n",
        {
            ("edge-pre", "EDGE-PRE-1"),
            ("edge-pre", "EDGE-PRE-2"),
            ("edge-post", "EDGE-POST-1"),
            ("edge-post", "EDGE-POST-2"),
            ("edge-epoch", "EDGE-EPOCH-1"),
            ("edge-local", "EDGE-LOCAL-1"),
            ("edge-multi", "EDGE-MULTI-1"),
            ("edge-last", "EDGE-LAST-1"),
            ("edge-name-mixed", "EDGE-NAME-1"),
        },
    ),
    "b": (
        "edge-pre==2.0.0rc2\n"
        "edge-post==1.0.post1\n"
        "edge-epoch==3.0\n"
        "edge-local==1.1\n"
        "edge-multi==1.7\n"
        "edge-multi-two==3.1\n"
        "edge-last==2.1.215\n"
        "edge-name-mixed==1.1\n",
        {
            ("edge-pre", "EDGE-PRE-1"),
            ("edge-epoch", "EDGE-EPOCH-2"),
            ("edge-local", "EDGE-LOCAL-1"),
            ("edge-local", "EDGE-LIST-1"),
            ("edge-multi-two", "EDGE-MULTI-1"),
        },
    ),
}


def write_records(directory: Path, records: list[dict[str, Any]]) -> Path:
    """Write records as the PyPA database lays them out; every other one as YAML."""
    for i, record in enumerate(records):
        folder = directory / record["affected"][0]["package"]["name"]
        folder.mkdir(parents=True, exist_ok=True)
        if i % 2:
            (folder / f"{record['id']}.yaml").write_text(yaml.safe_dump(record), encoding="utf-8")
        else:
            (folder / f"{record['id']}.json").write_text(json.dumps(record), encoding="utf-8")
    return directory


@pytest.fixture
def edge_index(tmp_path: Path) -> Iterator[deps.LocalIndex]:
    """An index built from the edge-case records."""
    source = write_records(tmp_path / "vulns", EDGE_RECORDS)
    deps.import_database(source, tmp_path / "osv" / "index.sqlite")
    index = deps.LocalIndex.open(tmp_path / "osv" / "index.sqlite")
    yield index
    index.close()


@pytest.fixture(scope="session")
def pypa_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[deps.LocalIndex]:
    """The real PyPA advisory snapshot, imported once per session."""
    path = tmp_path_factory.mktemp("pypa") / "index.sqlite"
    deps.import_database(shared_file("data/pypa-advisory-db/vulns"), path)
    index = deps.LocalIndex.open(path)
    yield index
    index.close()
