"""The policy's requirements read against the results: one pass or fail finding each.

Fail closed (DESIGN invariant 2): a requirement on a test that could not run, or on an ε the
test did not reach in its time, fails, and so does the test itself; only a measured figure at
or above the threshold passes. Membership figures are lower-is-safer (``max``): read from the
strongest attack unless the requirement names one, and every attack must have run; a TPR at
an FPR the non-members are too few to measure fails with that reason. Extraction figures are
lower-is-safer too: read at the budget and output named, else the largest over those not
named, every cell of which must have been measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from bastion import atlas
from bastion.assess.interface import (
    Attack,
    EvasionResult,
    ExtractionResult,
    MembershipFigures,
    MembershipResult,
    MembershipSkipped,
    SkippedTest,
)
from bastion.assess.policy import Metric, Policy, Requirement
from bastion.findings import Finding, Location, Principle, Severity

__all__ = ["judge", "remediation"]

TECHNIQUES: Final[tuple[str, ...]] = (atlas.EVADE_MODEL, atlas.CRAFT_ADVERSARIAL_DATA)
"""MITRE ATLAS techniques the evasion findings cite."""
PRIVACY_TECHNIQUES: Final[tuple[str, ...]] = (atlas.INFER_TRAINING_DATA_MEMBERSHIP,)
"""MITRE ATLAS techniques the membership findings cite."""
EXTRACTION_TECHNIQUES: Final[tuple[str, ...]] = (atlas.EXTRACT_MODEL, atlas.CREATE_PROXY_MODEL)
"""MITRE ATLAS techniques the extraction findings cite."""

_EXTRACTION_FIX: Final = (
    "Serve less per query and fewer queries per client (NCSC 3.3): lower the output fidelity "
    "(labels only, or the top class, or rounded scores, as the extraction table's "
    "recommendation says), enforce the recommended query quota per role at the gateway, and "
    "monitor and log queries for extraction patterns, such as many near-duplicate or "
    "out-of-distribution inputs from one client (NCSC 3.2). Limit who may query at all "
    "(NCSC 3.1)."
)

_PRIVACY_FIX: Final = (
    "Reduce what the model memorises and what its answers reveal: regularise it (weight "
    "decay, dropout, early stopping, more data), train it with differential privacy "
    "(DP-SGD, Abadi et al. 2016), and serve fewer output digits or labels only through the "
    "gateway (NCSC 3.3). A model that leaks membership is as sensitive as its training data: "
    "restrict access to it (NCSC 1.3) and decommission it as you would the data (NCSC 5.1)."
)
_LOW_FPR: Final = {Metric.TPR_AT_0_1PCT_FPR: 1000, Metric.TPR_AT_1PCT_FPR: 100}
"""Non-members a TPR at low FPR needs to be measured at all (1 / FPR)."""

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
    if attack is Attack.MEMBERSHIP:
        return _PRIVACY_FIX
    if attack is Attack.EXTRACTION:
        return _EXTRACTION_FIX
    return _WHITE_BOX_FIX if attack.white_box else _BLACK_BOX_FIX


def _principle(attack: Attack) -> Principle:
    return {Attack.MEMBERSHIP: Principle.P1_3, Attack.EXTRACTION: Principle.P3_3}.get(
        attack, Principle.P2_1)


def _techniques(attack: Attack) -> tuple[str, ...]:
    return {Attack.MEMBERSHIP: PRIVACY_TECHNIQUES,
            Attack.EXTRACTION: EXTRACTION_TECHNIQUES}.get(attack, TECHNIQUES)


def _extraction_measure(req: Requirement, result: ExtractionResult,
                        ) -> tuple[float | None, str, str | None]:
    """The figure, why it is missing, and which cell gave it: the budget and output named,
    else the largest over those not named, every one of which must have been measured."""
    budgets = [req.budget] if req.budget is not None else list(result.budgets)
    outputs = [req.output] if req.output is not None else list(result.outputs)
    found = []
    for budget in budgets:
        for output in outputs:
            cell = result.cell(budget, output)
            if cell is None:
                return None, (f"the test stopped at its time limit before {budget} queries "
                              f"({output.value})"), None
            value = cell.agreement if req.metric is Metric.AGREEMENT else cell.accuracy
            found.append((value, f"{budget} queries, {output.value}"))
    value, where = max(found, key=lambda t: t[0])
    return value, "", where


def _membership_measure(req: Requirement, result: MembershipResult,
                        ) -> tuple[float | None, str, str | None]:
    """The figure, why it is missing, and which attack gave it: the one named, else the
    strongest (largest) of them all, each of which must have been measured."""
    chosen = [a for a in result.attacks if req.attack is None or a.attack is req.attack]
    skipped = [a for a in chosen if isinstance(a, MembershipSkipped)]
    if skipped:
        return None, f"{skipped[0].attack.display_name} did not run ({skipped[0].reason})", None
    ran = [a for a in chosen if isinstance(a, MembershipFigures)]
    if not ran:
        return None, "no attack of the test measured it", None
    values = [(a.value(req.metric.value), a) for a in ran]
    missing = [a for v, a in values if v is None]
    if missing:
        need = _LOW_FPR.get(req.metric, 0)
        return None, (f"{req.metric.display_name} is not measurable with "
                      f"{missing[0].non_members} non-members (it needs at least {need}; "
                      "give more non-members and raise tests.membership.samples)"), None
    value, strongest = max(((v, a) for v, a in values if v is not None), key=lambda t: t[0])
    return value, "", strongest.attack.value


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


def _finding(req: Requirement,
             result: EvasionResult | MembershipResult | ExtractionResult | SkippedTest | None,
             where: Location) -> Finding:
    rule = f"assess.{req.test.value}.{req.metric.value}"
    evidence: dict[str, object] = {"requirement": str(req), "eps": req.eps}
    if req.maximum is not None:
        evidence["maximum"] = req.maximum
        if req.test is Attack.EXTRACTION:
            evidence["budget"] = req.budget
            evidence["output"] = None if req.output is None else req.output.value
        else:
            evidence["attack"] = None if req.attack is None else req.attack.value
    else:
        evidence["minimum"] = req.minimum
    principle, techniques = _principle(req.test), _techniques(req.test)
    if isinstance(result, EvasionResult):
        value, why = _measure(req, result)
    elif isinstance(result, MembershipResult):
        value, why, by = _membership_measure(req, result)
        evidence["measured_by"] = by
    elif isinstance(result, ExtractionResult):
        value, why, by = _extraction_measure(req, result)
        evidence["measured_by"] = by
        evidence["recommendation"] = result.recommendation.to_dict()
    else:
        value = None
        why = result.reason if result is not None else "the test did not run"
    if value is not None and req.met_by(value):
        evidence["measured"] = value if math.isfinite(value) else "beyond every one found"
        return Finding(rule=rule, severity=Severity.INFO, title=f"passed: {req}",
                       principle=principle, location=where, techniques=techniques,
                       detail=f"measured {_text(value)}", evidence=evidence)
    if value is None:
        detail = f"not measured: {why}; a requirement that cannot be checked fails"
    elif req.maximum is not None and req.test is Attack.EXTRACTION:
        detail = (f"measured {_text(value)} ({evidence.get('measured_by')}), above the "
                  f"allowed {req.maximum:g}: a copy trained on the model's answers matches it "
                  "more closely than the policy allows")
        evidence["measured"] = value
    elif req.maximum is not None:
        detail = (f"measured {_text(value)} ({evidence.get('measured_by')}), above the "
                  f"allowed {req.maximum:g}: an attacker tells the model's training rows from "
                  "others more reliably than the policy allows")
        evidence["measured"] = value
    else:
        detail = (f"measured {_text(value)}, below the required {req.minimum:g}: "
                  f"{req.test.display_name} evades the model more easily than the policy allows")
        evidence["measured"] = value
    return Finding(rule=rule, severity=req.severity, title=f"failed: {req}",
                   principle=principle, location=where, detail=detail,
                   techniques=techniques, remediation=remediation(req.test), evidence=evidence)


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


def _membership_summary(result: MembershipResult, where: Location) -> list[Finding]:
    """The membership figures (principle 5.1: the model holds what it leaks), and a not-run
    finding per attack that could not run."""
    out: list[Finding] = []
    shown = []
    for a in result.figures():
        low = "n/a" if a.tpr_at_1pct_fpr is None else f"{a.tpr_at_1pct_fpr:.3g}"
        shown.append(f"{a.attack.display_name} AUC {a.auc:.3g}, TPR@1%FPR {low}")
    if shown:
        out.append(Finding(
            rule="assess.membership.summary", severity=Severity.INFO,
            title=f"membership inference ({result.members} members, {result.non_members} "
                  f"non-members): " + "; ".join(shown),
            principle=Principle.P5_1, location=where, techniques=PRIVACY_TECHNIQUES,
            detail="how well an attacker tells the training rows apart: what the model holds "
                   "of its data, to be kept and retired as that data is",
            evidence=result.to_dict()))
    for skipped in (a for a in result.attacks if isinstance(a, MembershipSkipped)):
        out.append(Finding(
            rule="assess.test.not_run", severity=Severity.HIGH,
            title=f"membership inference ({skipped.attack.display_name}) could not run: "
                  f"{skipped.reason}",
            principle=Principle.P1_3, location=where, techniques=PRIVACY_TECHNIQUES,
            detail="the policy asks for this attack; an attack that cannot run is a failed "
                   "requirement, never a pass", remediation=skipped.remedy,
            evidence=skipped.to_dict()))
    if not result.complete:
        out.append(Finding(
            rule="assess.test.incomplete", severity=Severity.HIGH,
            title="membership inference ran out of time",
            principle=Principle.P1_3, location=where, techniques=PRIVACY_TECHNIQUES,
            detail=f"stopped after {result.seconds:.0f} s, its max_seconds; the attacks not "
                   "finished are not evidence of privacy",
            remediation="raise max_seconds for this test, or lower its samples, "
                        "shadow_models or epochs",
            evidence={"attacks": [a.attack.value for a in result.attacks]}))
    return out


def _extraction_summary(result: ExtractionResult, where: Location) -> list[Finding]:
    """The extraction figures and the recommendation (info), and a finding if it ran out of
    time."""
    out: list[Finding] = []
    advice = result.recommendation
    if result.cells:
        last = max(result.budgets)
        shown = [f"{c.output.value} {c.agreement:.3g}" for c in result.cells if c.budget == last]
        fidelity = advice.fidelity.value if advice.fidelity is not None else "none"
        out.append(Finding(
            rule="assess.extraction.summary", severity=Severity.INFO,
            title=f"model extraction: agreement at {last} queries: " + ", ".join(shown)
                  + f"; richest output under {advice.threshold:g}: {fidelity}",
            principle=Principle.P3_3, location=where, techniques=EXTRACTION_TECHNIQUES,
            detail="how closely a copy trained on the model's answers matches it, per query "
                   "budget and output mode; evidence.recommendation is the output fidelity "
                   "and query quota per mode the gateway should serve",
            evidence=result.to_dict()))
    if not result.complete:
        out.append(Finding(
            rule="assess.test.incomplete", severity=Severity.HIGH,
            title="model extraction ran out of time",
            principle=Principle.P3_3, location=where, techniques=EXTRACTION_TECHNIQUES,
            detail=f"stopped after {result.seconds:.0f} s, its max_seconds; the budgets and "
                   "outputs not measured are not evidence that the model resists extraction",
            remediation="raise max_seconds for this test, or lower its budgets",
            evidence={"measured": len(result.cells),
                      "planned": len(result.budgets) * len(result.outputs)}))
    return out


def judge(policy: Policy,
          results: Sequence[EvasionResult | MembershipResult | ExtractionResult | SkippedTest],
          where: Location) -> list[Finding]:
    """Findings for ``results`` under ``policy``: per test, a summary (or the failure to run
    or finish), then one per requirement."""
    findings: list[Finding] = []
    by_test = {r.attack: r for r in results}
    for result in results:
        if isinstance(result, SkippedTest):
            findings.append(Finding(
                rule="assess.test.not_run", severity=Severity.HIGH,
                title=f"{result.attack.display_name} could not run: {result.reason}",
                principle=_principle(result.attack), location=where,
                techniques=_techniques(result.attack),
                detail="the policy asks for this test; a test that cannot run is a failed "
                       "requirement, never a pass", remediation=result.remedy,
                evidence=result.to_dict()))
            continue
        if isinstance(result, MembershipResult):
            findings += _membership_summary(result, where)
            continue
        if isinstance(result, ExtractionResult):
            findings += _extraction_summary(result, where)
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
