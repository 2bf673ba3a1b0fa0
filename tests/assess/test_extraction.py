"""Model extraction on a real scikit-learn model trained here: the stolen copy's agreement grows
with the query budget, label-only answers teach it no more than probabilities, the
recommendation follows thresholds whose answer is known, the figures are deterministic; policy
errors, requirements, the cache key and the command end to end."""

from __future__ import annotations

import dataclasses
import json
import pickle
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import yaml
from sklearn.datasets import make_classification
from sklearn.neural_network import MLPClassifier
from tests.assess.conftest import policy

from bastion import atlas
from bastion.assess import PolicyError, assess
from bastion.assess.cache import cache_key
from bastion.assess.extraction import run_extraction, serve, soft_targets, threshold_for
from bastion.assess.interface import ExtractionResult, OutputMode
from bastion.assess.policy import Policy
from bastion.assess.runner import Assessment
from bastion.cli.app import main
from bastion.findings import Principle, Severity
from bastion.models import as_predictor

BUDGETS = [50, 200, 800]
OUTPUTS = ["probabilities", "rounded2", "top1", "label"]


class Data(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@pytest.fixture(scope="module")
def data() -> Data:
    """Four classes in two clusters each: 50 queries are not enough to copy the boundary, 800
    mostly are."""
    x, y = make_classification(n_samples=2400, n_features=20, n_informative=10, n_classes=4,
                               n_clusters_per_class=2, random_state=0)
    x = x.astype(np.float32)
    return Data(x[:1200], y[:1200], x[1200:], y[1200:])


@pytest.fixture(scope="module")
def target(data: Data) -> MLPClassifier:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        return MLPClassifier((64,), max_iter=300, random_state=0).fit(data.x_train,
                                                                      data.y_train)


def _policy(requirements: list[dict[str, Any]] | None = None, **extra: Any) -> Policy:
    return policy({"extraction": {"budgets": BUDGETS, "outputs": OUTPUTS, "samples": 300,
                                  **extra}}, requirements)


def _run(model: Any, data: Data, threshold: float = 0.8, **extra: Any) -> ExtractionResult:
    spec = _policy(**extra).extraction
    assert spec is not None
    return run_extraction(spec, as_predictor(model), data.x_test, data.y_test, seed=0,
                          threshold=threshold)


@pytest.fixture(scope="module")
def stolen(target: MLPClassifier, data: Data) -> ExtractionResult:
    return _run(target, data)


def _agreement(result: ExtractionResult, budget: int, output: str) -> float:
    cell = result.cell(budget, OutputMode(output))
    assert cell is not None
    return cell.agreement


def test_agreement_grows_with_the_query_budget(stolen: ExtractionResult) -> None:
    assert stolen.complete and len(stolen.cells) == len(BUDGETS) * len(OUTPUTS)
    assert stolen.evaluated == 300 and stolen.pool == 900  # half of --data at most held out
    assert stolen.target_accuracy > 0.75
    for output in OUTPUTS:
        assert _agreement(stolen, 800, output) > _agreement(stolen, 50, output) + 0.2, output
    assert _agreement(stolen, 800, "probabilities") > 0.85
    assert all(0 <= c.accuracy <= 1 and c.queries == c.budget == c.distinct
               for c in stolen.cells)


def test_label_only_teaches_no_more_than_probabilities(stolen: ExtractionResult) -> None:
    # the label-only surrogate is exactly the probabilities' hard variant (same queries, same
    # top labels, same seed); the soft variant can only add, so this holds at every budget
    for budget in BUDGETS:
        label = stolen.cell(budget, OutputMode.LABEL)
        full = stolen.cell(budget, OutputMode.PROBABILITIES)
        assert label is not None and full is not None
        assert label.training == "hard" and set(label.variants) == {"hard"}
        assert label.agreement == full.variants["hard"]["agreement"]
        assert label.agreement <= full.agreement
    # and with enough queries the soft labels are worth something on this model
    assert _agreement(stolen, 800, "probabilities") > _agreement(stolen, 800, "label") + 0.03


def test_the_served_answers_and_the_soft_targets() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.333, 0.333, 0.334]])
    assert serve(p, OutputMode.ROUNDED2).tolist() == [[0.7, 0.2, 0.1], [0.33, 0.33, 0.33]]
    assert serve(p, OutputMode.TOP1).tolist() == [[0.7, 0, 0], [0, 0, 0.334]]
    assert serve(p, OutputMode.LABEL).tolist() == [[1, 0, 0], [0, 0, 1]]
    five = np.array([[0.1, 0.4, 0.05, 0.3, 0.15]])
    assert serve(five, OutputMode.TOP3).tolist() == [[0, 0.4, 0, 0.3, 0.15]]
    assert serve(p, OutputMode.TOP3).tolist() == p.tolist()  # three classes: all kept
    soft = soft_targets(serve(p, OutputMode.TOP1))  # the withheld mass shared equally
    assert soft[0] == pytest.approx([0.7, 0.15, 0.15])
    assert soft_targets(np.zeros((1, 4)))[0] == pytest.approx([0.25] * 4)


