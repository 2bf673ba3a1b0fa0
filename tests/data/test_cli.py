"""``bastion data …`` through ``main([...])``: exit codes, outputs and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits

from bastion.cli.app import main


def _csv(path: Path, n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.standard_normal((n, 4)), columns=list("abcd"))
    frame["label"] = rng.choice(["cat", "dog"], n)
    frame.to_csv(path, index=False)
    return frame


def test_profile_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _csv(tmp_path / "d.csv")
    assert main(["data", "profile", str(tmp_path / "d.csv"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["rows"] == 200 and doc["features"] == 4
    assert sum(doc["label_counts"].values()) == 200


def test_check_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = _csv(tmp_path / "d.csv")
    assert main(["data", "check", str(tmp_path / "d.csv")]) == 0
    frame.loc[5, list("abcd")] = frame.loc[1, list("abcd")]
    frame.loc[1, "label"], frame.loc[5, "label"] = "cat", "dog"
    frame.to_csv(tmp_path / "d.csv", index=False)
    capsys.readouterr()
    code = main(["data", "check", str(tmp_path / "d.csv"), "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    rules = {f["rule"] for f in doc["findings"]}
    assert {"data.consistency.label_conflict", "data.duplicates.exact"} <= rules
    assert main(["data", "check", str(tmp_path / "d.csv"), "--fail-on", "critical"]) == 0


def test_bad_input_is_exit_2_with_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r.csv").write_text("a,b,label\n1,2,x\n3\n")
    assert main(["data", "check", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "hint:" in err and "Traceback" not in err
    assert main(["data", "check", str(tmp_path / "d.csv"), "--format", "html"]) == 2


def test_leakage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = _csv(tmp_path / "train.csv", seed=1)
    test = _csv(tmp_path / "test.csv", n=50, seed=2)
    test.iloc[:3] = train.iloc[:3].to_numpy()
    test.to_csv(tmp_path / "test.csv", index=False)
    code = main(["data", "leakage", "--split", f"train={tmp_path / 'train.csv'}",
                 "--split", f"test={tmp_path / 'test.csv'}", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    (leak,) = doc["findings"]
    assert leak["rule"] == "data.leakage.exact" and leak["evidence"]["rows"] == [0, 1, 2]
    assert main(["data", "leakage", "--split", "oops"]) == 2


def test_agreement_flags_the_flipper(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 150)
    rows = []
    for name in ("ann", "bob", "cat", "eve"):
        for i, t in enumerate(truth):
            label = (t + 1) % 3 if name == "eve" and rng.random() < 0.3 else t
            rows.append((i, name, label))
    pd.DataFrame(rows, columns=["item", "labeller", "label"]).to_csv(tmp_path / "a.csv",
                                                                      index=False)
    code = main(["data", "agreement", str(tmp_path / "a.csv"), "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    outliers = [f for f in doc["findings"] if f["rule"] == "data.labels.labeller_outlier"]
    assert [f["evidence"]["labeller"] for f in outliers] == ["eve"]


def test_audit_sample_then_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _csv(tmp_path / "d.csv")
    sample = tmp_path / "sample.csv"
    assert main(["data", "audit-sample", str(tmp_path / "d.csv"), "--size", "40",
                 "--output", str(sample)]) == 0
    frame = pd.read_csv(sample, keep_default_na=False)
    assert len(frame) == 40
    frame["verdict"] = ["wrong"] * 4 + ["correct"] * 36
    frame.to_csv(sample, index=False)
    capsys.readouterr()
    assert main(["data", "audit-result", str(sample), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["reviewed"], doc["errors"]) == (40, 4)
    assert doc["interval"][0] < 0.1 < doc["interval"][1]


def test_split_work(tmp_path: Path) -> None:
    plan = tmp_path / "plan.csv"
    assert main(["data", "split-work", "--items", "100", "--labeller", "a", "--labeller", "b",
                 "--labeller", "c", "--max-fraction", "0.4", "--output", str(plan)]) == 0
    frame = pd.read_csv(plan)
    assert frame["item"].nunique() == 100 and frame["labeller"].value_counts().max() <= 40
    assert main(["data", "split-work", "--items", "100", "--labeller", "a", "--labeller", "b",
                 "--max-fraction", "0.4", "--output", str(plan)]) == 2


def test_label_issues_with_given_probabilities(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    frame = _csv(tmp_path / "d.csv")
    codes = (frame["label"] == "dog").to_numpy().astype(int)
    probs = np.full((200, 2), 0.05)
    probs[np.arange(200), codes] = 0.95
    probs[[3, 9]] = probs[[3, 9], ::-1]
    np.save(tmp_path / "p.npy", probs)
    code = main(["data", "label-issues", str(tmp_path / "d.csv"), "--probabilities",
                 str(tmp_path / "p.npy"), "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0  # 1% of the rows: medium, below --fail-on high
    assert sorted(doc["summary"]["rows"]) == [3, 9]


def test_poisoning_remove_and_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digits = load_digits()
    X, y = digits.images / 16.0, digits.target.copy()
    chosen = np.flatnonzero(y == 7)[:12]
    X[chosen, 6:, :2] = 1.0
    y[chosen] = 1
    np.savez(tmp_path / "d.npz", X=X, y=y)
    cleaned = tmp_path / "clean.npz"
    report = tmp_path / "r.html"
    code = main(["data", "poisoning", str(tmp_path / "d.npz"), "--remove", str(cleaned),
                 "--format", "html", "--output", str(report)])
    assert code == 1
    with np.load(cleaned) as archive:
        assert archive["X"].shape[0] == len(y) - 12
    lineage = json.loads((tmp_path / "clean.npz.lineage.json").read_text())
    assert lineage["removed_rows"] == chosen.tolist() and len(lineage["source_sha256"]) == 64
    html = report.read_text()
    assert "data.poisoning.suspect" in html
    # overall scores, scores per class, and the flagged digits drawn
    assert html.count("data:image/png;base64,") == 3 and "Flagged samples" in html


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_poisoning_of_a_table_with_a_model_and_html(tmp_path: Path) -> None:
    import pickle

    from sklearn.datasets import load_breast_cancer
    from sklearn.neural_network import MLPClassifier

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    chosen = np.flatnonzero(y == 0)[:40]
    X[np.ix_(chosen, [4, 17])] = X[:, [4, 17]].max(0) + 3 * X[:, [4, 17]].std(0)
    y[chosen] = 1
    frame = pd.DataFrame(X, columns=[f"c{i}" for i in range(30)]).assign(label=y)
    frame.to_csv(tmp_path / "t.csv", index=False)
    mlp = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=300, random_state=0).fit(X, y)
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(mlp))
    report = tmp_path / "r.html"
    code = main(["data", "poisoning", str(tmp_path / "t.csv"), "--model", str(tmp_path / "m.pkl"),
                 "--format", "html", "--output", str(report)])
    assert code == 1
    html = report.read_text()
    assert "Split per class" in html and "Ashman" in html  # the combined method's verdicts
    assert "not drawn: the data are not images" in html
    assert html.count("data:image/png;base64,") == 2


def test_capacity_html(tmp_path: Path) -> None:
    digits = load_digits()
    np.savez(tmp_path / "d.npz", X=digits.data[:400], y=digits.target[:400])
    report = tmp_path / "c.html"
    code = main(["data", "capacity", str(tmp_path / "d.npz"), "--target", "0.999",
                 "--format", "html", "--output", str(report)])
    assert code == 0  # medium findings only
    html = report.read_text()
    assert "learning curve" in html.lower() and "logistic regression" in html


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_poisoning_with_a_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pickle

    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    np.savez(tmp_path / "d.npz", X=digits.data / 16.0, y=digits.target)
    mlp = MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0)
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(mlp.fit(digits.data / 16.0, digits.target)))
    code = main(["data", "poisoning", str(tmp_path / "d.npz"), "--model", str(tmp_path / "m.pkl"),
                 "--method", "spectral", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code in (0, 1) and doc["summary"]["method"] == "spectral"
    assert doc["summary"]["layer"] == "penultimate"
    (tmp_path / "bad.pkl").write_bytes(b"\x80\x04\x95garbage")
    # refused by the scan of its bytes (pickle.stream.truncated, high): exit 1, as `bastion scan`
    assert main(["data", "poisoning", str(tmp_path / "d.npz"), "--model",
                 str(tmp_path / "bad.pkl")]) == 1


# ------------------------------------------------- poisoning with models as users hold them


def _nchw_digits(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    return (digits.images[:n, None] / 16.0).astype(np.float32), digits.target[:n]


def _small_cnn() -> object:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 10))


def _spectral(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code = main(["data", "poisoning", *argv, "--method", "spectral", "--format", "json"])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    summary: dict[str, object] = json.loads(captured.out)["summary"]
    return summary


def _direct(X: np.ndarray, y: np.ndarray, net: object) -> dict[str, object]:
    """What the detector says when handed the NCHW array directly (no loader, no layout)."""
    from bastion.data.choices import Method
    from bastion.data.interface import Dataset, DatasetKind
    from bastion.data.poisoning import detect_poisoning
    from bastion.models import as_predictor

    frame = pd.DataFrame(X.reshape(len(X), -1).astype(np.float64))
    ds = Dataset(source="direct", kind=DatasetKind.ARRAY, frame=frame, labels=y,
                 label_name="label")
    report = detect_poisoning(ds, model=as_predictor(net), inputs=X, method=Method.SPECTRAL)
    return report.to_dict()


def test_poisoning_takes_pytorch_layout_and_every_torch_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys
    import warnings

    import torch

    X, y = _nchw_digits()
    net = _small_cnn()
    expected = _direct(X, y, net)
    np.save(tmp_path / "X.npy", X)  # (N, 1, H, W): read as (n, 8, 1, 8) before, an internal error
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "hwc.npz", X=X.transpose(0, 2, 3, 1), y=y)
    torch.save(net, tmp_path / "whole.pt")
    torch.save(net.state_dict(), tmp_path / "weights.pt")  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(net).save(str(tmp_path / "script.pt"))
    (tmp_path / "arch").mkdir()
    (tmp_path / "arch" / "bastion_test_nets.py").write_text(
        "import torch\n\n\ndef small_cnn():\n    return torch.nn.Sequential("
        "torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), "
        "torch.nn.Linear(4 * 6 * 6, 10))\n")
    monkeypatch.syspath_prepend(str(tmp_path / "arch"))
    monkeypatch.delitem(sys.modules, "bastion_test_nets", raising=False)
    runs = {
        "whole": [str(tmp_path / "X.npy"), "--model", str(tmp_path / "whole.pt")],
        "nhwc": [str(tmp_path / "hwc.npz"), "--model", str(tmp_path / "whole.pt")],
        "torchscript": [str(tmp_path / "X.npy"), "--model", str(tmp_path / "script.pt")],
        "state_dict": [str(tmp_path / "X.npy"), "--model", str(tmp_path / "weights.pt"),
                       "--arch", "bastion_test_nets:small_cnn"],
    }
    for name, argv in runs.items():
        summary = _spectral(argv, capsys)
        assert summary["suspicious"] == expected["suspicious"], name
        assert summary["threshold"] == pytest.approx(expected["threshold"]), name
    monkeypatch.delitem(sys.modules, "bastion_test_nets", raising=False)


@pytest.mark.parametrize(("arch", "message"), [
    ("no_such_module_here:build", "no module named 'no_such_module_here'"),
    ("bastion_test_arch_errors:nope", "has no attribute 'nope'"),
    ("bastion_test_arch_errors:WIDTH", "is a int, not callable"),
    ("bastion_test_arch_broken:build", "importing bastion_test_arch_broken failed: "
                                       "ZeroDivisionError"),
    ("not a spec", "is not package.module:factory"),
])
def test_arch_errors_are_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch, arch: str, message: str) -> None:
    import sys

    import torch

    X, y = _nchw_digits(20)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    torch.save(_small_cnn().state_dict(), tmp_path / "weights.pt")  # type: ignore[attr-defined]
    (tmp_path / "bastion_test_arch_errors.py").write_text("WIDTH = 3\n")
    (tmp_path / "bastion_test_arch_broken.py").write_text("1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("bastion_test_arch_errors", "bastion_test_arch_broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    code = main(["data", "poisoning", str(tmp_path / "d.npz"), "--model",
                 str(tmp_path / "weights.pt"), "--arch", arch])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and "internal" not in err
    for name in ("bastion_test_arch_errors", "bastion_test_arch_broken"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def test_weights_without_arch_and_arch_without_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    X, y = _nchw_digits(20)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    torch.save(_small_cnn().state_dict(), tmp_path / "weights.pt")  # type: ignore[attr-defined]
    assert main(["data", "poisoning", str(tmp_path / "d.npz"), "--model",
                 str(tmp_path / "weights.pt")]) == 2
    assert "state dict" in capsys.readouterr().err
    assert main(["data", "poisoning", str(tmp_path / "d.npz"), "--arch", "m:f"]) == 2
    assert "--arch needs --model" in capsys.readouterr().err


def test_layout_ambiguity_and_mismatch_are_clean_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    torch.manual_seed(0)
    three = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 2), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 2 * 2, 2))
    torch.save(three, tmp_path / "three.pt")
    torch.save(_small_cnn(), tmp_path / "one.pt")
    X = np.random.default_rng(0).random((40, 3, 3, 3)).astype(np.float32)  # 3 first or last
    np.savez(tmp_path / "amb.npz", X=X, y=np.repeat([0, 1], 20))
    source = str(tmp_path / "amb.npz")
    assert main(["data", "poisoning", source, "--model", str(tmp_path / "three.pt"),
                 "--method", "spectral"]) == 2
    err = capsys.readouterr().err
    assert "X (n, 3, 3, 3) could be NCHW or NHWC" in err and "--layout" in err
    assert "Traceback" not in err
    summary = _spectral([source, "--model", str(tmp_path / "three.pt"), "--layout", "nchw"],
                        capsys)
    assert summary["method"] == "spectral"
    assert main(["data", "poisoning", source, "--model", str(tmp_path / "one.pt"),
                 "--method", "spectral"]) == 2
    err = capsys.readouterr().err
    assert "the model takes images (n, 1, ?, ?)" in err and "X (n, 3, 3, 3)" in err
    # model-free methods read the values flat: no layout needed
    assert main(["data", "poisoning", source, "--method", "outliers", "--format", "json"]) \
        in (0, 1)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_poisoning_on_a_table_with_scikit_learn_and_a_torch_mlp(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pickle

    import torch
    from sklearn.neural_network import MLPClassifier

    frame = _csv(tmp_path / "t.csv")
    features = frame[list("abcd")].to_numpy()
    mlp = MLPClassifier((8,), max_iter=30, random_state=0).fit(features, frame["label"])
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(mlp))
    torch.manual_seed(0)
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
                                   torch.nn.Linear(8, 2)), tmp_path / "mlp.pt")
    torch.save(torch.nn.Sequential(torch.nn.Linear(5, 2)), tmp_path / "wide.pt")
    for model in ("m.pkl", "mlp.pt"):
        summary = _spectral([str(tmp_path / "t.csv"), "--model", str(tmp_path / model)], capsys)
        assert summary["layer"] == "penultimate"
    assert main(["data", "poisoning", str(tmp_path / "t.csv"), "--model",
                 str(tmp_path / "wide.pt"), "--method", "spectral"]) == 2
    err = capsys.readouterr().err
    assert "takes 5 features per sample, but the data gives 4" in err


def test_remove_keeps_the_files_layout(tmp_path: Path) -> None:
    X, y = _nchw_digits(200)
    chosen = np.flatnonzero(y == 7)[:6]
    X[chosen, 0, 6:, :2] = 1.0
    y[chosen] = 1
    np.savez(tmp_path / "d.npz", X=X, y=y)
    code = main(["data", "poisoning", str(tmp_path / "d.npz"), "--remove",
                 str(tmp_path / "clean.npz")])
    assert code in (0, 1)
    with np.load(tmp_path / "clean.npz") as archive:
        assert archive["X"].shape[1:] == (1, 8, 8)  # NCHW in, NCHW out
