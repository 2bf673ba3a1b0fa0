"""The assessment policy: which attack tests run, with what parameters, and what they must show.

    >>> from bastion.assess.policy import Policy, policy_template
    >>> policy = Policy.from_yaml(policy_template("low"))
    >>> [t.attack.value for t in policy.tests], str(policy.requirements[0])
    (['fgsm', 'pgd_linf'], 'pgd_linf: robust accuracy at ε 0.05 ≥ 0.5')

A policy is YAML checked against the published JSON Schema shipped beside this module
(``policy.schema.json``), then against rules a schema cannot state (a requirement's ε must be
one its test measures). Every error names the field's path (``tests.pgd_linf.epss``) and says
how to fix it; nothing half-valid is returned. ``policy_template`` writes a commented starting
point for a risk level (``bastion assess policy init --risk medium``).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final, Self

import yaml

from bastion.assess._presets import DEFAULTS, preset, template
from bastion.assess.interface import (
    Attack,
    MembershipAttack,
    Norm,
    OodScore,
    OodShift,
    OutputMode,
    PolicyError,
)
from bastion.findings import Severity

__all__ = ["AttackSpec", "ExtractionSpec", "MembershipSpec", "Metric", "OodSpec", "Policy",
           "PruningSpec", "Requirement", "Risk", "policy_template", "schema"]

SCHEMA_FILE: Final = "policy.schema.json"


class Risk(enum.StrEnum):
    """How much is at stake: decides which tests a new policy runs, and how hard."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Metric(enum.StrEnum):
    """What a requirement reads from a test's result."""

    ROBUST_ACCURACY = "robust_accuracy"
    WORST_CLASS_ROBUST_ACCURACY = "worst_class_robust_accuracy"
    CLEAN_ACCURACY = "clean_accuracy"
    MEDIAN_PERTURBATION = "median_perturbation"
    AUC = "auc"
    BALANCED_ACCURACY = "balanced_accuracy"
    TPR_AT_0_1PCT_FPR = "tpr_at_0_1pct_fpr"
    TPR_AT_1PCT_FPR = "tpr_at_1pct_fpr"
    AGREEMENT = "agreement"
    SURROGATE_ACCURACY = "surrogate_accuracy"
    AUROC = "auroc"
    FPR_AT_95_TPR = "fpr_at_95_tpr"

    @property
    def needs_eps(self) -> bool:
        """Whether the metric is read at one ε."""
        return self in (Metric.ROBUST_ACCURACY, Metric.WORST_CLASS_ROBUST_ACCURACY)

    @property
    def membership(self) -> bool:
        """Whether the membership test measures it; these are lower-is-safer (``max``)."""
        return self in _MEMBERSHIP_METRICS

    @property
    def extraction(self) -> bool:
        """Whether the extraction test measures it; these are lower-is-safer (``max``)."""
        return self in (Metric.AGREEMENT, Metric.SURROGATE_ACCURACY)

    @property
    def ood(self) -> bool:
        """Whether the OoD test measures it (AUROC: ``min``; FPR at 95 % TPR: ``max``)."""
        return self in (Metric.AUROC, Metric.FPR_AT_95_TPR)

    @property
    def display_name(self) -> str:
        """The metric for people."""
        return _METRIC_TITLES.get(self, self.value.replace("_", " "))


_MEMBERSHIP_METRICS: Final = frozenset({Metric.AUC, Metric.BALANCED_ACCURACY,
                                        Metric.TPR_AT_0_1PCT_FPR, Metric.TPR_AT_1PCT_FPR})
_METRIC_TITLES: Final = {Metric.AUC: "AUC", Metric.TPR_AT_0_1PCT_FPR: "TPR at 0.1 % FPR",
                         Metric.TPR_AT_1PCT_FPR: "TPR at 1 % FPR", Metric.AUROC: "AUROC",
                         Metric.FPR_AT_95_TPR: "FPR at 95 % TPR"}


@dataclass(frozen=True, slots=True)
class AttackSpec:
    """One test as the policy sets it up."""

    attack: Attack
    """The attack."""
    eps: tuple[float, ...]
    """Budgets to measure, ascending, in the inputs' units."""
    norm: Norm
    """The norm ε is measured in."""
    steps: int
    """Iterations (gradient attacks; ignored by FGSM and black-box attacks)."""
    step_size: float
    """Each step as a fraction of ε (PGD)."""
    random_init: bool
    """Start PGD from a random point in the ε-ball."""
    samples: int | None
    """Black-box attacks: how many samples (the first of the white-box sample)."""
    max_queries: int
    """Black-box attacks: model queries allowed per sample."""
    max_seconds: float
    """Time budget for the test."""


