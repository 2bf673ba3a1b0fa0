"""Membership inference on real models trained here: an overfit MLP leaks its training rows, a
strongly regularised logistic regression hardly does; LiRA finds more at low FPR; the figures
are deterministic; missing members and unmeasurable rates fail closed; policy, CLI and cache."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
import yaml
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from tests.assess.conftest import policy

from bastion import atlas
from bastion.assess import PolicyError, SkippedTest, assess
from bastion.assess.cache import cache_key
from bastion.assess.interface import (
    MembershipAttack,
    MembershipFigures,
    MembershipResult,
    MembershipSkipped,
)
from bastion.assess.membership import figures, run_membership
from bastion.assess.policy import Policy
from bastion.assess.runner import Assessment
from bastion.cli.app import main
from bastion.findings import Principle, Severity
from bastion.models import InputSpec, as_predictor

ALL = ["threshold", "confidence", "art_blackbox", "lira"]
MEMBERS = 400


class Noisy(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@pytest.fixture(scope="module")
def noisy() -> Noisy:
    """Three classes, 15 % of labels flipped: a model that fits its 400 training rows exactly
    has memorised the flipped ones, which is what membership attacks find."""
    x, y = make_classification(n_samples=1200, n_features=20, n_informative=8, n_classes=3,
                               flip_y=0.15, random_state=0)
    x = x.astype(np.float32)
    return Noisy(x[:MEMBERS], y[:MEMBERS], x[MEMBERS:], y[MEMBERS:])


@pytest.fixture(scope="module")
def overfit(noisy: Noisy) -> MLPClassifier:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: it is meant to overfit
        model = MLPClassifier((64,), alpha=0.0, max_iter=400, random_state=0)
        return model.fit(noisy.x_train, noisy.y_train)


@pytest.fixture(scope="module")
def regularised(noisy: Noisy) -> LogisticRegression:
    return LogisticRegression(C=0.01, max_iter=500).fit(noisy.x_train, noisy.y_train)


def _spec(attacks: list[str] = ALL, **extra: object) -> Any:
    return policy({"membership": {"attacks": attacks, "samples": MEMBERS, "shadow_models": 8,
                                  **extra}}).membership


def _run(model: Any, noisy: Noisy, attacks: list[str] = ALL) -> MembershipResult:
    return run_membership(_spec(attacks), as_predictor(model), (noisy.x_train, noisy.y_train),
                          (noisy.x_test, noisy.y_test), n_classes=3, seed=0)


@pytest.fixture(scope="module")
def leaky(overfit: MLPClassifier, noisy: Noisy) -> MembershipResult:
    return _run(overfit, noisy)


@pytest.fixture(scope="module")
def tight(regularised: LogisticRegression, noisy: Noisy) -> MembershipResult:
    return _run(regularised, noisy)


def _strongest(result: MembershipResult, metric: str) -> float:
    return max(v for a in result.figures() if (v := a.value(metric)) is not None)


def test_an_overfit_model_leaks_membership_and_a_regularised_one_hardly(
        overfit: MLPClassifier, leaky: MembershipResult, tight: MembershipResult) -> None:
    assert [a.attack.value for a in leaky.attacks] == ALL and leaky.complete
    assert leaky.members == leaky.non_members == MEMBERS
    for attack in MembershipAttack:
        (hot,), (cold,) = leaky.figures(attack), tight.figures(attack)
        assert hot.auc > cold.auc, attack
    assert leaky.figures(MembershipAttack.THRESHOLD)[0].auc > 0.62
    assert all(abs(a.auc - 0.5) < 0.08 for a in tight.figures())  # near chance
    assert _strongest(leaky, "auc") > _strongest(tight, "auc") + 0.1
    assert _strongest(leaky, "tpr_at_1pct_fpr") > 2 * _strongest(tight, "tpr_at_1pct_fpr")
    assert _strongest(leaky, "balanced_accuracy") > _strongest(tight, "balanced_accuracy")


def test_lira_finds_more_members_at_low_fpr_than_the_loss_threshold(
        leaky: MembershipResult) -> None:
    (lira,), (loss,) = (leaky.figures(MembershipAttack.LIRA),
                        leaky.figures(MembershipAttack.THRESHOLD))
    assert lira.tpr_at_1pct_fpr is not None and loss.tpr_at_1pct_fpr is not None
    # at this scale (400 non-members: 4 false positives at 1 %) LiRA finds several times the
    # loss attack's members; the 0.1 % figure needs 1,000 non-members and is not measured
    assert lira.tpr_at_1pct_fpr >= 2 * loss.tpr_at_1pct_fpr > 0
    assert lira.tpr_at_0_1pct_fpr is None and lira.parameters["variance"] == "global"


def test_the_figures_are_the_same_for_a_seed(overfit: MLPClassifier, noisy: Noisy,
                                              leaky: MembershipResult) -> None:
    again = _run(overfit, noisy)

    def figures_only(result: MembershipResult) -> list[dict[str, Any]]:
        return [{k: v for k, v in a.to_dict().items() if k != "seconds"}
                for a in result.attacks]

    assert figures_only(again) == figures_only(leaky)


def test_rates_at_low_fpr_are_read_off_the_roc_and_need_enough_non_members() -> None:
    truth = np.r_[np.ones(1000, bool), np.zeros(1000, bool)]
    perfect = figures(MembershipAttack.THRESHOLD, truth.astype(float), truth)
    assert (perfect.auc, perfect.balanced_accuracy, perfect.tpr_at_0_1pct_fpr,
            perfect.tpr_at_1pct_fpr) == (1.0, 1.0, 1.0, 1.0)
    scores = np.r_[np.arange(1000.0), np.arange(1000.0) - 0.5]  # interleaved: no signal
    chance = figures(MembershipAttack.THRESHOLD, scores, truth)
    assert abs(chance.auc - 0.5) < 0.01 and chance.tpr_at_0_1pct_fpr == pytest.approx(0.002)
    for n, measurable in ((100, True), (99, False)):  # 1 % FPR needs 100 non-members
        small = np.r_[np.arange(float(n)), np.arange(float(n)) - 0.5]
        few = figures(MembershipAttack.THRESHOLD, small, np.r_[np.ones(n, bool),
                                                                np.zeros(n, bool)])
        assert few.tpr_at_0_1pct_fpr is None
        assert few.tpr_at_1pct_fpr == (pytest.approx(0.02) if measurable else None)


def _membership_policy(*requirements: dict[str, Any], attacks: list[str] | None = None,
                       ) -> Policy:
    return policy({"membership": {"attacks": attacks or ["threshold", "confidence"],
                                  "samples": MEMBERS}}, list(requirements))


def test_missing_members_is_a_failed_requirement_never_a_pass(
        overfit: MLPClassifier, noisy: Noisy) -> None:
    chosen = _membership_policy({"test": "membership", "metric": "auc", "max": 0.99})
    done = assess(as_predictor(overfit), noisy.x_test, noisy.y_test, chosen)
    (skipped,) = done.results
    assert isinstance(skipped, SkippedTest) and "pass --members" in skipped.reason
    failed = {f.rule: f for f in done.findings}
    assert failed["assess.test.not_run"].severity is Severity.HIGH
    req = failed["assess.membership.auc"]
    assert req.severity is Severity.HIGH and "needs member and non-member data" in req.detail
    assert req.principle is Principle.P1_3
    assert req.techniques == (atlas.INFER_TRAINING_DATA_MEMBERSHIP,)


def test_max_requirements_pass_below_and_fail_above_or_unmeasured(
        overfit: MLPClassifier, noisy: Noisy) -> None:
    chosen = _membership_policy(
        {"test": "membership", "metric": "auc", "max": 0.99},
        {"test": "membership", "metric": "auc", "max": 0.55, "severity": "medium"},
        {"test": "membership", "metric": "tpr_at_1pct_fpr", "attack": "confidence",
         "max": 0.9},
        {"test": "membership", "metric": "tpr_at_0_1pct_fpr", "max": 0.5})
    done = assess(as_predictor(overfit), noisy.x_test, noisy.y_test, chosen,
                  members=(noisy.x_train, noisy.y_train))
    summary, lenient, strict, one, unmeasured = done.findings
    assert summary.rule == "assess.membership.summary" and summary.principle is Principle.P5_1
    assert lenient.severity is Severity.INFO and lenient.title.startswith("passed")
    assert lenient.evidence["measured_by"] == "threshold"  # the strongest of the two
    assert strict.severity is Severity.MEDIUM and "above the allowed 0.55" in strict.detail
    assert "DP-SGD" in strict.remediation and "label" in strict.remediation
    assert one.severity is Severity.INFO and one.evidence["measured_by"] == "confidence"
    assert unmeasured.severity is Severity.HIGH
    assert "not measurable with 400 non-members" in unmeasured.detail
    assert "1000" in unmeasured.detail
    back = Assessment.from_dict(json.loads(json.dumps(done.to_dict())), chosen)
    assert back.results[0].to_dict() == done.results[0].to_dict()
    assert back.membership_data == done.membership_data


class _Opaque:
    """A model known only by its answers (as an ONNX file or a URL would be)."""

    def __init__(self, inner: Any) -> None:
        self._inner = as_predictor(inner)
        self.spec = InputSpec(shape=(20,), dtype="float32", n_classes=3)

    def predict(self, x: Any) -> Any:
        return self._inner.predict(x)

    def predict_proba(self, x: Any) -> Any:
        return self._inner.predict_proba(x)


def test_lira_on_a_model_that_cannot_be_cloned_is_not_run_and_fails_its_requirement(
        regularised: LogisticRegression, noisy: Noisy) -> None:
    chosen = _membership_policy({"test": "membership", "metric": "auc", "max": 0.99},
                                attacks=["threshold", "lira"])
    done = assess(_Opaque(regularised), noisy.x_test, noisy.y_test, chosen,
                  members=(noisy.x_train, noisy.y_train))
    (result,) = done.results
    assert isinstance(result, MembershipResult)
    skipped = result.attacks[1]
    assert isinstance(skipped, MembershipSkipped) and "cannot be cloned" in skipped.reason
    rules = [f.rule for f in done.findings if f.severity is not Severity.INFO]
    assert rules == ["assess.test.not_run", "assess.membership.auc"]
    # a template for the shadows lets it run
    shadowed = assess(_Opaque(regularised), noisy.x_test, noisy.y_test, chosen,
                      members=(noisy.x_train, noisy.y_train),
                      shadow=LogisticRegression(C=0.01, max_iter=500))
    assert all(f.severity is Severity.INFO for f in shadowed.findings)


def test_lira_trains_shadow_networks_for_a_torch_model(noisy: Noisy) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    xt, yt = torch.from_numpy(noisy.x_train), torch.from_numpy(noisy.y_train)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    spec = _spec(["threshold", "lira"], shadow_models=4, epochs=30, learning_rate=1e-2)
    result = run_membership(spec, as_predictor(net.eval()), (noisy.x_train, noisy.y_train),
                            (noisy.x_test, noisy.y_test), n_classes=3, seed=0)
    (lira,) = result.figures(MembershipAttack.LIRA)
    assert isinstance(lira, MembershipFigures) and lira.auc > 0.6
    assert before_unchanged(net, xt)


def before_unchanged(net: torch.nn.Module, xt: torch.Tensor) -> bool:
    """The target itself is never retrained (the shadows are copies)."""
    return bool(net(xt).argmax(1).eq(torch.from_numpy(np.asarray(
        as_predictor(net).predict(xt.numpy())))).all())


@pytest.mark.parametrize(("requirement", "named", "hint"), [
    ({"test": "membership", "metric": "auc", "min": 0.5}, "requirements[0]", "max"),
    ({"test": "membership", "metric": "auc", "max": 0.5, "min": 0.1}, "requirements[0].min",
     "max"),
    ({"test": "fgsm", "metric": "robust_accuracy", "eps": 0.1, "max": 0.5},
     "requirements[0]", "min"),
    ({"test": "membership", "metric": "robust_accuracy", "eps": 0.1, "min": 0.5},
     "requirements[0]", "auc"),
    ({"test": "fgsm", "metric": "auc", "max": 0.5}, "requirements[0]", "membership"),
    ({"test": "membership", "metric": "auc", "max": 0.5, "attack": "lira"},
     "requirements[0].attack", "threshold"),
])
def test_policy_errors_name_the_field(requirement: dict[str, Any], named: str,
                                      hint: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_mapping({"version": 1, "tests": {"fgsm": {"eps": [0.1]}, "membership": {
            "attacks": ["threshold"]}}, "requirements": [requirement]}, source="p.yaml")
    assert named in caught.value.message and hint in (caught.value.hint or "")


def test_the_high_preset_runs_every_attack_and_bounds_the_figures() -> None:
    high = Policy.preset("high")
    assert high.membership is not None and MembershipAttack.LIRA in high.membership.attacks
    metrics = {r.metric.value: r.maximum for r in high.requirements
               if r.maximum is not None and r.metric.membership}
    assert metrics == {"auc": 0.6, "tpr_at_1pct_fpr": 0.05, "tpr_at_0_1pct_fpr": 0.01}
    assert Policy.preset("medium").membership is None  # commented out: it needs --members


def test_the_cache_key_holds_the_member_and_non_member_data(noisy: Noisy) -> None:
    chosen = _membership_policy()
    keys = [cache_key(model_sha256="ab" * 32, x=noisy.x_test, labels=noisy.y_test,
                      policy=chosen, libraries={}, members=members, non_members=others)
            for members, others in [
                ((noisy.x_train, noisy.y_train), None),
                ((noisy.x_train[1:], noisy.y_train[1:]), None),
                ((noisy.x_train, noisy.y_train), (noisy.x_test, noisy.y_test)),
                (None, None)]]
    assert len({k.digest for k in keys}) == 4
    assert keys[0].parts["members_sha256"] and keys[0].parts["non_members_sha256"] is None


def test_the_command_runs_membership_with_members_end_to_end(
        tmp_path: Path, overfit: MLPClassifier, noisy: Noisy,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(overfit))
    np.savez(tmp_path / "train.npz", X=noisy.x_train, y=noisy.y_train)
    np.savez(tmp_path / "test.npz", X=noisy.x_test, y=noisy.y_test)
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({
        "version": 1, "tests": {"membership": {"attacks": ["threshold", "art_blackbox"],
                                               "samples": 200}},
        "requirements": [{"test": "membership", "metric": "auc", "max": 0.55}]}))
    base = ["assess", "run", str(tmp_path / "model.pkl"), "--data", str(tmp_path / "test.npz"),
            "--policy", str(tmp_path / "p.yaml")]
    assert main([*base, "--members", str(tmp_path / "train.npz"), "--format", "json"]) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    (test,) = doc["summary"]["tests"]
    assert test["attack"] == "membership" and test["members"] == 200
    (failed,) = [f for f in doc["findings"] if f["rule"] == "assess.membership.auc"]
    assert failed["severity"] == "high" and failed["principle"] == "1.3"
    assert failed["evidence"]["measured"] > 0.55
    assert doc["summary"]["membership_data"]["members_sha256"]
    # the same again is read from the cache; other members are not
    assert main([*base, "--members", str(tmp_path / "train.npz")]) == 1
    out = capsys.readouterr()
    assert "from the cache" in out.err and "TPR @ 1% FPR" in out.out
    np.savez(tmp_path / "train2.npz", X=noisy.x_train[:300], y=noisy.y_train[:300])
    assert main([*base, "--members", str(tmp_path / "train2.npz")]) == 1
    assert "from the cache" not in capsys.readouterr().err
    # no members: the test is not run, a failure, never a pass
    assert main([*base, "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert any("pass --members" in f["title"] for f in doc["findings"])
    report = tmp_path / "report.html"
    assert main([*base, "--members", str(tmp_path / "train.npz"), "--format", "html",
                 "--output", str(report), "--non-members", str(tmp_path / "test.npz")]) == 1
    html = report.read_text()
    assert "Membership inference" in html and "data:image/png;base64" in html


def test_lira_scores_are_bounded_for_exact_probabilities() -> None:
    """A forest's exact 0s and 1s give ±6.9 (0.001 floors), not ±708 that swamp the shadows."""
    from bastion.assess.membership import logit_confidence

    p = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.9, 0.1]])
    got = logit_confidence(p, np.array([0, 0, 0, 0]))
    bound = np.log(0.999) - np.log(0.001)
    np.testing.assert_allclose(got, [np.log(1 / 0.001), np.log(0.001 / 1), 0.0,
                                     np.log(0.9 / 0.1)])
    assert np.abs(got).max() < bound + 0.01


def test_a_small_training_set_meets_enough_non_members_for_the_lowest_fpr(
        overfit: MLPClassifier, noisy: Noisy) -> None:
    """Each side is drawn on its own: 400 members against 800 non-members, not 400 of each
    (the ROC needs no balance), so the 1 % rate is read over 800 non-members."""
    spec = policy({"membership": {"attacks": ["threshold"], "samples": 1000}}).membership
    result = run_membership(spec, as_predictor(overfit), (noisy.x_train, noisy.y_train),
                            (noisy.x_test, noisy.y_test), n_classes=3, seed=0)
    [found] = result.figures()
    assert (result.members, result.non_members) == (400, 800)
    assert (found.members, found.non_members) == (400, 800)
    probabilities = overfit.predict_proba(np.r_[noisy.x_train, noisy.x_test])
    truth = np.r_[np.ones(400), np.zeros(800)]
    scores = np.log(probabilities[np.arange(1200), np.r_[noisy.y_train, noisy.y_test]])
    from sklearn.metrics import roc_auc_score

    assert found.auc == pytest.approx(roc_auc_score(truth, scores), abs=1e-6)
