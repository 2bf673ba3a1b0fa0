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
    assert "data.poisoning.suspect" in html and "data:image/png;base64," in html


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