@dataclass(frozen=True, slots=True)
class MembershipSpec:
    """The membership inference test as the policy sets it up (``tests.membership``)."""

    attacks: tuple[MembershipAttack, ...]
    """The attacks, in the order they run."""
    samples: int
    """At most this many members, and at most this many non-members (each side on its own)."""
    shadow_models: int
    """LiRA: shadow models, each trained on a random half of the non-members."""
    epochs: int
    """LiRA on a PyTorch model: epochs each shadow network is trained for."""
    learning_rate: float
    """LiRA on a PyTorch model: Adam's learning rate for the shadow networks."""
    max_seconds: float
    """Time budget for the test."""

    attack: Attack = Attack.MEMBERSHIP
    """The test (always :attr:`Attack.MEMBERSHIP`)."""


@dataclass(frozen=True, slots=True)
class ExtractionSpec:
    """The model extraction test as the policy sets it up (``tests.extraction``)."""

    budgets: tuple[int, ...]
    """Query budgets, ascending."""
    outputs: tuple[OutputMode, ...]
    """What each query answers, one surrogate per mode and budget."""
    surrogate: str
    """The thief's model: ``mlp`` (scikit-learn ``MLPClassifier``) or ``logistic``."""
    samples: int
    """At most this many rows of the data held out to score the surrogates (at most half of
    it when the data is also the query pool)."""
    soft_labels: bool
    """Also fit a surrogate on the answers as class weights (not only their top labels)."""
    threshold: float | None
    """``tests.extraction.threshold``: the agreement the recommendation keeps under."""
    max_seconds: float
    """Time budget for the test."""

    attack: Attack = Attack.EXTRACTION
    """The test (always :attr:`Attack.EXTRACTION`)."""


@dataclass(frozen=True, slots=True)
class OodSpec:
    """The out-of-distribution test as the policy sets it up (``tests.ood``)."""

    detectors: tuple[OodScore, ...]
    """The detectors fitted, in order (ties in the choice go to the first)."""
    shifts: tuple[OodShift, ...]
    """The generated shifts (the ``--ood`` set is added when given)."""
    samples: int
    """At most this many held-out in-distribution rows scored."""
    fit_samples: int
    """At most this many rows fitted on."""
    choose: OodScore | None
    """The detector saved for the gateway; ``None``: the best mean AUROC."""
    max_seconds: float
    """Time budget for the test."""

    attack: Attack = Attack.OOD
    """The test (always :attr:`Attack.OOD`)."""


@dataclass(frozen=True, slots=True)
class PruningSpec:
    """The pruning sweep as the policy sets it up (``tests.pruning``)."""

    levels: tuple[float, ...]
    """Sparsities, ascending."""
    max_accuracy_loss: float
    """The accuracy the chosen level may lose against the unpruned model."""
    robust: AttackSpec | None
    """The evasion test (at one ε) robust accuracy is measured with per level, if any."""
    max_seconds: float
    """Time budget for the test."""

    attack: Attack = Attack.PRUNING
    """The test (always :attr:`Attack.PRUNING`)."""


Spec = AttackSpec | MembershipSpec | ExtractionSpec | OodSpec | PruningSpec
"""Any test's set-up."""


