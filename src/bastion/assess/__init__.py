"""Attack-test a model against a security policy (NCSC 2.1): evasion tests, requirements, findings.

    >>> from bastion.assess import Policy, policy_template
    >>> policy = Policy.from_yaml(policy_template("medium"))
    >>> [t.attack.value for t in policy.tests]
    ['fgsm', 'pgd_linf', 'pgd_l2', 'hopskipjump']

Then, on a model loaded after a scan of its bytes (:func:`bastion.models.load_model`)::

    done = assess(loaded.predictor, x, y, policy, model_sha256=loaded.sha256)
    done.findings          # a pass or fail Finding per requirement, summaries, tests not run
    done.save_adversarial("adv.npz")

Architecture:

* ``interface`` — results (:class:`EvasionResult`, :class:`CurvePoint`, :class:`SkippedTest`),
  the :class:`Progress` protocol, the errors (:class:`AssessError`, :class:`PolicyError`).
* ``policy`` — the YAML policy, checked against ``policy.schema.json``; risk presets.
* ``evasion`` — white-box tests (FGSM, PGD L∞/L2, AutoPGD) through ART; ``_blackbox`` —
  HopSkipJump and Square on ``predict_proba`` alone; ``_art`` — the seam to ART.
* ``membership`` — membership inference (loss and confidence thresholds, ART's black-box
  attack, offline LiRA with shadow models from ``_shadow``): AUC, balanced accuracy, TPR at
  0.1 % and 1 % FPR (NCSC 1.3, 5.1).
* ``extraction`` — model extraction (a surrogate trained on the answers per query budget and
  output mode): agreement, surrogate accuracy, the recommended output fidelity and query
  quotas for the gateway (NCSC 3.3).
* ``requirements`` — thresholds read against results, one finding each, failing closed.
* ``runner`` — :func:`assess`: labels, sample, input range, tests, judgement.
* ``cache`` — finished assessments kept by model, data, policy and library versions, so an
  unchanged model is not attacked again (used by ``bastion assess run``; ``assess`` is pure).
* ``plots`` — the HTML report's figures and sections.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bastion.assess.interface import (
        AssessError,
        Attack,
        CurvePoint,
        EvasionResult,
        Norm,
        PolicyError,
        Progress,
        SkippedTest,
    )
    from bastion.assess.policy import Policy, Requirement, Risk, policy_template
    from bastion.assess.runner import Assessment, assess

__all__ = [
    "AssessError",
    "Assessment",
    "Attack",
    "CurvePoint",
    "EvasionResult",
    "Norm",
    "Policy",
    "PolicyError",
    "Progress",
    "Requirement",
    "Risk",
    "SkippedTest",
    "assess",
    "policy_template",
]

_HOME = {
    "AssessError": "interface", "Attack": "interface", "CurvePoint": "interface",
    "EvasionResult": "interface", "Norm": "interface", "PolicyError": "interface",
    "Progress": "interface", "SkippedTest": "interface",
    "Policy": "policy", "Requirement": "policy", "Risk": "policy",
    "policy_template": "policy",
    "Assessment": "runner", "assess": "runner",
}


def __getattr__(name: str) -> object:
    """Entry points load on first use: the runner pulls in NumPy and, when run, ART."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"bastion.assess.{module}"), name)
