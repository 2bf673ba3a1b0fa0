"""The policy's requirements read against the results: one pass or fail finding each.

Fail closed (DESIGN invariant 2): a requirement on a test that could not run, or on an ε the
test did not reach in its time, fails, and so does the test itself; only a measured figure at
or above the threshold passes. Membership figures are lower-is-safer (``max``): read from the
strongest attack unless the requirement names one, and every attack must have run; a TPR at
an FPR the non-members are too few to measure fails with that reason. Extraction figures are
lower-is-safer too: read at the budget and output named, else the largest over those not
named, every cell of which must have been measured. OoD figures are read from the detector
named, else the chosen one, on the shift named, else the worst over every shift it measured
(a shift that does not apply, such as blur on table rows, is left out, and said).
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
    OodResult,
    OodShift,
    SkippedTest,
)
from bastion.assess.policy import Metric, Policy, Requirement
from bastion.assess.pruning import PruningResult
from bastion.findings import Finding, Location, Principle, Severity

__all__ = ["judge", "remediation"]

TECHNIQUES: Final[tuple[str, ...]] = (atlas.EVADE_MODEL, atlas.CRAFT_ADVERSARIAL_DATA)
"""MITRE ATLAS techniques the evasion findings cite."""
PRIVACY_TECHNIQUES: Final[tuple[str, ...]] = (atlas.INFER_TRAINING_DATA_MEMBERSHIP,)
"""MITRE ATLAS techniques the membership findings cite."""
EXTRACTION_TECHNIQUES: Final[tuple[str, ...]] = (atlas.EXTRACT_MODEL, atlas.CREATE_PROXY_MODEL)
"""MITRE ATLAS techniques the extraction findings cite."""
OOD_TECHNIQUES: Final[tuple[str, ...]] = (atlas.EVADE_MODEL,)
"""MITRE ATLAS techniques the OoD findings cite (inputs unlike any the model was trained on
are how evasion and extraction queries look)."""

Result = (EvasionResult | MembershipResult | ExtractionResult | OodResult | PruningResult
          | SkippedTest)
"""Any test's outcome."""

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

_OOD_FIX: Final = (
    "Detect inputs unlike the training data before the model answers them (NCSC 2.6): serve "
    "the model behind the gateway with the saved detector, so that flagged queries abstain "
    "or alert; if no detector separates the shifts you expect, fit on more representative "
    "data, train the model with outlier exposure, or narrow who may query it (NCSC 3.1)."
)
_PRUNING_FIX: Final = (
    "Prune no further than the sparsest level within the allowed accuracy loss, and assess "
    "the pruned model as a new version before it replaces this one (NCSC 2.6, 4.2)."
)

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
    if attack is Attack.OOD:
        return _OOD_FIX
    if attack is Attack.PRUNING:
        return _PRUNING_FIX
    return _WHITE_BOX_FIX if attack.white_box else _BLACK_BOX_FIX


def _principle(attack: Attack) -> Principle:
    return {Attack.MEMBERSHIP: Principle.P1_3, Attack.EXTRACTION: Principle.P3_3,
            Attack.OOD: Principle.P2_6, Attack.PRUNING: Principle.P2_6}.get(
        attack, Principle.P2_1)


def _techniques(attack: Attack) -> tuple[str, ...]:
    return {Attack.MEMBERSHIP: PRIVACY_TECHNIQUES, Attack.EXTRACTION: EXTRACTION_TECHNIQUES,
            Attack.OOD: OOD_TECHNIQUES}.get(attack, TECHNIQUES)