@dataclass(frozen=True, slots=True)
class Requirement:
    """A threshold a test's result must meet; each yields a pass or fail finding."""

    test: Attack
    """The test it reads."""
    metric: Metric
    """What it reads."""
    eps: float | None
    """At which ε (robust accuracy metrics)."""
    minimum: float | None
    """The lowest acceptable value (``min``: the evasion metrics, higher is safer)."""
    severity: Severity
    """The finding's severity when it fails."""
    maximum: float | None = None
    """The highest acceptable value (``max``: the membership metrics, lower is safer)."""
    attack: MembershipAttack | None = None
    """Membership metrics: the one attack read; ``None``: the strongest of the test's attacks
    (every one must have run)."""
    budget: int | None = None
    """Extraction metrics: at this query budget; ``None``: the largest figure over every
    budget."""
    output: OutputMode | None = None
    """Extraction metrics: under this output mode; ``None``: the largest over every mode."""
    detector: OodScore | None = None
    """OoD metrics: this detector's figures; ``None``: the chosen detector's."""
    shift: OodShift | None = None
    """OoD metrics: on this shift; ``None``: the worst over every shift measured."""

    def __str__(self) -> str:
        what = self.metric.display_name
        at = f" at ε {self.eps:g}" if self.eps is not None else ""
        if self.budget is not None:
            at += f" at {self.budget} queries"
        if self.shift is not None:
            at += f" on {self.shift.value}"
        of = f" ({self.attack.value})" if self.attack is not None else ""
        if self.output is not None:
            of += f" ({self.output.value})"
        if self.detector is not None:
            of += f" ({self.detector.value})"
        bound = (f"≤ {self.maximum:g}" if self.maximum is not None
                 else f"≥ {self.minimum if self.minimum is not None else 0.0:g}")
        return f"{self.test.value}: {what}{of}{at} {bound}"

    def met_by(self, value: float) -> bool:
        """Whether a measured ``value`` meets the bound."""
        if self.maximum is not None:
            return value <= self.maximum
        return self.minimum is not None and value >= self.minimum


