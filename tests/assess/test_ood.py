"""Out-of-distribution detection on real models trained here: held-out classes and noise score
above in-distribution data, each score is what its paper defines (checked by hand), the figures
follow their definitions, a detector that cannot apply says so and fails its requirement, and the
saved detector round-trips (file, cache, catalog) and is refused when changed."""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from tests.assess.conftest import Digits, cnn, policy, train

from bastion.assess import PolicyError, assess
from bastion.assess.interface import AssessError, OodResult, OodScore, OodShift
from bastion.assess.ood import OodDetector, figures, load_detector, run_ood, shifted
from bastion.cli.app import main
from bastion.errors import BastionError
from bastion.findings import Principle, Severity
from bastion.models import CapabilityError, as_predictor

ALL = ["msp", "energy", "mahalanobis", "knn"]


@pytest.fixture(scope="module")
def half_digits() -> tuple[Digits, torch.nn.Module]:
    """A CNN trained on digits 0–4 only: 5–9 are classes it has never seen."""
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = data.target.astype(np.int64)
    known = y < 5
    xk, yk = x[known], y[known]
    split = len(xk) * 2 // 3
    net = train(torch.nn.Sequential(*list(cnn())[:-1], torch.nn.Linear(32, 5)),
                xk[:split], yk[:split])
    return Digits(xk[:split], yk[:split], xk[split:], yk[split:]), net.eval()


@pytest.fixture(scope="module")
def unseen() -> np.ndarray:
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    return x[data.target >= 5][:300]


@pytest.fixture(scope="module")
def measured(half_digits: tuple[Digits, torch.nn.Module], unseen: np.ndarray) -> OodResult:
    digits, net = half_digits
    done = assess(as_predictor(net), digits.x_test, digits.y_test,
                  policy({"ood": {"detectors": ALL}}),
                  members=(digits.x_train, digits.y_train), ood=unseen, model_sha256="a" * 64)
    [result] = done.results
    assert isinstance(result, OodResult)
    return result


def test_unseen_classes_and_noise_score_above_known_ones(
        measured: OodResult, half_digits: tuple[Digits, torch.nn.Module]) -> None:
    given = {f.detector.value: f.auroc for f in measured.figures if f.shift is OodShift.GIVEN}
    noise = {f.detector.value: f.auroc for f in measured.figures if f.shift is OodShift.NOISE}
    assert set(given) == set(ALL) and not measured.skipped
    assert all(v is not None and v > 0.75 for v in given.values()), given
    assert all(v is not None and v > 0.8 for v in noise.values()), noise
    digits, _ = half_digits
    assert (measured.fitted_on, measured.evaluated) == (len(digits.y_train), len(digits.y_test))
    assert measured.features == {"msp": "probabilities", "energy": "logits",
                                 "mahalanobis": "penultimate", "knn": "penultimate"}


def test_the_chosen_detector_is_the_best_mean_auroc_and_flags_at_its_threshold(
        measured: OodResult, half_digits: tuple[Digits, torch.nn.Module],
        unseen: np.ndarray) -> None:
    shared = {OodShift.GIVEN, OodShift.NOISE, OodShift.BLUR, OodShift.CONTRAST}
    means = {k: np.mean([f.auroc for f in measured.of(k) if f.shift in shared]) for k in
             OodScore}
    assert measured.chosen is max(means, key=lambda k: means[k])
    digits, net = half_digits
    detector = measured.detector
    assert detector.kind is measured.chosen and detector.threshold == measured.threshold
    assert detector.settings["model_sha256"] == "a" * 64
    predictor = as_predictor(net)
    # 95 % of the in-distribution rows it was calibrated on pass; most unseen digits do not
    assert np.mean(detector.flags(predictor, digits.x_test)) <= 0.05 + 1e-9
    assert np.mean(detector.flags(predictor, unseen)) > 0.5


