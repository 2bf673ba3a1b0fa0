"""OSV record evaluation: range types, events, versions lists, severity (expected by hand)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.deps import _osv
from bastion.deps._cvss import base_score
from bastion.deps.interface import DepsError
from bastion.errors import BastionError
from bastion.findings import Severity

from .conftest import endpoint


def _rec(affected: list[dict[str, Any]], **extra: Any) -> _osv.Record:
    data = {"id": "T-1", "modified": "2026-01-01T00:00:00Z", "affected": affected, **extra}
    return _osv.parse_record(data, "test")


def _range(kind: str, *events: dict[str, str], name: str = "pkg") -> list[dict[str, Any]]:
    return [
        {
            "package": {"ecosystem": "PyPI", "name": name},
            "ranges": [{"type": kind, "events": list(events)}],
        }
    ]


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("0.9", False),
        ("1.0", True),
        ("1.2.3", True),
        ("1.5", False),
        ("2.0rc1", False),
        ("2.0", True),
        ("2.2.9", True),
        ("2.3", False),
        ("3.0", True),
        ("99", True),
    ],
)
def test_ecosystem_range_with_several_pairs(version: str, affected: bool) -> None:
    record = _rec(
        _range(
            "ECOSYSTEM",
            {"introduced": "3.0"},
            {"fixed": "1.5"},
            {"introduced": "1.0"},
            {"fixed": "2.3"},
            {"introduced": "2.0"},
        )
    )
    assert _osv.affects(record, "pkg", version) is affected  # events unsorted on purpose


@pytest.mark.parametrize(
    ("version", "affected"),
    [
        ("1.0.0-alpha", True),
        ("1.0.0-alpha.1", True),
        ("1.0.0-beta.2", True),
        ("1.0.0-beta.11", True),
        ("1.0.0-rc.1", False),
        ("1.0.0", False),
        ("0.9.9", True),
    ],
)
def test_semver_range_uses_semver_precedence(version: str, affected: bool) -> None:
    # SemVer 2.0 §11: alpha < alpha.1 < beta.2 < beta.11 < rc.1 < 1.0.0.
    record = _rec(_range("SEMVER", {"introduced": "0"}, {"fixed": "1.0.0-rc.1"}))
    assert _osv.affects(record, "pkg", version) is affected


def test_semver_identifier_precedence() -> None:
    order = [
        "1.0.0-1",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1",
        "v2",
    ]
    keys = [_osv._semver_key(v) for v in order]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_limit_events_bound_the_range() -> None:
    record = _rec(_range("ECOSYSTEM", {"introduced": "1.0"}, {"limit": "1.4"}))
    assert _osv.affects(record, "pkg", "1.3")
    assert not _osv.affects(record, "pkg", "1.4")
    assert not _osv.affects(record, "pkg", "0.5")


def test_versions_list_uses_pep440_equality() -> None:
    record = _rec([{"package": {"ecosystem": "PyPI", "name": "pkg"}, "versions": ["1.0", "2.0b1"]}])
    assert _osv.affects(record, "pkg", "1.0.0")  # 1.0 == 1.0.0 under PEP 440
    assert _osv.affects(record, "pkg", "2.0.0b1")
    assert not _osv.affects(record, "pkg", "1.0+local")
    assert not _osv.affects(record, "pkg", "1.0.post1")


def test_other_ecosystems_and_packages_do_not_match() -> None:
    record = _rec(
        [
            {
                "package": {"ecosystem": "npm", "name": "pkg"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}],
            },
            *_range("ECOSYSTEM", {"introduced": "0"}, name="other"),
        ]
    )
    assert not _osv.affects(record, "pkg", "1.0")
    assert _osv.pypi_names(record) == {"other"}


def test_git_ranges_defer_to_the_versions_list() -> None:
    record = _rec(
        [
            {
                "package": {"ecosystem": "PyPI", "name": "pkg"},
                "ranges": [
                    {
                        "type": "GIT",
                        "repo": "https://example.invalid/r",
                        "events": [{"introduced": "abc123"}, {"fixed": "def456"}],
                    }
                ],
                "versions": ["1.1"],
            }
        ]
    )
    assert _osv.affects(record, "pkg", "1.1")
    assert not _osv.affects(record, "pkg", "1.2")


def test_unorderable_range_fails_closed() -> None:
    record = _rec(_range("ECOSYSTEM", {"introduced": "0"}, {"fixed": "2019-09-12"}))
    assert _osv.affects(record, "pkg", "5.0")


def test_fixed_and_last_affected_in_version_order() -> None:
    record = _rec(
        _range(
            "ECOSYSTEM",
            {"introduced": "2.0"},
            {"fixed": "10.1"},
            {"introduced": "0"},
            {"fixed": "9.0"},
            {"last_affected": "11"},
        )
    )
    assert _osv.fixed_versions(record, "pkg") == ["9.0", "10.1"]  # not string order
    assert _osv.last_affected(record, "pkg") == ["11"]


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        # scores published by NVD / the CVSS v3.1 calculator for these vectors
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:N/A:N", 6.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
        ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L", 5.3),
        ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:N/I:N/A:N", 0.0),
    ],
)
def test_cvss_v3_base_scores(vector: str, score: float) -> None:
    assert base_score(vector) == score


@pytest.mark.parametrize(
    "vector",
    [
        "AV:N/AC:L/Au:N/C:P/I:P/A:P",
        "CVSS:3.1/AV:N/AC:L",
        "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N",
    ],
)
def test_cvss_rejects_what_it_cannot_score(vector: str) -> None:
    assert base_score(vector) is None


def test_severity_prefers_cvss_then_label_then_high() -> None:
    cvss = _rec(
        _range("ECOSYSTEM", {"introduced": "0"}),
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"}],
        database_specific={"severity": "CRITICAL"},
    )
    assert _osv.severity(cvss, "pkg") == (Severity.MEDIUM, "cvss_v3", 5.3)
    label = _rec(
        _range("ECOSYSTEM", {"introduced": "0"}), database_specific={"severity": "MODERATE"}
    )
    assert _osv.severity(label, "pkg") == (Severity.MEDIUM, "database_specific", None)
    bare = _rec(_range("ECOSYSTEM", {"introduced": "0"}))
    assert _osv.severity(bare, "pkg") == (Severity.HIGH, "unscored", None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a mapping"),
        ({"modified": "2026-01-01T00:00:00Z"}, "has no 'id'"),
        ({"id": "X", "modified": "yesterday"}, "not an RFC 3339 timestamp"),
        ({"id": "X", "modified": "2026-01-01T00:00:00Z", "affected": {}}, "list of mappings"),
        (
            {"id": "X", "modified": "2026-01-01T00:00:00Z", "affected": [{"package": {}}]},
            "without a package name",
        ),
    ],
)
def test_malformed_records_are_named(data: object, message: str) -> None:
    with pytest.raises(DepsError, match=message) as info:
        _osv.parse_record(data, "file.json")
    assert isinstance(info.value, BastionError)
    assert "file.json" in str(info.value)


# -- fuzzing ---------------------------------------------------------------------------------

_PEP440 = st.sampled_from(
    ["0.1", "1.0", "1.0.0", "1.0rc1", "1.0.post1", "1.0+local", "1!0.5", "1.1", "2.0", "2.0b2"]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)


def _events(values: st.SearchStrategy[str]) -> st.SearchStrategy[list[dict[str, str]]]:
    kinds = st.sampled_from(["introduced", "fixed", "last_affected", "limit"])
    event = st.builds(lambda k, v: {k: v}, kinds, values)
    return st.lists(event, max_size=6).map(lambda es: [{"introduced": "0"}, *es])


_ECOSYSTEM_ENTRY = st.fixed_dictionaries(
    {
        "package": st.fixed_dictionaries(
            {"ecosystem": st.just("PyPI"), "name": st.sampled_from(["pkg", "Pkg.Name", "other"])}
        ),
        "ranges": st.lists(
            st.fixed_dictionaries({"type": st.just("ECOSYSTEM"), "events": _events(_PEP440)}),
            max_size=2,
        ),
        "versions": st.lists(_PEP440, max_size=3),
    }
)


@settings(max_examples=300, deadline=None)
@given(affected=st.lists(_ECOSYSTEM_ENTRY, min_size=1, max_size=3), version=_PEP440)
def test_matcher_agrees_with_the_reference_transcription(
    affected: list[dict[str, Any]], version: str
) -> None:
    # Differential: Bastion's matcher against the endpoint's independent transcription of the
    # OSV pseudocode, on random ECOSYSTEM ranges (events in any order, repeated bounds, limits).
    data = {"id": "F-1", "modified": "2026-01-01T00:00:00Z", "affected": affected}
    record = _osv.parse_record(data, "fuzz")
    for name in ("pkg", "pkg-name", "other"):
        expected = endpoint.is_vulnerable(data, name, version)
        assert _osv.affects(record, name, version) is expected


_JUNK_ENTRY = st.fixed_dictionaries(
    {"package": st.fixed_dictionaries({"ecosystem": st.just("PyPI"), "name": st.just("pkg")})},
    optional={
        "ranges": st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["ECOSYSTEM", "SEMVER", "GIT", "BOGUS"]),
                    "events": _events(
                        _PEP440 | st.sampled_from(["v1.2.3", "1.0.0-beta.1", "bad", ""])
                    ),
                }
            )
            | _JSON,
            max_size=2,
        ),
        "versions": st.lists(_PEP440 | _JSON, max_size=3) | _JSON,
        "severity": _JSON,
    },
)


@settings(max_examples=300, deadline=None)
@given(affected=st.lists(_JUNK_ENTRY, max_size=3) | _JSON, severity=_JSON, version=_PEP440)
def test_any_record_is_either_refused_or_evaluated(
    affected: object, severity: object, version: str
) -> None:
    data = {
        "id": "F-1",
        "modified": "2026-01-01T00:00:00Z",
        "affected": affected,
        "severity": severity,
        "database_specific": severity,
        "aliases": severity,
    }
    try:
        record = _osv.parse_record(data, "fuzz")
    except DepsError:
        return
    assert _osv.affects(record, "pkg", version) in (True, False)
    assert all(isinstance(v, str) for v in _osv.fixed_versions(record, "pkg"))
    assert all(isinstance(v, str) for v in _osv.last_affected(record, "pkg"))
    assert _osv.severity(record, "pkg")[0] in Severity
    assert isinstance(_osv.summary(record), str)
    assert all(isinstance(a, str) for a in _osv.aliases(record))