@dataclass(frozen=True, eq=False)
class Policy:
    """A validated policy (build it with :meth:`from_file`, :meth:`from_yaml` or
    :meth:`from_mapping`; each checks everything first)."""

    source: str
    """Where it was read from, for messages and reports."""
    digest: str
    """SHA-256 of its canonical JSON form: comments and key order do not change it."""
    risk: Risk | None
    """The preset it started from, when it says."""
    seed: int
    """Seed for sampling and attacks."""
    sample_size: int
    """Samples the white-box tests attack."""
    input_range: tuple[float, float] | None
    """The inputs' valid range, when the policy fixes it."""
    tests: tuple[AttackSpec, ...]
    """The evasion tests, in the order they run."""
    requirements: tuple[Requirement, ...]
    """The thresholds."""
    body: Mapping[str, Any] = field(default_factory=dict)
    """The policy as the canonical JSON data its digest is over."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """What one run changed (``{"max_seconds": 30}``, :meth:`with_max_seconds`); empty for a
    policy as written."""
    base_digest: str | None = None
    """With ``overrides``: the digest of the policy as written, before them."""
    membership: MembershipSpec | None = None
    """The membership inference test, when the policy runs it (after the evasion tests)."""
    extraction: ExtractionSpec | None = None
    """The model extraction test, when the policy runs it (after membership)."""
    ood: OodSpec | None = None
    """The out-of-distribution test, when the policy runs it (after extraction)."""
    pruning: PruningSpec | None = None
    """The pruning sweep, when the policy runs it (last)."""

    @property
    def test_names(self) -> list[str]:
        """Every test the policy runs, by key, in order."""
        return [t.attack.value for t in self.tests] + [
            spec.attack.value for spec in (self.membership, self.extraction, self.ood,
                                           self.pruning) if spec is not None]

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        """Read and validate a YAML policy file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{path}: cannot read the policy ({exc})",
                              hint="write one with: bastion assess policy init --risk medium "
                                   f"--output {path.name}") from None
        return cls.from_yaml(text, source=str(path))

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<policy>") -> Self:
        """Parse and validate YAML text."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise PolicyError(f"{source}: not valid YAML{where}",
                              hint="check the indentation and the quoting there") from None
        return cls.from_mapping(data, source=source)

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "<policy>") -> Self:
        """Validate an already parsed policy.

        Steps: 1. the JSON Schema (shape, types, names: a typo is an unknown field);
        2. the rules it cannot state (ε lists ascending; a requirement's test is in the
        policy, its ε is one the test measures, its metric fits the test); 3. build.
        """
        if not isinstance(data, Mapping):
            raise PolicyError(f"{source}: a policy is a mapping of fields, not "
                              f"{type(data).__name__}",
                              hint="start from: bastion assess policy init --risk medium")
        _check_schema(data, source)  # 1
        named = data["tests"]
        tests = tuple(_spec(Attack(name), body, data) for name, body in named.items()
                      if name not in _OTHER_TESTS)
        membership = (_membership(named[Attack.MEMBERSHIP.value], data, source)
                      if Attack.MEMBERSHIP.value in named else None)
        extraction = (_extraction(named[Attack.EXTRACTION.value], data, source)
                      if Attack.EXTRACTION.value in named else None)
        ood = _ood(named[Attack.OOD.value], data, source) if Attack.OOD.value in named else None
        by_name: dict[Attack, Spec] = {t.attack: t for t in tests}
        for other in (membership, extraction, ood):
            if other is not None:
                by_name[other.attack] = other
        for spec in tests:  # 2
            if list(spec.eps) != sorted(set(spec.eps)):
                raise PolicyError(f"{source}: tests.{spec.attack.value}.eps must ascend, "
                                  f"without repeats (got {list(spec.eps)})",
                                  hint=f"write it as {sorted(set(spec.eps))}")
        requirements = tuple(_requirement(i, body, by_name, source)
                             for i, body in enumerate(data.get("requirements", ())))
        pruning = (_pruning(named[Attack.PRUNING.value], data, tests, requirements, source)
                   if Attack.PRUNING.value in named else None)
        low_high = data.get("input_range")
        if low_high is not None and not (math.isfinite(low_high[0]) and low_high[0] < low_high[1]):
            raise PolicyError(f"{source}: input_range must be [low, high] with low < high",
                              hint="e.g. input_range: [0.0, 1.0]")
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        risk = data.get("risk")
        return cls(source=source, digest=hashlib.sha256(canonical.encode()).hexdigest(),
                   risk=Risk(risk) if risk else None,
                   seed=int(data.get("seed", DEFAULTS["seed"])),
                   sample_size=int(data.get("sample_size", DEFAULTS["sample_size"])),
                   input_range=(None if low_high is None
                                else (float(low_high[0]), float(low_high[1]))),
                   tests=tests, requirements=requirements, body=json.loads(canonical),
                   membership=membership, extraction=extraction, ood=ood, pruning=pruning)

    def with_max_seconds(self, seconds: float) -> Self:
        """This policy with every test's time budget set to ``seconds``: the top-level
        ``max_seconds`` replaced and each test's own removed, as if the file said so.

        The result is another policy, with its own digest (over that body), its ``overrides``
        and the ``base_digest`` it came from, so an assessment under a different budget is
        never mistaken for one under the policy as written (a release gate compares digests).
        When the body comes out the same (the policy already set exactly this budget, once,
        at the top level), it is this policy, digest unchanged.

        Raises:
            PolicyError: ``seconds`` is not a positive, finite number.
        """
        if isinstance(seconds, bool) or not (math.isfinite(seconds) and seconds > 0):
            raise PolicyError(f"max_seconds must be a positive number of seconds, not {seconds}",
                              hint="e.g. --max-seconds 60")
        value: float = int(seconds) if float(seconds).is_integer() else float(seconds)
        body = json.loads(json.dumps(self.body))  # a deep copy
        body["max_seconds"] = value
        for test in body.get("tests", {}).values():
            test.pop("max_seconds", None)
        derived = type(self).from_mapping(body, source=f"{self.source} (max_seconds {value:g})")
        if derived.digest == self.digest:
            return self
        return dataclasses.replace(derived, overrides={**self.overrides, "max_seconds": value},
                                   base_digest=self.base_digest or self.digest)

    def test(self, attack: Attack) -> AttackSpec | None:
        """The policy's set-up of ``attack``, if it runs it."""
        return next((t for t in self.tests if t.attack is attack), None)

    @classmethod
    def preset(cls, risk: Risk | str) -> Self:
        """The preset policy for a risk level (what ``policy init`` writes)."""
        return cls.from_mapping(preset(Risk(risk).value), source=f"preset:{Risk(risk).value}")


def policy_template(risk: Risk | str) -> str:
    """A commented YAML policy for ``risk``, ready to edit (it validates as written)."""
    return template(Risk(risk).value)


def schema() -> dict[str, Any]:
    """The published JSON Schema of a policy file."""
    text = resources.files("bastion.assess").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


# -------------------------------------------------------------------------- validation