def test_each_score_is_its_papers_definition(half_digits: tuple[Digits, torch.nn.Module],
                                            ) -> None:
    digits, net = half_digits
    predictor = as_predictor(net)
    x, y = digits.x_train[:200], digits.y_train[:200]
    probe = digits.x_test[:7]
    with torch.no_grad():
        logits = net(torch.from_numpy(probe)).double()
        features = torch.nn.Sequential(*list(net)[:-1])(torch.from_numpy(probe)).double().numpy()
        bank = torch.nn.Sequential(*list(net)[:-1])(torch.from_numpy(x)).double().numpy()
    msp = OodDetector.fit(OodScore.MSP, predictor, x, y).score(predictor, probe)
    assert np.allclose(msp, -torch.softmax(logits, 1).max(1).values.numpy())
    energy = OodDetector.fit(OodScore.ENERGY, predictor, x, y).score(predictor, probe)
    assert np.allclose(energy, -torch.logsumexp(logits, 1).numpy())
    knn = OodDetector.fit(OodScore.KNN, predictor, x, y)
    k = knn.settings["k"]
    unit = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    query = features / np.linalg.norm(features, axis=1, keepdims=True)
    by_hand = np.sort(np.linalg.norm(query[:, None] - unit[None], axis=2), axis=1)[:, k - 1]
    assert np.allclose(knn.score(predictor, probe), by_hand)
    maha = OodDetector.fit(OodScore.MAHALANOBIS, predictor, x, y)
    means, precision = maha.arrays["means"], maha.arrays["precision"]
    assert np.allclose(means, [bank[y == c].mean(axis=0) for c in range(5)])
    d = features[:, None] - means[None]
    assert np.allclose(maha.score(predictor, probe),
                       np.einsum("nci,ij,ncj->nc", d, precision, d).min(axis=1))
    assert np.all(np.linalg.eigvalsh(precision) > 0)  # a true distance: positive definite


def test_the_figures_follow_their_definitions() -> None:
    inside = np.arange(100, dtype=float)  # 0 … 94 are 95 % of them: the threshold is 94
    outside = np.array([10.0, 94.0, 95.0, 96.0, 200.0])
    f = figures(OodScore.MSP, OodShift.NOISE, inside, outside)
    assert f.fpr_at_95_tpr == pytest.approx(2 / 5)  # 10 and 94 are let through
    twenty = figures(OodScore.MSP, OodShift.NOISE, np.arange(20.0), np.array([18.0, 19.0]))
    assert twenty.fpr_at_95_tpr == pytest.approx(1 / 2)  # 19 of 20 pass at 18: 19 is caught
    wins = sum((o > inside).sum() + 0.5 * (o == inside).sum() for o in outside)
    assert f.auroc == pytest.approx(wins / (100 * 5))
    assert sum(f.histogram["in"]) == 100 and sum(f.histogram["out"]) == 5
    perfect = figures(OodScore.MSP, OodShift.NOISE, inside, inside + 1000)
    assert (perfect.auroc, perfect.fpr_at_95_tpr) == (1.0, 0.0)


def test_the_shifts() -> None:
    nchw = np.zeros((2, 1, 5, 5), np.float32)
    nchw[:, 0, 2, 2] = 1.0
    blurred = shifted(OodShift.BLUR, nchw, (0.0, 1.0), 0)
    assert isinstance(blurred, np.ndarray)
    assert 0 < blurred[0, 0, 2, 2] < 1 and blurred[0, 0, 2, 1] > 0  # spread over H and W
    nhwc = np.zeros((2, 5, 5, 3), np.float32)
    nhwc[:, 2, 2, 0] = 1.0
    spread = shifted(OodShift.BLUR, nhwc, (0.0, 1.0), 0)
    assert isinstance(spread, np.ndarray)
    assert spread[0, 2, 1, 0] > 0 and spread[0, 2, 2, 1] == 0  # not across channels
    low = shifted(OodShift.CONTRAST, nchw, (0.0, 1.0), 0)
    assert isinstance(low, np.ndarray) and np.ptp(low[0]) == pytest.approx(0.3 * np.ptp(nchw[0]))
    noise = shifted(OodShift.NOISE, nchw, (-1.0, 1.0), 3)
    assert isinstance(noise, np.ndarray) and noise.min() >= -1 and noise.max() <= 1
    assert np.array_equal(noise, shifted(OodShift.NOISE, nchw, (-1.0, 1.0), 3))
    assert shifted(OodShift.BLUR, np.zeros((3, 4), np.float32), (0.0, 1.0), 0) == (
        "the inputs are rows, not images")