def _ood_measure(req: Requirement, result: OodResult) -> tuple[float | None, str, str | None]:
    """The figure, why it is missing, and where it came from: the detector named, else the
    chosen one; the shift named, else the worst it measured (lowest AUROC, highest FPR)."""
    detector = req.detector or result.chosen
    if detector is None:
        return None, "no detector could be fitted (" + "; ".join(
            f"{k}: {v}" for k, v in result.skipped.items()) + ")", None
    if detector.value in result.skipped:
        why = result.skipped[detector.value]
        return None, f"{detector.value} could not be fitted ({why})", None
    rows = [f for f in result.of(detector) if req.shift is None or f.shift is req.shift]
    measured = [(f.value(req.metric.value), f) for f in rows]
    found = [(v, f) for v, f in measured if v is not None]
    if not found:
        if req.shift is not None and rows and rows[0].note:
            return None, f"{req.shift.value} does not apply: {rows[0].note}", None
        what = "the --ood set was not given" if req.shift is OodShift.GIVEN else (
            "the test stopped at its time limit first" if not result.complete
            else "no shift was measured")
        return None, f"{detector.value} on {req.shift.value if req.shift else 'any shift'}: " \
                     f"{what}", None
    pick = min if req.metric is Metric.AUROC else max
    value, worst = pick(found, key=lambda t: t[0])
    return value, "", f"{detector.value} on {worst.shift.value}"


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
                      f"{missing[0].non_members} non-members (it needs at least {need}: "
                      f"give at least {need} non-members ({2 * need} for art_blackbox, which "
                      f"scores on half of them) and raise tests.membership.samples to "
                      f"{need} or more)"), None
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


def _finding(req: Requirement, result: Result | None, where: Location) -> Finding:
    rule = f"assess.{req.test.value}.{req.metric.value}"
    evidence: dict[str, object] = {"requirement": str(req), "eps": req.eps}
    if req.maximum is not None:
        evidence["maximum"] = req.maximum
        if req.test is Attack.EXTRACTION:
            evidence["budget"] = req.budget
            evidence["output"] = None if req.output is None else req.output.value
        elif req.test is Attack.MEMBERSHIP:
            evidence["attack"] = None if req.attack is None else req.attack.value
    else:
        evidence["minimum"] = req.minimum
    if req.test is Attack.OOD:
        evidence["detector"] = None if req.detector is None else req.detector.value
        evidence["shift"] = None if req.shift is None else req.shift.value
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
    elif isinstance(result, OodResult):
        value, why, by = _ood_measure(req, result)
        evidence["measured_by"] = by
    elif isinstance(result, PruningResult):  # pragma: no cover - no requirement reads it
        value, why = None, "the pruning sweep has no figure a requirement reads"
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
    elif req.test is Attack.OOD:
        detail = (f"measured {_text(value)} ({evidence.get('measured_by')}), "
                  + (f"above the allowed {req.maximum:g}" if req.maximum is not None
                     else f"below the required {req.minimum:g}")
                  + ": the detector tells these inputs from the training data's less "
                    "reliably than the policy asks")
        evidence["measured"] = value
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


def _incomplete(result: EvasionResult | MembershipResult | ExtractionResult | OodResult
                | PruningResult, title: str, detail: str, remedy: str,
                evidence: dict[str, object], where: Location) -> Finding:
    """The finding for a test that ran out of time: what was not done is no evidence."""
    return Finding(rule="assess.test.incomplete", severity=Severity.HIGH, title=title,
                   principle=_principle(result.attack), location=where,
                   techniques=_techniques(result.attack),
                   detail=f"stopped after {result.seconds:.0f} s, its max_seconds; {detail}",
                   remediation=remedy, evidence=evidence)


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
        out.append(_incomplete(
            result, "membership inference ran out of time",
            "the attacks not finished are not evidence of privacy",
            "raise max_seconds for this test, or lower its samples, shadow_models or epochs",
            {"attacks": [a.attack.value for a in result.attacks]}, where))
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
        out.append(_incomplete(
            result, "model extraction ran out of time",
            "the budgets and outputs not measured are not evidence that the model resists "
            "extraction", "raise max_seconds for this test, or lower its budgets",
            {"measured": len(result.cells),
             "planned": len(result.budgets) * len(result.outputs)}, where))
    return out