def _path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _check_schema(data: Mapping[str, Any], source: str) -> None:
    """The first schema error, as a message naming the field and a hint to fix it."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    where = _path(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = list(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in known]
        field = f"{where}.{unknown[0]}" if error.absolute_path else str(unknown[0])
        close = difflib.get_close_matches(str(unknown[0]), known, n=1)
        hint = (f"did you mean {close[0]!r}?" if close else "") + f" known fields here: " \
            f"{', '.join(known)}"
        raise PolicyError(f"{source}: unknown field {field!r}", hint=hint.strip())
    if error.validator == "required":
        said = error.schema.get("description") if isinstance(error.schema, Mapping) else None
        raise PolicyError(f"{source}: {where}: {error.message}",
                          hint=str(said or "see: bastion assess policy init --risk medium"))
    if error.validator == "not" and error.validator_value == {}:  # ruled out by the metric
        raise PolicyError(f"{source}: {where} is not allowed with this metric",
                          hint=str(error.schema.get("description", "remove it")))
    if error.validator == "enum":
        choices = ", ".join(dict.fromkeys(str(c) for c in error.validator_value))
        raise PolicyError(f"{source}: {where} is {error.instance!r}, not one of the choices",
                          hint=f"use one of: {choices}")
    raise PolicyError(f"{source}: {where}: {error.message}",
                      hint=str(error.schema.get("description", "see the policy schema")))


def _spec(attack: Attack, body: Mapping[str, Any], data: Mapping[str, Any]) -> AttackSpec:
    defaults = DEFAULTS["tests"][attack.value]
    norm = {Attack.PGD_LINF: "inf", Attack.PGD_L2: "2", Attack.FGSM: "inf"}.get(
        attack, str(body.get("norm", defaults.get("norm", "inf"))))
    return AttackSpec(
        attack=attack, eps=tuple(float(e) for e in body["eps"]), norm=Norm(norm),
        steps=int(body.get("steps", defaults.get("steps", 1))),
        step_size=float(body.get("step_size", defaults.get("step_size", 0.25))),
        random_init=bool(body.get("random_init", defaults.get("random_init", False))),
        samples=int(body.get("samples", defaults["samples"])) if "samples" in defaults else None,
        max_queries=int(body.get("max_queries", defaults.get("max_queries", 0))),
        max_seconds=float(body.get("max_seconds", data.get("max_seconds",
                                                           DEFAULTS["max_seconds"]))))


def _membership(body: Mapping[str, Any], data: Mapping[str, Any], source: str,
                ) -> MembershipSpec:
    defaults = DEFAULTS["tests"][Attack.MEMBERSHIP.value]
    attacks = [str(a) for a in body.get("attacks", defaults["attacks"])]
    if len(set(attacks)) != len(attacks):
        raise PolicyError(f"{source}: tests.membership.attacks names an attack twice "
                          f"({attacks})", hint=f"write it as {list(dict.fromkeys(attacks))}")
    return MembershipSpec(
        attacks=tuple(MembershipAttack(a) for a in attacks),
        samples=int(body.get("samples", defaults["samples"])),
        shadow_models=int(body.get("shadow_models", defaults["shadow_models"])),
        epochs=int(body.get("epochs", defaults["epochs"])),
        learning_rate=float(body.get("learning_rate", defaults["learning_rate"])),
        max_seconds=float(body.get("max_seconds", data.get("max_seconds",
                                                           DEFAULTS["max_seconds"]))))


def _extraction(body: Mapping[str, Any], data: Mapping[str, Any], source: str,
                ) -> ExtractionSpec:
    defaults = DEFAULTS["tests"][Attack.EXTRACTION.value]
    budgets = [int(b) for b in body.get("budgets", defaults["budgets"])]
    if budgets != sorted(set(budgets)):
        raise PolicyError(f"{source}: tests.extraction.budgets must ascend, without repeats "
                          f"(got {budgets})", hint=f"write it as {sorted(set(budgets))}")
    outputs = [str(m) for m in body.get("outputs", defaults["outputs"])]
    if len(set(outputs)) != len(outputs):
        raise PolicyError(f"{source}: tests.extraction.outputs names a mode twice ({outputs})",
                          hint=f"write it as {list(dict.fromkeys(outputs))}")
    threshold = body.get("threshold")
    return ExtractionSpec(
        budgets=tuple(budgets), outputs=tuple(OutputMode(m) for m in outputs),
        surrogate=str(body.get("surrogate", defaults["surrogate"])),
        samples=int(body.get("samples", defaults["samples"])),
        soft_labels=bool(body.get("soft_labels", defaults["soft_labels"])),
        threshold=None if threshold is None else float(threshold),
        max_seconds=float(body.get("max_seconds", data.get("max_seconds",
                                                           DEFAULTS["max_seconds"]))))


def _ood(body: Mapping[str, Any], data: Mapping[str, Any], source: str) -> OodSpec:
    defaults = DEFAULTS["tests"][Attack.OOD.value]
    detectors = [str(d) for d in body.get("detectors", defaults["detectors"])]
    shifts = [str(s) for s in body.get("shifts", defaults["shifts"])]
    for key, values in (("detectors", detectors), ("shifts", shifts)):
        if len(set(values)) != len(values):
            raise PolicyError(f"{source}: tests.ood.{key} names one twice ({values})",
                              hint=f"write it as {list(dict.fromkeys(values))}")
    choose = body.get("choose")
    if choose is not None and choose not in detectors:
        raise PolicyError(f"{source}: tests.ood.choose is {choose!r}, which tests.ood."
                          "detectors does not fit", hint=f"use one of {detectors}")
    return OodSpec(detectors=tuple(OodScore(d) for d in detectors),
                   shifts=tuple(OodShift(s) for s in shifts),
                   samples=int(body.get("samples", defaults["samples"])),
                   fit_samples=int(body.get("fit_samples", defaults["fit_samples"])),
                   choose=None if choose is None else OodScore(choose),
                   max_seconds=float(body.get("max_seconds", data.get(
                       "max_seconds", DEFAULTS["max_seconds"]))))


def _pruning(body: Mapping[str, Any], data: Mapping[str, Any], tests: tuple[AttackSpec, ...],
             requirements: tuple[Requirement, ...], source: str) -> PruningSpec:
    """Steps: 1. levels ascend; 2. the robust test is one the policy runs, at one of its ε
    (default: the first robust accuracy requirement's test and ε); 3. build."""
    defaults = DEFAULTS["tests"][Attack.PRUNING.value]
    levels = [float(v) for v in body.get("levels", defaults["levels"])]
    if levels != sorted(set(levels)):  # 1
        raise PolicyError(f"{source}: tests.pruning.levels must ascend, without repeats "
                          f"(got {levels})", hint=f"write it as {sorted(set(levels))}")
    robust = body.get("robust")
    chosen: AttackSpec | None = None
    if robust is not None:  # 2
        chosen = next((t for t in tests if t.attack.value == robust["test"]), None)
        if chosen is None:
            raise PolicyError(f"{source}: tests.pruning.robust.test is {robust['test']!r}, "
                              "which the policy's tests do not run",
                              hint=f"add tests.{robust['test']}, or use one of: "
                                   f"{', '.join(t.attack.value for t in tests) or 'none'}")
        eps = float(robust["eps"])
        if not any(abs(eps - e) <= 1e-12 for e in chosen.eps):
            raise PolicyError(f"{source}: tests.pruning.robust.eps {eps:g} is not one tests."
                              f"{chosen.attack.value}.eps measures",
                              hint=f"use one of {list(chosen.eps)}")
    else:
        first = next((r for r in requirements if r.metric.needs_eps), None)
        found = None if first is None else next(t for t in tests if t.attack is first.test)
        chosen, eps = found, 0.0 if first is None or first.eps is None else first.eps
    return PruningSpec(  # 3
        levels=tuple(levels),
        max_accuracy_loss=float(body.get("max_accuracy_loss", defaults["max_accuracy_loss"])),
        robust=None if chosen is None else dataclasses.replace(chosen, eps=(eps,)),
        max_seconds=float(body.get("max_seconds", data.get("max_seconds",
                                                           DEFAULTS["max_seconds"]))))


_OTHER_TESTS: Final = frozenset({Attack.MEMBERSHIP.value, Attack.EXTRACTION.value,
                                 Attack.OOD.value, Attack.PRUNING.value})
"""Tests that are not evasion tests (each has its own set-up)."""


def _requirement(index: int, body: Mapping[str, Any], tests: Mapping[Attack, Spec],
                 source: str) -> Requirement:
    """Steps: 1. its test runs; 2. its metric is one that test measures, bounded the safe
    way (``min`` for evasion figures, ``max`` for membership ones); 3. its ε or attack is
    one the test measures."""
    where = f"requirements[{index}]"
    attack, metric = Attack(body["test"]), Metric(body["metric"])
    spec = tests.get(attack)
    if spec is None:  # 1
        raise PolicyError(f"{source}: {where}.test is {attack.value!r}, which the policy's "
                          "tests do not run",
                          hint=f"add tests.{attack.value}, or use one of: "
                               f"{', '.join(t.value for t in tests)}")
    if isinstance(spec, ExtractionSpec) or metric.extraction:  # 2
        return _extraction_requirement(where, body, metric, spec, source)
    if isinstance(spec, OodSpec) or metric.ood:
        return _ood_requirement(where, body, metric, spec, source)
    for key, test in (("budget", "extraction"), ("output", "extraction"), ("detector", "ood"),
                      ("shift", "ood")):
        if key in body:
            raise PolicyError(f"{source}: {where}.{key} is for the {test} test",
                              hint="remove it")
    if isinstance(spec, MembershipSpec) or metric.membership:
        return _membership_requirement(where, body, attack, metric, spec, source)
    if not isinstance(spec, AttackSpec):  # pragma: no cover - the schema names no other test
        raise PolicyError(f"{source}: {where}: no requirement reads tests.{attack.value}",
                          hint="remove it")
    if "max" in body:
        raise PolicyError(f"{source}: {where}.max: {metric.value} is higher-is-safer",
                          hint="give min (the lowest acceptable value) instead")
    if "attack" in body:
        raise PolicyError(f"{source}: {where}.attack is for the membership test",
                          hint="remove it")
    eps = body.get("eps")
    if metric.needs_eps:
        if eps is None:
            raise PolicyError(f"{source}: {where} reads {metric.value} but names no eps",
                              hint=f"add eps: one of {list(spec.eps)}")
        if not any(abs(float(eps) - e) <= 1e-12 for e in spec.eps):
            raise PolicyError(f"{source}: {where}.eps {eps} is not one tests."
                              f"{attack.value}.eps measures",
                              hint=f"use one of {list(spec.eps)}, or add it there")
    elif eps is not None:
        raise PolicyError(f"{source}: {where}.eps means nothing for {metric.value}",
                          hint="remove it")
    if metric is Metric.MEDIAN_PERTURBATION and attack.white_box:
        raise PolicyError(f"{source}: {where}: median_perturbation is measured by the "
                          "black-box tests only", hint="use test: hopskipjump or square")
    if "min" not in body:
        raise PolicyError(f"{source}: {where} names no min",
                          hint=f"add min: the lowest acceptable {metric.value}")
    return Requirement(test=attack, metric=metric,
                       eps=None if eps is None else float(eps), minimum=float(body["min"]),
                       severity=Severity.parse(str(body.get("severity", "high"))))


def _ood_requirement(where: str, body: Mapping[str, Any], metric: Metric, spec: Spec,
                     source: str) -> Requirement:
    """Steps: 1. the test and metric are the OoD test's; 2. AUROC takes ``min``, FPR ``max``;
    nothing else of other tests; 3. its detector and shift are ones the test measures."""
    if not isinstance(spec, OodSpec):  # 1
        raise PolicyError(f"{source}: {where}: {metric.value} is measured by the ood test only",
                          hint="use test: ood")
    if not metric.ood:
        raise PolicyError(f"{source}: {where}.metric {metric.value!r} is not one the ood test "
                          "measures", hint="use auroc (min) or fpr_at_95_tpr (max)")
    bound, other = ("min", "max") if metric is Metric.AUROC else ("max", "min")
    if other in body:  # 2
        raise PolicyError(f"{source}: {where}.{other}: {metric.value} takes {bound}",
                          hint=f"give {bound} instead")
    if bound not in body:
        raise PolicyError(f"{source}: {where} names no {bound}",
                          hint=f"add {bound}: the {'lowest' if bound == 'min' else 'highest'} "
                               f"acceptable {metric.value}")
    for key in ("eps", "attack", "budget", "output"):
        if key in body:
            raise PolicyError(f"{source}: {where}.{key} means nothing for {metric.value}",
                              hint="remove it")
    detector, shift = body.get("detector"), body.get("shift")
    if detector is not None and OodScore(detector) not in spec.detectors:  # 3
        raise PolicyError(f"{source}: {where}.detector is {detector!r}, which tests.ood."
                          "detectors does not fit",
                          hint=f"use one of {[d.value for d in spec.detectors]}, or add it there")
    if shift is not None and shift != OodShift.GIVEN.value and OodShift(
            shift) not in spec.shifts:
        raise PolicyError(f"{source}: {where}.shift is {shift!r}, which tests.ood.shifts does "
                          "not generate",
                          hint=f"use given (the --ood set) or one of "
                               f"{[s.value for s in spec.shifts]}")
    value = float(body[bound])
    return Requirement(test=Attack.OOD, metric=metric, eps=None,
                       minimum=value if bound == "min" else None,
                       maximum=value if bound == "max" else None,
                       detector=None if detector is None else OodScore(detector),
                       shift=None if shift is None else OodShift(shift),
                       severity=Severity.parse(str(body.get("severity", "high"))))


def _extraction_requirement(where: str, body: Mapping[str, Any], metric: Metric,
                            spec: Spec, source: str) -> Requirement:
    """Steps: 1. the test and metric are extraction's; 2. ``max`` (lower is safer), no
    ``min``, ``eps`` or ``attack``; 3. its budget and output are ones the test measures."""
    known = ", ".join(m.value for m in Metric if m.extraction)
    if not isinstance(spec, ExtractionSpec):  # 1
        raise PolicyError(f"{source}: {where}: {metric.value} is measured by the extraction "
                          "test only", hint="use test: extraction")
    if not metric.extraction:
        raise PolicyError(f"{source}: {where}.metric {metric.value!r} is not one the "
                          "extraction test measures", hint=f"use one of: {known}")
    if "min" in body:  # 2
        raise PolicyError(f"{source}: {where}.min: {metric.value} is lower-is-safer (a stolen "
                          "model close to the target)",
                          hint="give max (the highest acceptable value) instead")
    if "max" not in body:
        raise PolicyError(f"{source}: {where} names no max",
                          hint=f"add max: the highest acceptable {metric.value}")
    for key in ("eps", "attack"):
        if key in body:
            raise PolicyError(f"{source}: {where}.{key} means nothing for {metric.value}",
                              hint="remove it")
    budget, output = body.get("budget"), body.get("output")
    if budget is not None and int(budget) not in spec.budgets:  # 3
        raise PolicyError(f"{source}: {where}.budget {budget} is not one tests.extraction."
                          "budgets measures",
                          hint=f"use one of {list(spec.budgets)}, or add it there")
    if output is not None and OutputMode(output) not in spec.outputs:
        raise PolicyError(f"{source}: {where}.output is {output!r}, which tests.extraction."
                          "outputs does not measure",
                          hint=f"use one of {[m.value for m in spec.outputs]}, or add it there")
    return Requirement(test=Attack.EXTRACTION, metric=metric, eps=None, minimum=None,
                       maximum=float(body["max"]),
                       budget=None if budget is None else int(budget),
                       output=None if output is None else OutputMode(output),
                       severity=Severity.parse(str(body.get("severity", "high"))))


def _membership_requirement(where: str, body: Mapping[str, Any], attack: Attack,
                            metric: Metric, spec: Spec, source: str) -> Requirement:
    known = ", ".join(m.value for m in Metric if m.membership)
    if not isinstance(spec, MembershipSpec):
        raise PolicyError(f"{source}: {where}: {metric.value} is measured by the membership "
                          "test only", hint="use test: membership")
    if not metric.membership:
        raise PolicyError(f"{source}: {where}.metric {metric.value!r} is not one the "
                          "membership test measures", hint=f"use one of: {known}")
    if "min" in body:
        raise PolicyError(f"{source}: {where}.min: {metric.value} is lower-is-safer (an "
                          "attack that tells members apart)",
                          hint="give max (the highest acceptable value) instead")
    if "max" not in body:
        raise PolicyError(f"{source}: {where} names no max",
                          hint=f"add max: the highest acceptable {metric.value}")
    if "eps" in body:
        raise PolicyError(f"{source}: {where}.eps means nothing for {metric.value}",
                          hint="remove it")
    chosen = body.get("attack")
    if chosen is not None and MembershipAttack(chosen) not in spec.attacks:
        raise PolicyError(f"{source}: {where}.attack is {chosen!r}, which "
                          "tests.membership.attacks does not run",
                          hint=f"use one of {[a.value for a in spec.attacks]}, or add it there")
    return Requirement(test=attack, metric=metric, eps=None, minimum=None,
                       maximum=float(body["max"]),
                       attack=None if chosen is None else MembershipAttack(chosen),
                       severity=Severity.parse(str(body.get("severity", "high"))))