def test_rows_and_a_model_without_layers(digits_mlp: MLPClassifier, digits: Digits) -> None:
    """A scikit-learn MLP on flat rows: its hidden layer is read, blur does not apply; a
    logistic regression has no layers (the inputs are read) and no logits (energy skipped)."""
    x, y = digits.x_test.reshape(len(digits.x_test), -1), digits.y_test
    members = (digits.x_train.reshape(len(digits.x_train), -1), digits.y_train)
    done = assess(as_predictor(digits_mlp), x, y, policy({"ood": {"detectors": ALL}}),
                  members=members)
    [result] = done.results
    assert isinstance(result, OodResult)
    assert result.features["mahalanobis"] == "penultimate"
    blur = [f for f in result.figures if f.shift is OodShift.BLUR]
    assert blur and all(f.auroc is None and f.note == "the inputs are rows, not images"
                        for f in blur)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flat = LogisticRegression(max_iter=200).fit(*members)
    done = assess(as_predictor(flat), x, y, policy(
        {"ood": {"detectors": ALL}},
        [{"test": "ood", "metric": "auroc", "detector": "energy", "min": 0.5},
         {"test": "ood", "metric": "auroc", "shift": "noise", "min": 0.9}]), members=members)
    [result] = done.results
    assert isinstance(result, OodResult)
    assert "logits" in result.skipped["energy"] and result.features["knn"] == "inputs"
    by_rule = {f.title: f for f in done.findings}
    energy = next(f for t, f in by_rule.items() if "(energy)" in t)
    assert energy.severity is Severity.HIGH and "could not be fitted" in energy.detail
    noise = next(f for t, f in by_rule.items() if "on noise" in t)
    assert noise.severity is Severity.INFO and noise.principle is Principle.P2_6
    assert any(f.rule == "assess.ood.not_fitted" for f in done.findings)


def test_a_softmax_network_has_no_logits(digits: Digits) -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10),
                              torch.nn.Softmax(dim=1))
    predictor = as_predictor(net)
    with pytest.raises(CapabilityError, match="not logits"):
        OodDetector.fit(OodScore.ENERGY, predictor, digits.x_test[:20], digits.y_test[:20])


def test_requirements_read_the_worst_shift_and_fail_closed(
        half_digits: tuple[Digits, torch.nn.Module], unseen: np.ndarray) -> None:
    digits, net = half_digits
    reqs = [{"test": "ood", "metric": "auroc", "min": 0.0},
            {"test": "ood", "metric": "auroc", "min": 0.9999, "severity": "medium"},
            {"test": "ood", "metric": "fpr_at_95_tpr", "detector": "knn", "shift": "noise",
             "max": 1.0},
            {"test": "ood", "metric": "auroc", "shift": "given", "min": 0.5}]
    done = assess(as_predictor(net), digits.x_test, digits.y_test,
                  policy({"ood": {"detectors": ["msp", "knn"]}}, reqs),
                  members=(digits.x_train, digits.y_train))
    result = done.results[0]
    assert isinstance(result, OodResult) and result.chosen is not None
    worst = min(f.auroc for f in result.of(result.chosen) if f.auroc is not None)
    verdicts = [f for f in done.findings if f.rule.startswith("assess.ood.")
                and f.rule != "assess.ood.summary"]
    assert [f.severity for f in verdicts] == [Severity.INFO, Severity.MEDIUM, Severity.INFO,
                                              Severity.HIGH]
    assert verdicts[1].evidence["measured"] == pytest.approx(worst)
    assert "the --ood set was not given" in verdicts[3].detail


