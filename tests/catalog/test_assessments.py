"""The release gate: approval and production need a passing assessment under the release
policy, or a risk accepted with a reason; a new policy makes older assessments stale."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bastion.catalog.records import Status
from bastion.catalog.service import Catalog
from bastion.errors import AccessDeniedError, ConfigError, UsageError
from bastion.store.roles import Role
from bastion.store.workspace import Workspace

from .conftest import StubScanner
from .test_service import as_actor

MakeModel = Callable[..., Path]
POLICY_A, POLICY_B = "a" * 64, "b" * 64


@pytest.fixture
def in_review(workspace: Workspace, scanner: StubScanner,
              make_model: MakeModel) -> tuple[Catalog, Catalog]:
    """``m@1`` in review: its author, and bob, who reviews."""
    author = Catalog(workspace, scanner=scanner)
    author.add_model("m", make_model(seed=1))
    author.grant("m", "bob", Role.REVIEWER)
    author.request_review("m@1")
    return author, as_actor(workspace, "bob", scanner)


def test_without_a_release_policy_nothing_is_gated(in_review: tuple[Catalog, Catalog]) -> None:
    author, bob = in_review
    assert author.release_policy() is None
    with pytest.raises(UsageError, match="no risk to accept"):
        bob.approve("m@1", accept_risk="just in case")  # it would record nothing
    assert bob.approve("m@1") is Status.APPROVED
    author.set_alias("m", "production", 1)
    assert author.show("m@production").summary.version == 1


def test_approval_needs_a_passing_assessment_under_the_policy(
    in_review: tuple[Catalog, Catalog], workspace: Workspace
) -> None:
    author, bob = in_review
    author.set_release_policy(POLICY_A, {"version": 1}, "release.yaml")
    with pytest.raises(AccessDeniedError, match="has never been assessed"):
        bob.approve("m@1")
    author.record_assessment("m@1", policy_digest=POLICY_A, passed=False, document={"x": 1})
    with pytest.raises(AccessDeniedError, match="its assessment under it failed"):
        bob.approve("m@1")
    author.record_assessment("m@1", policy_digest=POLICY_B, passed=True, document={})
    with pytest.raises(AccessDeniedError, match="requires a passing assessment"):
        bob.approve("m@1")  # passed, but under another policy
    assert author.show("m@1").summary.status is Status.IN_REVIEW  # nothing recorded
    author.record_assessment("m@1", policy_digest=POLICY_A, passed=True, document={})
    assert bob.approve("m@1") is Status.APPROVED
    author.set_alias("m", "production", 1)
    actions = [e.action for e in workspace.audit.entries(subject="m@1")]
    assert actions.count("version.assessment") == 3


def test_a_new_policy_makes_older_assessments_stale_and_gates_production(
    in_review: tuple[Catalog, Catalog]
) -> None:
    author, bob = in_review
    author.set_release_policy(POLICY_A, {"version": 1}, "a.yaml")
    author.record_assessment("m@1", policy_digest=POLICY_A, passed=True, document={})
    bob.approve("m@1")
    assert [a["stale"] for a in author.show("m@1").assessments] == [False]
    author.set_release_policy(POLICY_B, {"version": 1}, "b.yaml")
    assert [a["stale"] for a in author.show("m@1").assessments] == [True]
    with pytest.raises(AccessDeniedError, match="older ones are stale"):
        author.set_alias("m", "production", 1)
    assert author.show("m@1").aliases == []  # refused inside the transaction
    author.set_alias("m", "staging", 1)  # only production is gated


def test_accepting_the_risk_is_recorded_and_holds_for_that_policy(
    in_review: tuple[Catalog, Catalog], workspace: Workspace
) -> None:
    author, bob = in_review
    author.set_release_policy(POLICY_A, {"version": 1}, "a.yaml")
    with pytest.raises(UsageError, match="needs a reason"):
        bob.approve("m@1", accept_risk="  ")
    assert bob.approve("m@1", accept_risk="research preview, no users") is Status.APPROVED
    author.set_alias("m", "production", 1)  # the accepted risk covers this policy
    accepted = [e for e in workspace.audit.entries(subject="m@1")
                if e.action == "version.accept_risk"]
    assert len(accepted) == 1 and accepted[0].details["policy_digest"] == POLICY_A
    assert accepted[0].details["reason"] == "research preview, no users"
    author.set_release_policy(POLICY_B, {"version": 1}, "b.yaml")
    with pytest.raises(AccessDeniedError, match="requires a passing assessment"):
        author.set_alias("m", "production", 1)  # that acceptance was for the old policy


def test_recording_needs_a_contributor_and_a_live_version(
    in_review: tuple[Catalog, Catalog], workspace: Workspace, scanner: StubScanner
) -> None:
    author, _ = in_review
    stranger = as_actor(workspace, "eve", scanner)
    with pytest.raises(AccessDeniedError):
        stranger.record_assessment("m@1", policy_digest=POLICY_A, passed=True, document={})
    author.destroy("m@1", "superseded")
    with pytest.raises(UsageError, match="destroyed"):
        author.record_assessment("m@1", policy_digest=POLICY_A, passed=True, document={})


def test_a_damaged_release_policy_record_is_an_error_not_an_open_gate(
    in_review: tuple[Catalog, Catalog], workspace: Workspace
) -> None:
    author, bob = in_review
    (workspace.settings.home / "release-policy.json").write_text("{not json")
    with pytest.raises(ConfigError, match="damaged"):
        bob.approve("m@1")
    with pytest.raises(UsageError, match="not a SHA-256"):
        author.set_release_policy("abc", {}, "x.yaml")
