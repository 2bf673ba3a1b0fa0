"""The policy's requirements read against the results: one pass or fail finding each.

Fail closed (DESIGN invariant 2): a requirement on a test that could not run, or on an ε the
test did not reach in its time, fails, and so does the test itself; only a measured figure at
or above the threshold passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from bastion import atlas
from bastion.assess.interface import Attack, EvasionResult, SkippedTest
from bastion.assess.policy import Metric, Policy, Requirement
from bastion.findings import Finding, Location, Principle, Severity

__all__ = ["judge", "remediation"]

TECHNIQUES: Final[tuple[str, ...]] = (atlas.EVADE_MODEL, atlas.CRAFT_ADVERSARIAL_DATA)
"""MITRE ATLAS techniques these findings cite."""

_WHITE_BOX_FIX: Final = (
    "Adversarially train the model (PGD adversarial training, Madry et al. 2018; the saved "
    "--save-adversarial examples are a start), bound and quantise its inputs to the valid "
    "range, and keep its weights and gradients from users (NCSC 3.1)."
)
_BLACK_BOX_FIX: Final = (
    "Limit what a query reveals and how many a client may make (labels only or rounded "
    "scores, rate limits and query monitoring: NCSC 3.2, 3.3), and adversarially train the "
    "model on the saved examples."
)


def remediation(attack: Attack) -> str:
    """What to do when ``attack`` succeeds too easily."""
    return _WHITE_BOX_FIX if attack.white_box else _BLACK_BOX_FIX


def _measure(req: Requirement, result: EvasionResult) -> tuple[float | None, str]:
    """The figure the requirement reads, or ``None`` and why it was not measured."""
    if req.metric is Metric.CLEAN_ACCURACY:
        return result.clean_accuracy, ""
    if req.metric is Metric.MEDIAN_PERTURBATION:
        if result.success_rate is None:
            return None, "the model classified none of the attacked samples correctly"
        value = result.median_perturbation
        return (math.inf if value is None else value), ""
    at = result.at(req.eps) if req.eps is not None else None
    if at is None:
        return None, (f"the test stopped at its time limit before ε {req.eps:g}"
                      if not result.complete else f"ε {req.eps:g} was not measured")
    if req.metric is Metric.WORST_CLASS_ROBUST_ACCURACY:
        return min(at.per_class.values(), default=0.0), ""
    return at.robust_accuracy, ""


def _finding(req: Requirement, result: EvasionResult | SkippedTest | None, where: Location,
             ) -> Finding:
    rule = f"assess.{req.test.value}.{req.metric.value}"
    evidence: dict[str, object] = {"requirement": str(req), "minimum": req.minimum,
                                   "eps": req.eps}
    if isinstance(result, EvasionResult):
        value, why = _measure(req, result)
    else:
        value = None
        why = result.reason if result is not None else "the test did not run"
    if value is not None and value >= req.minimum:
        evidence["measured"] = value if math.isfinite(value) else "beyond every one found"
        return Finding(rule=rule, severity=Severity.INFO, title=f"passed: {req}",
                       principle=Principle.P2_1, location=where, techniques=TECHNIQUES,
                       detail=f"measured {_text(value)}", evidence=evidence)
    if value is None:
        detail = f"not measured: {why}; a requirement that cannot be checked fails"
    else:
        detail = (f"measured {_text(value)}, below the required {req.minimum:g}: "
                  f"{req.test.display_name} evades the model more easily than the policy allows")
        evidence["measured"] = value
    return Finding(rule=rule, severity=req.severity, title=f"failed: {req}",
                   principle=Principle.P2_1, location=where, detail=detail,
                   techniques=TECHNIQUES, remediation=remediation(req.test), evidence=evidence)


def _text(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "beyond every perturbation found"


def _summary(result: EvasionResult, where: Location) -> Finding:
    """What a test showed, as an info finding (so tables and SARIF carry the figures)."""
    first, last = result.curve[0], result.curve[-1]
    text = (f"{result.attack.display_name}: robust accuracy {first.robust_accuracy:.3g} at ε "
            f"{first.eps:g} → {last.robust_accuracy:.3g} at ε {last.eps:g} "
            f"({result.samples} samples, clean accuracy {result.clean_accuracy:.3g})")
    if result.median_queries is not None:
        text += f"; median queries {result.median_queries:g}"
    return Finding(rule=f"assess.{result.attack.value}.curve", severity=Severity.INFO,
                   title=text, principle=Principle.P2_1, location=where,
                   techniques=TECHNIQUES, evidence=result.to_dict())


def judge(policy: Policy, results: Sequence[EvasionResult | SkippedTest], where: Location,
          ) -> list[Finding]:
    """Findings for ``results`` under ``policy``: per test, a summary (or the failure to run
    or finish), then one per requirement."""
    findings: list[Finding] = []
    by_test = {r.attack: r for r in results}
    for result in results:
        if isinstance(result, SkippedTest):
            findings.append(Finding(
                rule="assess.test.not_run", severity=Severity.HIGH,
                title=f"{result.attack.display_name} could not run: {result.reason}",
                principle=Principle.P2_1, location=where, techniques=TECHNIQUES,
                detail="the policy asks for this test; a test that cannot run is a failed "
                       "requirement, never a pass", remediation=result.remedy,
                evidence=result.to_dict()))
            continue
        if result.curve:
            findings.append(_summary(result, where))
        if not result.complete:
            reached = ", ".join(f"{p.eps:g}" for p in result.curve) or "none"
            findings.append(Finding(
                rule="assess.test.incomplete", severity=Severity.HIGH,
                title=f"{result.attack.display_name} ran out of time (ε done: {reached})",
                principle=Principle.P2_1, location=where, techniques=TECHNIQUES,
                detail=f"stopped after {result.seconds:.0f} s, its max_seconds; the ε values "
                       "not reached are not evidence of robustness",
                remediation="raise max_seconds for this test, or lower its sample size, "
                            "steps or query budget",
                evidence={"planned_eps": list(result.planned_eps), "samples": result.samples}))
    findings += [_finding(req, by_test.get(req.test), where) for req in policy.requirements]
    return findings