@pytest.mark.parametrize(("tests", "requirement", "message"), [
    ({"ood": {"detectors": ["msp", "msp"]}}, None, "names one twice"),
    ({"ood": {"detectors": ["msp"], "choose": "knn"}}, None, "does not fit"),
    ({"ood": {"detectors": ["odin"]}}, None, "not one of the choices"),
    ({"ood": {}}, {"test": "ood", "metric": "auroc", "max": 0.9}, "give min"),
    ({"ood": {}}, {"test": "ood", "metric": "fpr_at_95_tpr", "min": 0.1}, "give max"),
    ({"ood": {"shifts": ["noise"]}},
     {"test": "ood", "metric": "auroc", "shift": "blur", "min": 0.5}, "does not generate"),
    ({"ood": {"detectors": ["msp"]}},
     {"test": "ood", "metric": "auroc", "detector": "knn", "min": 0.5}, "does not fit"),
    ({"fgsm": {"eps": [0.1]}}, {"test": "fgsm", "metric": "auroc", "min": 0.5},
     "measured by the ood test only"),
    ({"ood": {}}, {"test": "ood", "metric": "auroc", "eps": 0.1, "min": 0.5},
     "means nothing"),
])
def test_policy_errors_name_the_field(tests: dict[str, Any], requirement: dict[str, Any] | None,
                                      message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy(tests, [requirement] if requirement else None)
    assert message in f"{caught.value.message} {caught.value.hint}"


def test_too_few_rows_is_a_failed_test(half_digits: tuple[Digits, torch.nn.Module]) -> None:
    digits, net = half_digits
    done = assess(as_predictor(net), digits.x_test[:12], digits.y_test[:12],
                  policy({"ood": {}}))
    assert done.results[0].to_dict()["skipped"] is True
    assert any(f.rule == "assess.test.not_run" and f.severity is Severity.HIGH
               for f in done.findings)


def test_out_of_time_stops_between_detectors(half_digits: tuple[Digits, torch.nn.Module],
                                             ) -> None:
    digits, net = half_digits
    ticks = iter(range(0, 10_000, 100))
    spec = policy({"ood": {"detectors": ALL, "max_seconds": 150}}).ood
    result = run_ood(spec, as_predictor(net), fit=(digits.x_train, digits.y_train),
                     evaluation=(digits.x_test, digits.y_test), clip=(0.0, 1.0), seed=0,
                     clock=lambda: float(next(ticks)))
    assert not result.complete
    assert 0 < len({f.detector for f in result.figures}) < 4


# ----------------------------------------------------------------------------- the artefact


def test_the_saved_detector_reads_back_and_refuses_changes(
        measured: OodResult, half_digits: tuple[Digits, torch.nn.Module], tmp_path: Path,
) -> None:
    digits, net = half_digits
    predictor = as_predictor(net)
    path = tmp_path / "detector.npz"
    measured.detector.save(path)
    back = load_detector(path, model_sha256="a" * 64)
    assert back.kind is measured.detector.kind and back.threshold == measured.threshold
    assert np.array_equal(back.score(predictor, digits.x_test),
                          measured.detector.score(predictor, digits.x_test))
    with pytest.raises(AssessError, match="fitted for another model"):
        load_detector(path, model_sha256="b" * 64)
    for junk in (b"", b"PK\x03\x04 not a zip", path.read_bytes()[:200]):
        (tmp_path / "junk.npz").write_bytes(junk)
        with pytest.raises(AssessError, match="not a whole OoD detector"):
            load_detector(tmp_path / "junk.npz")
    pickled = io.BytesIO()
    np.savez(pickled, header=np.array([{"format": "bastion-ood/1"}], dtype=object))
    (tmp_path / "pickled.npz").write_bytes(pickled.getvalue())
    with pytest.raises(AssessError, match="not a whole OoD detector"):
        load_detector(tmp_path / "pickled.npz")  # object arrays are never unpickled
    with pytest.raises(AssessError, match="cannot read"):
        load_detector(tmp_path / "missing.npz")


def test_a_knn_detector_refuses_a_tampered_bank(half_digits: tuple[Digits, torch.nn.Module],
                                                tmp_path: Path) -> None:
    digits, net = half_digits
    knn = OodDetector.fit(OodScore.KNN, as_predictor(net), digits.x_train, digits.y_train)
    path = tmp_path / "knn.npz"
    knn.with_settings(threshold=1.0).save(path)
    with np.load(path) as archive:
        parts = {k: archive[k] for k in archive.files}
    parts["array_bank"][0, 0] += 0.5
    np.savez(path, **parts)
    with pytest.raises(AssessError, match="do not match the digest"):
        load_detector(path)


# ---------------------------------------------------------------------- the command, catalog


@pytest.fixture
def ood_files(tmp_path: Path, half_digits: tuple[Digits, torch.nn.Module],
              unseen: np.ndarray) -> dict[str, Path]:
    digits, net = half_digits
    torch.save(net, tmp_path / "cnn.pt")
    np.savez(tmp_path / "test.npz", X=digits.x_test, y=digits.y_test)
    np.savez(tmp_path / "train.npz", X=digits.x_train, y=digits.y_train)
    np.save(tmp_path / "unseen.npy", unseen)
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump({
        "version": 1, "tests": {"ood": {"detectors": ["msp", "mahalanobis", "knn"]}},
        "requirements": [{"test": "ood", "metric": "auroc", "shift": "given", "min": 0.7}]}))
    (tmp_path / "evasion.yaml").write_text(yaml.safe_dump({
        "version": 1, "tests": {"fgsm": {"eps": [0.0]}}}))
    return {"model": tmp_path / "cnn.pt", "data": tmp_path / "test.npz",
            "train": tmp_path / "train.npz", "ood": tmp_path / "unseen.npy",
            "policy": tmp_path / "policy.yaml", "evasion": tmp_path / "evasion.yaml"}


