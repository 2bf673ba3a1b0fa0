"""The risk presets and the commented YAML that ``bastion assess policy init`` writes.

ε values assume inputs scaled to ``[0, 1]`` (pixels, min-max scaled features). Higher risk
runs more tests, on more samples, with more steps and queries, and asks more of the model.
"""

from __future__ import annotations

import copy
from typing import Any, Final

__all__ = ["DEFAULTS", "preset", "template"]

DEFAULTS: Final[dict[str, Any]] = {
    "seed": 0,
    "sample_size": 200,
    "max_seconds": 120.0,
    "tests": {
        "fgsm": {},
        "pgd_linf": {"steps": 10, "step_size": 0.25, "random_init": True},
        "pgd_l2": {"steps": 10, "step_size": 0.25, "random_init": True},
        "autopgd": {"norm": "inf", "steps": 20},
        "hopskipjump": {"norm": "2", "samples": 20, "max_queries": 1000},
        "square": {"norm": "inf", "samples": 20, "max_queries": 500},
        "membership": {"attacks": ["threshold", "confidence", "art_blackbox"], "samples": 500,
                       "shadow_models": 8, "epochs": 20, "learning_rate": 1e-3},
        "extraction": {"budgets": [100, 1000, 10000],
                       "outputs": ["probabilities", "rounded2", "top1", "label"],
                       "surrogate": "mlp", "samples": 500, "soft_labels": True},
        "ood": {"detectors": ["msp", "energy", "mahalanobis", "knn"],
                "shifts": ["noise", "blur", "contrast", "holdout"], "samples": 500,
                "fit_samples": 5000},
        "pruning": {"levels": [0.0, 0.25, 0.5, 0.75, 0.9], "max_accuracy_loss": 0.01},
    },
}
"""What a field left out of a policy means."""

_LINF: Final = [0.0, 0.02, 0.05, 0.1, 0.2]
_L2: Final = [0.0, 0.25, 0.5, 1.0, 2.0]

_PRESETS: Final[dict[str, dict[str, Any]]] = {
    "low": {
        "version": 1, "risk": "low", "seed": 0, "sample_size": 100, "input_range": None,
        "max_seconds": 60,
        "tests": {
            "fgsm": {"eps": [0.0, 0.02, 0.05, 0.1]},
            "pgd_linf": {"eps": [0.0, 0.02, 0.05, 0.1], "steps": 10, "step_size": 0.25,
                         "random_init": True},
        },
        "requirements": [
            {"test": "pgd_linf", "metric": "robust_accuracy", "eps": 0.05, "min": 0.5,
             "severity": "medium"},
        ],
    },
    "medium": {
        "version": 1, "risk": "medium", "seed": 0, "sample_size": 200, "input_range": None,
        "max_seconds": 120,
        "tests": {
            "fgsm": {"eps": _LINF},
            "pgd_linf": {"eps": _LINF, "steps": 20, "step_size": 0.1, "random_init": True},
            "pgd_l2": {"eps": _L2, "steps": 20, "step_size": 0.1, "random_init": True},
            "hopskipjump": {"eps": [0.25, 0.5, 1.0, 2.0], "norm": 2, "samples": 20,
                            "max_queries": 1000},
            "ood": {"detectors": ["msp", "energy", "mahalanobis", "knn"],
                    "shifts": ["noise", "blur", "contrast", "holdout"]},
        },
        "requirements": [
            {"test": "pgd_linf", "metric": "robust_accuracy", "eps": 0.1, "min": 0.6,
             "severity": "high"},
            {"test": "pgd_l2", "metric": "robust_accuracy", "eps": 0.5, "min": 0.6,
             "severity": "medium"},
            {"test": "hopskipjump", "metric": "median_perturbation", "min": 0.5,
             "severity": "medium"},
        ],
    },
    "high": {
        "version": 1, "risk": "high", "seed": 0, "sample_size": 500, "input_range": None,
        "max_seconds": 300,
        "tests": {
            "fgsm": {"eps": _LINF},
            "pgd_linf": {"eps": _LINF, "steps": 40, "step_size": 0.05, "random_init": True},
            "pgd_l2": {"eps": _L2, "steps": 40, "step_size": 0.05, "random_init": True},
            "autopgd": {"eps": _LINF, "norm": "inf", "steps": 50},
            "hopskipjump": {"eps": [0.25, 0.5, 1.0, 2.0], "norm": 2, "samples": 50,
                            "max_queries": 5000},
            "square": {"eps": [0.02, 0.05, 0.1], "norm": "inf", "samples": 50,
                       "max_queries": 2000},
            "membership": {"attacks": ["threshold", "confidence", "art_blackbox", "lira"],
                           "samples": 1000, "shadow_models": 16, "epochs": 20},
            "extraction": {"budgets": [100, 1000, 10000],
                           "outputs": ["probabilities", "rounded2", "top1", "label"],
                           "surrogate": "mlp", "samples": 500, "max_seconds": 600},
            "ood": {"detectors": ["msp", "energy", "mahalanobis", "knn"],
                    "shifts": ["noise", "blur", "contrast", "holdout"], "samples": 1000},
            "pruning": {"levels": [0.0, 0.25, 0.5, 0.75, 0.9], "max_accuracy_loss": 0.01},
        },
        "requirements": [
            {"test": "pgd_linf", "metric": "robust_accuracy", "eps": 0.1, "min": 0.7,
             "severity": "high"},
            {"test": "autopgd", "metric": "worst_class_robust_accuracy", "eps": 0.05,
             "min": 0.6, "severity": "high"},
            {"test": "pgd_l2", "metric": "robust_accuracy", "eps": 0.5, "min": 0.7,
             "severity": "high"},
            {"test": "square", "metric": "robust_accuracy", "eps": 0.05, "min": 0.7,
             "severity": "high"},
            {"test": "hopskipjump", "metric": "median_perturbation", "min": 1.0,
             "severity": "medium"},
            {"test": "membership", "metric": "auc", "max": 0.6, "severity": "high"},
            {"test": "membership", "metric": "tpr_at_1pct_fpr", "max": 0.05,
             "severity": "high"},
            {"test": "membership", "metric": "tpr_at_0_1pct_fpr", "max": 0.01,
             "severity": "medium"},
            {"test": "extraction", "metric": "agreement", "budget": 1000,
             "output": "probabilities", "max": 0.9, "severity": "medium"},
            {"test": "ood", "metric": "auroc", "shift": "noise", "min": 0.9,
             "severity": "medium"},
        ],
    },
}