def _ood_summary(result: OodResult, where: Location) -> list[Finding]:
    """Each detector's worst AUROC, the chosen one and its threshold (info); a detector that
    could not be fitted (info: the others stand; a requirement on it fails); out of time."""
    out: list[Finding] = []
    shown = []
    for kind in dict.fromkeys(f.detector for f in result.figures):
        values = [f.auroc for f in result.of(kind) if f.auroc is not None]
        if values:
            shown.append(f"{kind.value} {min(values):.3g}")
    chosen = "none" if result.chosen is None else result.chosen.value
    out.append(Finding(
        rule="assess.ood.summary", severity=Severity.INFO,
        title=f"OoD detection: worst AUROC per detector: {', '.join(shown) or 'none'}; "
              f"chosen for the gateway: {chosen}",
        principle=Principle.P2_6, location=where, techniques=OOD_TECHNIQUES,
        detail=f"fitted on {result.fitted_on} rows, scored on {result.evaluated} held-out "
               "rows against each shift; the chosen detector flags inputs above the score "
               "95 % of in-distribution rows stay under",
        evidence=result.to_dict()))
    for name, reason in result.skipped.items():
        out.append(Finding(
            rule="assess.ood.not_fitted", severity=Severity.INFO,
            title=f"OoD detector {name} does not apply to this model: {reason}",
            principle=Principle.P2_6, location=where, techniques=OOD_TECHNIQUES,
            detail="the other detectors were fitted; a requirement that reads this one fails",
            evidence={"detector": name, "reason": reason}))
    if result.chosen is None:
        out.append(Finding(
            rule="assess.test.not_run", severity=Severity.HIGH,
            title="OoD detection: no detector could be fitted",
            principle=Principle.P2_6, location=where, techniques=OOD_TECHNIQUES,
            detail="the gateway has no detector to flag unusual inputs with",
            remediation="add msp to tests.ood.detectors (it needs only probabilities)",
            evidence={"skipped": dict(result.skipped)}))
    if not result.complete:
        out.append(_incomplete(
            result, "OoD detection ran out of time",
            "the detectors not scored are not evidence", "raise max_seconds for this test, "
            "or lower its samples and fit_samples", {"figures": len(result.figures)}, where))
    return out


def _pruning_summary(result: PruningResult, where: Location) -> list[Finding]:
    """The sparsest level within the allowed loss (info), and out of time."""
    out: list[Finding] = []
    if result.levels:
        first, last = result.levels[0], result.levels[-1]
        chosen = ("none within it" if result.chosen is None
                  else f"sparsity {result.chosen:g}")
        out.append(Finding(
            rule="assess.pruning.summary", severity=Severity.INFO,
            title=f"pruning: accuracy {first.accuracy:.3g} at sparsity {first.sparsity:g} → "
                  f"{last.accuracy:.3g} at {last.sparsity:g}; sparsest within "
                  f"{result.max_accuracy_loss:g} accuracy loss: {chosen}",
            principle=Principle.P2_6, location=where, techniques=TECHNIQUES,
            detail=f"{result.method}; accuracy, robust accuracy, size and latency per level",
            remediation=_PRUNING_FIX, evidence=result.to_dict()))
    if not result.complete:
        out.append(_incomplete(
            result, "pruning ran out of time", "the levels not measured are not evidence",
            "raise max_seconds for this test, or drop levels",
            {"levels": [lv.sparsity for lv in result.levels],
             "planned": list(result.planned)}, where))
    return out


def judge(policy: Policy, results: Sequence[Result], where: Location) -> list[Finding]:
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
        if isinstance(result, OodResult):
            findings += _ood_summary(result, where)
            continue
        if isinstance(result, PruningResult):
            findings += _pruning_summary(result, where)
            continue
        if result.curve:
            findings.append(_summary(result, where))
        if not result.complete:
            reached = ", ".join(f"{p.eps:g}" for p in result.curve) or "none"
            findings.append(_incomplete(
                result, f"{result.attack.display_name} ran out of time (ε done: {reached})",
                "the ε values not reached are not evidence of robustness",
                "raise max_seconds for this test, or lower its sample size, steps or query "
                "budget", {"planned_eps": list(result.planned_eps), "samples": result.samples},
                where))
    findings += [_finding(req, by_test.get(req.test), where) for req in policy.requirements]
    return findings