def test_the_recommendation_follows_the_threshold(stolen: ExtractionResult) -> None:
    # thresholds whose answer is known whatever the figures: every agreement is ≤ 1.01, and
    # none is 0 (every copy agrees with the model somewhere)
    lenient = dataclasses.replace(stolen, threshold=1.01).recommendation
    assert lenient.per_output == {OutputMode(m): 800 for m in OUTPUTS}
    assert lenient.fidelity is OutputMode.PROBABILITIES  # the richest
    strict = dataclasses.replace(stolen, threshold=0.0).recommendation
    assert strict.per_output == {OutputMode(m): None for m in OUTPUTS}
    assert strict.fidelity is None
    doc = stolen.to_dict()["recommendation"]
    assert doc["threshold"] == 0.8 and set(doc["per_output"]) == set(OUTPUTS)
    assert all(set(v) == {"max_queries"} for v in doc["per_output"].values())


def test_the_figures_are_the_same_for_a_seed(target: MLPClassifier, data: Data,
                                             stolen: ExtractionResult) -> None:
    # a smaller policy asks for the same first queries (the seed orders the pool, and each
    # budget's queries are the first of the largest), so its cells are the same figures
    again = _run(target, data, budgets=[50, 200], outputs=["probabilities", "label"])
    assert len(again.cells) == 4
    for cell in again.cells:
        same = stolen.cell(cell.budget, cell.output)
        assert same is not None and cell.to_dict() == same.to_dict()
    back = ExtractionResult.from_dict(json.loads(json.dumps(stolen.to_dict())))
    assert back.to_dict() | {"seconds": 0} == stolen.to_dict() | {"seconds": 0}


def test_a_budget_beyond_the_pool_is_filled_with_noisy_copies(target: MLPClassifier,
                                                              data: Data) -> None:
    spec = policy({"extraction": {"budgets": [100, 2000], "outputs": ["label"],
                                  "surrogate": "logistic", "samples": 100}}).extraction
    assert spec is not None
    small = data.x_test[:400], data.y_test[:400]
    result = run_extraction(spec, as_predictor(target), *small, seed=0, threshold=0.8)
    cells = {c.budget: c for c in result.cells}
    assert result.pool == 300 and cells[2000].queries == 2000 and cells[2000].distinct == 300
    assert cells[100].distinct == 100


def test_requirements_pass_fail_and_cite_3_3(target: MLPClassifier, data: Data) -> None:
    chosen = policy({"extraction": {"budgets": [50, 800], "outputs": ["probabilities",
                                                                      "label"],
                                    "samples": 300}}, [
        {"test": "extraction", "metric": "agreement", "budget": 50, "output": "label",
         "max": 0.99},
        {"test": "extraction", "metric": "agreement", "budget": 800,
         "output": "probabilities", "max": 0.5, "severity": "medium"},
        {"test": "extraction", "metric": "surrogate_accuracy", "max": 0.99}])
    assert threshold_for(chosen) == (0.5, "requirement")
    done = assess(as_predictor(target), data.x_test, data.y_test, chosen)
    summary, lenient, strict, accuracy = done.findings
    assert summary.rule == "assess.extraction.summary" and summary.principle is Principle.P3_3
    assert summary.evidence["recommendation"]["threshold"] == 0.5
    assert lenient.severity is Severity.INFO and lenient.title.startswith("passed")
    assert strict.severity is Severity.MEDIUM and "above the allowed 0.5" in strict.detail
    assert strict.evidence["measured_by"] == "800 queries, probabilities"
    assert strict.principle is Principle.P3_3
    assert strict.techniques == (atlas.EXTRACT_MODEL, atlas.CREATE_PROXY_MODEL)
    assert "quota" in strict.remediation and "monitor" in strict.remediation
    assert accuracy.severity is Severity.INFO and "queries" in str(
        accuracy.evidence["measured_by"])
    back = Assessment.from_dict(json.loads(json.dumps(done.to_dict())), chosen)
    assert back.results[0].to_dict() == done.results[0].to_dict()
    assert back.extraction_data == {"thief_sha256": None}


def test_out_of_time_is_incomplete_and_fails_closed(target: MLPClassifier,
                                                     data: Data) -> None:
    ticks = iter(range(0, 10_000, 100))
    chosen = _policy([{"test": "extraction", "metric": "agreement", "max": 1.0}],
                     max_seconds=1)
    done = assess(as_predictor(target), data.x_test, data.y_test, chosen,
                  clock=lambda: float(next(ticks)))
    (result,) = done.results
    assert isinstance(result, ExtractionResult) and not result.complete
    assert len(result.cells) == 1
    rules = {f.rule: f for f in done.findings}
    assert rules["assess.test.incomplete"].severity is Severity.HIGH
    assert rules["assess.extraction.agreement"].severity is Severity.HIGH
    assert "time limit" in rules["assess.extraction.agreement"].detail