def test_the_command_saves_the_detector_and_a_cache_hit_keeps_it(
        ood_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        half_digits: tuple[Digits, torch.nn.Module]) -> None:
    base = ["assess", "run", str(ood_files["model"]), "--data", str(ood_files["data"]),
            "--members", str(ood_files["train"]), "--ood", str(ood_files["ood"]),
            "--policy", str(ood_files["policy"])]
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    assert main([*base, "--save-ood", str(first)]) == 0
    out = capsys.readouterr()
    assert "OoD detection" in out.out and "wrote the OoD detector" in out.err
    assert main([*base, "--save-ood", str(second), "--format", "json"]) == 0
    out = capsys.readouterr()
    assert "figures from the cache" in out.err
    assert second.read_bytes() == first.read_bytes()
    digest = hashlib.sha256(ood_files["model"].read_bytes()).hexdigest()
    assert load_detector(second, model_sha256=digest).threshold is not None
    doc = json.loads(out.out)["summary"]
    assert doc["ood_data"]["fitted_on"] == "members"
    report = tmp_path / "report.html"
    assert main([*base, "--format", "html", "--output", str(report)]) == 0
    assert "Out-of-distribution detection" in report.read_text()
    # --ood without an ood test in the policy: a usage error, nothing run
    assert main(["assess", "run", str(ood_files["model"]), "--data", str(ood_files["data"]),
                 "--policy", str(ood_files["evasion"]), "--save-ood", str(first)]) == 2
    assert "which it does not run" in capsys.readouterr().err


def test_a_registered_models_detector_is_registered_and_verified(
        ood_files: dict[str, Path], workspace: object, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        half_digits: tuple[Digits, torch.nn.Module]) -> None:
    from bastion.catalog.service import Catalog
    from bastion.store.workspace import Workspace

    assert isinstance(workspace, Workspace)
    monkeypatch.setenv("BASTION_HOME", str(workspace.settings.home))
    assert main(["model", "add", "cnn", str(ood_files["model"])]) == 0
    run = ["assess", "run", "cnn@1", "--data", str(ood_files["data"]), "--members",
           str(ood_files["train"]), "--ood", str(ood_files["ood"]), "--policy",
           str(ood_files["policy"])]
    assert main(run) == 0
    assert "registered the OoD detector as cnn-ood@1 (derived from cnn@1)" in (
        capsys.readouterr().err)
    assert main(run) == 0  # the same detector again: not a second version
    assert "OoD detector unchanged: cnn-ood@1" in capsys.readouterr().err
    registry = Catalog(workspace)
    shown = registry.show("cnn-ood@1")
    assert ("derived_from", "cnn@1") in [tuple(p) for p in shown.lineage]
    assert "bastion:ood-detector" in shown.card["tags"]
    manifest = registry.get("cnn-ood@1", tmp_path / "got")
    [entry] = manifest.files
    digest = hashlib.sha256(ood_files["model"].read_bytes()).hexdigest()
    detector = load_detector(tmp_path / "got" / entry.path, model_sha256=digest)
    digits, net = half_digits
    assert np.mean(detector.flags(as_predictor(net), digits.x_test)) <= 0.05 + 1e-9
    # a changed byte at rest: the catalog refuses to hand it out
    blobs = sorted(registry.store.root.glob("*/??/*"), key=lambda p: p.stat().st_mtime)
    raw = bytearray(blobs[-1].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    blobs[-1].write_bytes(bytes(raw))
    with pytest.raises(BastionError) as refused:
        registry.get("cnn-ood@1", tmp_path / "again")
    assert not (tmp_path / "again" / entry.path).exists()
    assert "fails authentication" in refused.value.message


def test_replace_keeps_the_detector_out_of_the_record(measured: OodResult) -> None:
    """The fitted state is an artefact, never part of the figures a record or cache holds."""
    data = measured.to_dict()
    assert "detector" not in data and json.dumps(data)
    back = OodResult.from_dict(json.loads(json.dumps(data)))
    assert back.detector is None and back.figures == measured.figures
    with pytest.raises(ValueError, match="not an OoD result"):
        OodResult.from_dict({**data, "attack": "extraction"})