_HEAD: Final = """\
# Bastion assessment policy (NCSC principle 2.1: test the model against known attacks,
# automatically, before release), risk: {risk}.
#
#   bastion assess run MODEL --data DATA --policy THIS_FILE
#
# eps values are perturbation radii in each test's norm, in the model's input units. These
# presets assume inputs scaled to [0, 1]; scale the eps values for any other range.
# The schema: bastion/assess/policy.schema.json (an unknown field is an error).
"""

_FIELDS: Final = {
    "version": "policy format version",
    "risk": "the preset this started from (informational)",
    "seed": "sampling and attack randomness: same seed, model, data -> same figures",
    "sample_size": "labelled samples the white-box tests attack (per class, in proportion)",
    "input_range": "[low, high] attacks clip to; null: the model's, else the data's range",
    "max_seconds": "per test; a test out of time stops, reported incomplete (a failure)",
}

_TESTS: Final = {
    "fgsm": "white-box (PyTorch models): one step along the gradient's sign (L-inf)",
    "pgd_linf": "white-box: projected gradient descent in the L-inf ball",
    "pgd_l2": "white-box: projected gradient descent in the L2 ball",
    "autopgd": "white-box: AutoPGD, step size adapted as it goes (a stronger PGD)",
    "hopskipjump": "black-box (any model, probabilities only): smallest perturbation found",
    "square": "black-box: random square patches within eps (score-based)",
    "membership": "privacy (NCSC 1.3, 5.1): tell training rows apart; needs --members",
    "extraction": "NCSC 3.3: a copy trained on the answers, per budget and output mode",
    "ood": "NCSC 2.6: detectors of unusual inputs, saved for the gateway; --ood DATA",
    "pruning": "NCSC 2.6: magnitude pruning per sparsity; the sparsest within the loss",
}

_MEMBERSHIP_OFF: Final = """\
  # membership:                     # privacy (NCSC 1.3, 5.1): can an attacker tell the
  #   attacks: [threshold, confidence, art_blackbox]   # training rows apart? needs
  #   samples: 500                  # --members TRAIN; lira (shadow models) in the high preset
"""