@pytest.mark.parametrize(("tests", "requirement", "named", "hint"), [
    ({"extraction": {"budgts": [10]}}, None, "tests.extraction.budgts", "budgets"),
    ({"extraction": {"outputs": ["top5"]}}, None, "tests.extraction.outputs[0]", "label"),
    ({"extraction": {"budgets": [100, 10]}}, None, "tests.extraction.budgets", "[10, 100]"),
    ({"extraction": {}}, {"test": "extraction", "metric": "agreement", "min": 0.5},
     "requirements[0]", "max"),
    ({"extraction": {"budgets": [100]}}, {"test": "extraction", "metric": "agreement",
                                          "budget": 1000, "max": 0.5},
     "requirements[0].budget", "100"),
    ({"extraction": {"outputs": ["label"]}}, {"test": "extraction", "metric": "agreement",
                                              "output": "probabilities", "max": 0.5},
     "requirements[0].output", "label"),
    ({"extraction": {}}, {"test": "extraction", "metric": "auc", "max": 0.5},
     "requirements[0]", "agreement"),
    ({"fgsm": {"eps": [0.1]}}, {"test": "fgsm", "metric": "agreement", "max": 0.5},
     "requirements[0]", "extraction"),
    ({"fgsm": {"eps": [0.1]}}, {"test": "fgsm", "metric": "robust_accuracy", "eps": 0.1,
                                "budget": 100, "min": 0.5}, "requirements[0].budget", "remove"),
])
def test_policy_errors_name_the_field(tests: dict[str, Any], requirement: dict[str, Any] | None,
                                      named: str, hint: str) -> None:
    with pytest.raises(PolicyError) as caught:
        Policy.from_mapping({"version": 1, "tests": tests,
                             "requirements": [requirement] if requirement else []},
                            source="p.yaml")
    assert named in caught.value.message and hint in (caught.value.hint or "")


def test_the_high_preset_runs_it_and_medium_does_not() -> None:
    high = Policy.preset("high")
    assert high.extraction is not None and high.extraction.budgets == (100, 1000, 10000)
    assert [m.value for m in high.extraction.outputs] == OUTPUTS
    assert any(r.metric.value == "agreement" for r in high.requirements)
    assert Policy.preset("medium").extraction is None


def test_the_cache_key_holds_the_thief_data(data: Data) -> None:
    chosen = _policy()
    keys = [cache_key(model_sha256="ab" * 32, x=data.x_test, labels=data.y_test,
                      policy=chosen, libraries={}, thief=thief)
            for thief in (None, data.x_train, data.x_train[1:])]
    assert len({k.digest for k in keys}) == 3
    assert keys[0].parts["thief_sha256"] is None and keys[1].parts["thief_sha256"]


def test_the_command_runs_extraction_end_to_end(
        tmp_path: Path, target: MLPClassifier, data: Data,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(target))
    np.savez(tmp_path / "test.npz", X=data.x_test[:600], y=data.y_test[:600])
    np.savez(tmp_path / "thief.npz", X=data.x_train[:500], y=data.y_train[:500])
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({
        "version": 1, "tests": {"extraction": {"budgets": [50, 200], "outputs":
                                               ["probabilities", "label"], "samples": 200,
                                               "surrogate": "logistic"}},
        "requirements": [{"test": "extraction", "metric": "agreement", "budget": 200,
                          "max": 0.3}]}))
    base = ["assess", "run", str(tmp_path / "model.pkl"), "--data", str(tmp_path / "test.npz"),
            "--policy", str(tmp_path / "p.yaml")]
    assert main([*base, "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    (test,) = doc["summary"]["tests"]
    assert test["attack"] == "extraction" and test["evaluated"] == 200 and test["pool"] == 400
    assert set(test["recommendation"]["per_output"]) == {"probabilities", "label"}
    (failed,) = [f for f in doc["findings"] if f["rule"] == "assess.extraction.agreement"]
    assert failed["severity"] == "high" and failed["principle"] == "3.3"
    assert doc["summary"]["extraction_data"] == {"thief_sha256": None}
    # the same again is read from the cache; a thief set is another assessment
    assert main(base) == 1
    out = capsys.readouterr()
    assert "from the cache" in out.err and "max queries" in out.out and "recommendation" in out.out
    assert main([*base, "--thief", str(tmp_path / "thief.npz"), "--format", "json"]) == 1
    captured = capsys.readouterr()
    assert "from the cache" not in captured.err
    doc = json.loads(captured.out)
    assert doc["summary"]["tests"][0]["pool"] == 500
    assert doc["summary"]["tests"][0]["parameters"]["thief"] == "given"
    assert doc["summary"]["extraction_data"]["thief_sha256"]
    report = tmp_path / "report.html"
    assert main([*base, "--format", "html", "--output", str(report)]) == 1
    html = report.read_text()
    assert "Model extraction" in html and "data:image/png;base64" in html