_KEYS: Final = {
    "steps": "iterations",
    "step_size": "each step, as a fraction of eps",
    "random_init": "start from a random point in the eps-ball",
    "norm": "inf or 2",
    "samples": "samples attacked (the first of the white-box sample)",
    "max_queries": "model queries allowed per sample",
    "attacks": "threshold, confidence, art_blackbox, lira",
    "shadow_models": "LiRA: shadow models on halves of the non-members",
    "epochs": "LiRA on PyTorch: epochs per shadow network",
    "learning_rate": "LiRA on PyTorch: Adam's learning rate",
    "budgets": "queries the attacker may make, ascending",
    "surrogate": "the thief's model: mlp or logistic",
    "detectors": "msp, energy (logits), mahalanobis, knn (features)",
    "shifts": "noise, blur, contrast (images), holdout (a class)",
    "levels": "sparsities, ascending (0: the model as it is)",
    "max_accuracy_loss": "what the chosen level may lose",
}
_EXTRACTION_KEYS: Final = {"outputs": "",
                            "samples": "rows of --data held out to score the copies",
                            "max_seconds": "per test"}
_EXTRACTION_OFF: Final = """\
  # extraction:                     # NCSC 3.3: how close a copy trained on the model's
  #   budgets: [100, 1000, 10000]   # answers comes, per query budget and output mode;
  #   outputs: [probabilities, rounded2, top1, label]   # recommends fidelity and quota
"""
_OOD_OFF: Final = """\
  # ood:                            # NCSC 2.6: out-of-distribution detectors fitted on
  #   detectors: [msp, energy, mahalanobis, knn]   # --members (else half of --data), the
  #   shifts: [noise, blur, contrast, holdout]     # chosen one saved for the gateway
"""
_PRUNING_OFF: Final = """\
  # pruning:                        # NCSC 2.6: global magnitude pruning per sparsity:
  #   levels: [0.0, 0.25, 0.5, 0.75, 0.9]   # accuracy, robust accuracy, size, latency
  #   max_accuracy_loss: 0.01
"""
_MEMBERSHIP_KEYS: Final = {"attacks": "",
                            "samples": "at most this many members and non-members each"}


def preset(risk: str) -> dict[str, Any]:
    """The preset policy for ``risk`` as a plain mapping (a copy: callers may change it)."""
    return copy.deepcopy(_PRESETS[risk])


def _flow(value: Any) -> str:
    """A YAML flow scalar or list."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return repr(value) if isinstance(value, float) else str(value)


def _line(text: str, comment: str) -> str:
    return f"{text:<34}# {comment}" if comment else text


def template(risk: str) -> str:
    """The preset for ``risk`` as commented YAML."""
    data = preset(risk)
    lines = [_HEAD.format(risk=risk)]
    lines += [_line(f"{key}: {_flow(data[key])}", note) for key, note in _FIELDS.items()]
    lines += ["", "tests:                            # each runs; remove one to skip it"]
    for name, body in data["tests"].items():
        lines.append(_line(f"  {name}:", _TESTS[name]))
        keys = ({**_KEYS, **_MEMBERSHIP_KEYS} if name == "membership"
                else {**_KEYS, **_EXTRACTION_KEYS} if name == "extraction" else _KEYS)
        lines += [_line(f"    {k}: {_flow(v)}", keys.get(k, "")) for k, v in body.items()]
    if "membership" not in data["tests"]:
        lines += _MEMBERSHIP_OFF.rstrip("\n").split("\n")
    for name, off in (("extraction", _EXTRACTION_OFF), ("ood", _OOD_OFF),
                      ("pruning", _PRUNING_OFF)):
        if name not in data["tests"]:
            lines += off.rstrip("\n").split("\n")
    lines += ["", "requirements:                     # each yields a pass or fail finding;",
              "  # metric: robust_accuracy | worst_class_robust_accuracy (at eps, one the",
              "  # test measures), clean_accuracy, median_perturbation (black-box tests):",
              "  # min (higher is safer); membership: auc | balanced_accuracy |",
              "  # tpr_at_1pct_fpr | tpr_at_0_1pct_fpr: max (lower is safer), of the",
              "  # strongest attack (or attack: one of them); extraction: agreement |",
              "  # surrogate_accuracy: max, at budget and output (default: the largest);",
              "  # ood: auroc (min) | fpr_at_95_tpr (max), of detector (default: the",
              "  # chosen one) on shift (default: the worst);",
              "  # severity: of the finding when it fails"]
    lines += [f"  - {_flow(r)}" for r in data["requirements"]]
    if "membership" not in data["tests"]:
        lines.append("  # - {test: membership, metric: tpr_at_1pct_fpr, max: 0.05}")
    return "\n".join(lines) + "\n"
