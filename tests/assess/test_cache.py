"""The assessment cache: a second identical run is not re-attacked; any change of model, data,
policy or budget is; an entry that cannot be trusted is ignored; results read back whole."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from sklearn.neural_network import MLPClassifier
from tests.assess.conftest import Digits, policy

from bastion.assess import AssessError, EvasionResult, PolicyError, SkippedTest, assess
from bastion.assess import runner as runner_module
from bastion.assess.cache import AssessmentCache, cache_key, input_digest
from bastion.assess.interface import CurvePoint
from bastion.assess.policy import Policy
from bastion.assess.runner import Assessment
from bastion.cli.app import main
from bastion.models import as_predictor


def _policy_file(path: Path, minimum: float = 0.0, **top: object) -> Path:
    path.write_text(yaml.safe_dump({
        "version": 1, "sample_size": 60, **top,
        "tests": {"fgsm": {"eps": [0.0, 0.1]}},
        "requirements": [{"test": "fgsm", "metric": "robust_accuracy", "eps": 0.1,
                          "min": minimum}]}))
    return path


@pytest.fixture
def files(tmp_path: Path, digits: Digits, digits_cnn: torch.nn.Module) -> dict[str, Path]:
    torch.save(digits_cnn, tmp_path / "cnn.pt")
    np.savez(tmp_path / "test.npz", X=digits.x_test, y=digits.y_test)
    return {"model": tmp_path / "cnn.pt", "data": tmp_path / "test.npz",
            "policy": _policy_file(tmp_path / "policy.yaml")}


@pytest.fixture
def attacks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every test the runner attacks with, by name, in order (the real attacks still run)."""
    calls: list[str] = []
    real = runner_module.run_test

    def counted(spec: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(spec.attack.value)
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(runner_module, "run_test", counted)
    return calls


Run = Callable[..., tuple[int, dict[str, Any], str]]


@pytest.fixture
def run(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> Run:
    """``assess run`` on the files (any of them replaced), as JSON: code, document, stderr."""
    def go(*extra: str, model: Path | None = None, data: Path | None = None,
           policy_file: Path | None = None) -> tuple[int, dict[str, Any], str]:
        code = main(["assess", "run", str(model or files["model"]), "--data",
                     str(data or files["data"]), "--policy",
                     str(policy_file or files["policy"]), "--format", "json", *extra])
        out, err = capsys.readouterr()
        return code, json.loads(out), err
    return go


HIT = "unchanged model, data and policy: figures from the cache ("


def _figures(doc: dict[str, Any]) -> list[Any]:
    return [{k: v for k, v in t.items() if k != "seconds"} for t in doc["summary"]["tests"]]


def test_a_second_identical_run_is_read_from_the_cache(run: Run, attacks: list[str],
                                                       tmp_path: Path) -> None:
    code, first, err = run()
    assert code == 0 and attacks == ["fgsm"] and HIT not in err
    assert first["summary"]["from_cache"] is None
    entries = list((Path(os.environ["XDG_CACHE_HOME"]) / "bastion" / "assess").glob("*.json"))
    assert len(entries) == 1 and entries[0].stat().st_mode & 0o777 == 0o600
    code, second, err = run()
    assert code == 0 and attacks == ["fgsm"]  # not attacked again
    assert HIT in err and "not re-attacked" in err
    assert second["findings"] == first["findings"]
    assert second["summary"]["tests"] == first["summary"]["tests"]
    assert second["summary"]["from_cache"].startswith(err.split(HIT)[1][:10])


def test_the_same_bytes_at_another_path_are_a_hit_named_for_that_path(
        run: Run, attacks: list[str], files: dict[str, Path], tmp_path: Path) -> None:
    run()
    moved = tmp_path / "moved.pt"
    moved.write_bytes(files["model"].read_bytes())
    code, doc, err = run(model=moved)
    assert code == 0 and HIT in err and attacks == ["fgsm"]
    assert doc["summary"]["source"] == str(moved)
    assert {f["location"]["path"] for f in doc["findings"] if f["location"]} == {str(moved)}


def test_any_change_of_model_data_policy_or_budget_is_a_miss(
        run: Run, attacks: list[str], files: dict[str, Path], tmp_path: Path,
        digits: Digits, digits_cnn: torch.nn.Module) -> None:
    run()
    changed = copy.deepcopy(digits_cnn)
    with torch.no_grad():
        changed[-1].bias[0] += 1e-4  # other bytes, hardly another model
    torch.save(changed, tmp_path / "changed.pt")
    np.savez(tmp_path / "fewer.npz", X=digits.x_test[:-1], y=digits.y_test[:-1])
    stricter = _policy_file(tmp_path / "stricter.yaml", minimum=0.01)
    misses = [{"model": tmp_path / "changed.pt"}, {"data": tmp_path / "fewer.npz"},
              {"policy_file": stricter}]
    for n, change in enumerate(misses, start=2):
        _, _, err = run(**change)
        assert HIT not in err and len(attacks) == n, change
    _, budget, err = run("--max-seconds", "500")
    assert HIT not in err and len(attacks) == 5
    assert budget["summary"]["policy"]["overrides"] == {"max_seconds": 500}
    _, again, err = run("--max-seconds", "500")
    assert HIT in err and len(attacks) == 5  # the same budget again: the same figures
    assert again["summary"]["policy"]["digest"] == budget["summary"]["policy"]["digest"]


def test_no_cache_attacks_again_and_refreshes_the_entry(run: Run, attacks: list[str]) -> None:
    _, first, _ = run()
    _, forced, err = run("--no-cache")
    assert attacks == ["fgsm", "fgsm"] and HIT not in err
    assert forced["summary"]["from_cache"] is None and _figures(forced) == _figures(first)
    _, _, err = run()
    assert HIT in err and len(attacks) == 2


def test_runs_that_need_the_examples_attack_again(run: Run, attacks: list[str],
                                                  tmp_path: Path) -> None:
    run()
    adv = tmp_path / "adv.npz"
    _, _, err = run("--save-adversarial", str(adv))
    assert HIT not in err and len(attacks) == 2
    with np.load(adv, allow_pickle=False) as saved:
        assert len(saved["x_adv"]) == 60


def test_a_corrupt_entry_is_ignored_with_one_warning_and_replaced(
        run: Run, attacks: list[str]) -> None:
    _, first, _ = run()
    (entry,) = (Path(os.environ["XDG_CACHE_HOME"]) / "bastion" / "assess").glob("*.json")
    entry.write_bytes(b'{"format": 1, "key": "trunc')
    code, doc, err = run()
    assert code == 0 and len(attacks) == 2 and HIT not in err
    (warning,) = [line for line in err.splitlines() if "warning:" in line]
    assert str(entry) in warning and "attacking again" in warning
    assert _figures(doc) == _figures(first)  # measured again, the same figures
    _, _, err = run()
    assert HIT in err and len(attacks) == 2  # the rewritten entry is good


def test_a_shorter_budget_is_measured_and_an_incomplete_test_fails(
        run: Run, files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run()[0] == 0  # the policy's own budget: met
    code, doc, _ = run("--max-seconds", "0.000001")
    assert code == 1
    rules = {f["rule"]: f["severity"] for f in doc["findings"]}
    assert rules["assess.test.incomplete"] == "high"
    assert rules["assess.fgsm.robust_accuracy"] == "high"  # ε 0.1 never reached
    assert main(["assess", "run", str(files["model"]), "--data", str(files["data"]),
                 "--policy", str(files["policy"]), "--max-seconds", "0"]) == 2
    assert "positive number of seconds" in capsys.readouterr().err


# ------------------------------------------------------------------ the library level


@pytest.fixture(scope="module")
def done(digits: Digits, digits_cnn: torch.nn.Module) -> Assessment:
    pol = policy({"fgsm": {"eps": [0.0, 0.1]},
                  "hopskipjump": {"eps": [1.0], "samples": 3, "max_queries": 60}},
                 [{"test": "fgsm", "metric": "robust_accuracy", "eps": 0.1, "min": 0.9}],
                 sample_size=20)
    return assess(as_predictor(digits_cnn), digits.x_test, digits.y_test, pol,
                  source="cnn.pt", model_sha256="ab" * 32)


def test_an_assessment_reads_back_whole(done: Assessment, digits: Digits,
                                        digits_mlp: MLPClassifier) -> None:
    data = json.loads(json.dumps(done.to_dict()))
    back = Assessment.from_dict(data, done.policy)
    assert back.to_dict() == data
    assert [type(r) for r in back.results] == [EvasionResult, EvasionResult]
    assert back.findings == tuple(type(f).from_dict(f.to_dict()) for f in done.findings)
    assert any(f.severity.value == "high" for f in back.findings)  # the failed requirement
    hsj = back.results[1]
    assert isinstance(hsj, EvasionResult) and hsj.median_queries is not None
    assert back.results[0].curve[1] == done.results[0].curve[1]  # type: ignore[union-attr]
    skipped = assess(as_predictor(digits_mlp), digits.x_test.reshape(len(digits.x_test), -1),
                     digits.y_test, policy({"fgsm": {"eps": [0.1]}}, sample_size=20))
    again = Assessment.from_dict(json.loads(json.dumps(skipped.to_dict())), skipped.policy)
    assert isinstance(again.results[0], SkippedTest)
    assert again.results[0] == skipped.results[0]
    assert CurvePoint.from_dict(done.results[0].curve[0].to_dict()) == \
        done.results[0].curve[0]  # type: ignore[union-attr]


def test_a_record_reads_back_only_under_its_own_policy(done: Assessment) -> None:
    data = done.to_dict()
    other = policy({"fgsm": {"eps": [0.0, 0.2]}})
    with pytest.raises(AssessError, match="another policy"):
        Assessment.from_dict(data, other)
    with pytest.raises(AssessError, match="no 'findings'"):
        Assessment.from_dict({k: v for k, v in data.items() if k != "findings"}, done.policy)
    broken = json.loads(json.dumps(data))
    broken["tests"][0]["attack"] = "carlini"
    with pytest.raises(AssessError):
        Assessment.from_dict(broken, done.policy)


def _key(done: Assessment) -> Any:
    return cache_key(model_sha256="ab" * 32, x=np.zeros((2, 3), np.float32),
                     labels=np.array([0, 1]), policy=done.policy)


@pytest.mark.parametrize("damage", ["not json", "another key", "other parts", "no findings",
                                    "writable by others", "a link"])
def test_an_entry_that_cannot_be_trusted_is_ignored(tmp_path: Path, done: Assessment,
                                                    damage: str) -> None:
    cache = AssessmentCache(tmp_path / "cache")
    key = _key(done)
    path = cache.store(key, done, warn=pytest.fail)
    assert path is not None
    warnings: list[str] = []
    assert cache.load(key, done.policy, source="cnn.pt", warn=warnings.append) is not None
    assert warnings == []
    entry = json.loads(path.read_text())
    if damage == "not json":
        path.write_bytes(b"\x00\xff")
    elif damage == "another key":
        entry["key"] = "0" * 64
    elif damage == "other parts":
        entry["parts"]["model_sha256"] = "cd" * 32
    elif damage == "no findings":
        del entry["assessment"]["findings"]
    if damage in ("another key", "other parts", "no findings"):
        path.write_text(json.dumps(entry))
    if damage == "writable by others":
        path.chmod(0o666)
    if damage == "a link":
        real = tmp_path / "elsewhere.json"
        path.rename(real)
        path.symlink_to(real)
    assert cache.load(key, done.policy, source="cnn.pt", warn=warnings.append) is None
    assert len(warnings) == 1 and str(path) in warnings[0]


def test_the_key_covers_inputs_exactly_and_the_libraries(done: Assessment) -> None:
    x = np.zeros((2, 3), np.float32)
    assert input_digest(x, [0, 1]) != input_digest(x.astype(np.float64), [0, 1])
    assert input_digest(x, [0, 1]) != input_digest(x.reshape(3, 2), [0, 1])
    assert input_digest(x, [0, 1]) != input_digest(x, None)
    assert input_digest(x, np.array(["a", 1], dtype=object)) != input_digest(
        x, np.array(["a", "1"], dtype=object))
    base = cache_key(model_sha256="ab" * 32, x=x, labels=[0, 1], policy=done.policy,
                     libraries={"torch": "2.13"})
    newer = cache_key(model_sha256="ab" * 32, x=x, labels=[0, 1], policy=done.policy,
                      libraries={"torch": "2.14"})
    assert base.digest != newer.digest
    assert base == cache_key(model_sha256="ab" * 32, x=x, labels=[0, 1], policy=done.policy,
                             libraries={"torch": "2.13"})


def test_the_cache_lives_in_the_workspace_else_the_users_cache(
        tmp_path: Path, workspace: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.store.workspace import Workspace

    assert isinstance(workspace, Workspace)
    home = workspace.settings.home
    assert AssessmentCache.default(home=home).directory == home / "cache" / "assess"
    assert not (home / "cache").exists()  # found, not made
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BASTION_HOME", raising=False)
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert AssessmentCache.default(env=env).directory == tmp_path / "xdg" / "bastion" / "assess"
    assert AssessmentCache.default(env={"XDG_CACHE_HOME": "relative"}).directory == \
        Path.home() / ".cache" / "bastion" / "assess"


def test_a_budget_override_is_another_policy_unless_nothing_changes() -> None:
    written = Policy.from_mapping({"version": 1, "max_seconds": 120, "tests": {
        "fgsm": {"eps": [0.1]}, "pgd_linf": {"eps": [0.1], "max_seconds": 600}}})
    short = written.with_max_seconds(30)
    assert [t.max_seconds for t in short.tests] == [30.0, 30.0]
    assert short.digest != written.digest and short.base_digest == written.digest
    assert short.overrides == {"max_seconds": 30}
    # its digest is the policy a file saying so would have
    assert short.digest == Policy.from_mapping({"version": 1, "max_seconds": 30, "tests": {
        "fgsm": {"eps": [0.1]}, "pgd_linf": {"eps": [0.1]}}}).digest
    assert short.with_max_seconds(30.0) is short
    once = Policy.from_mapping({"version": 1, "max_seconds": 30, "tests": {
        "fgsm": {"eps": [0.1]}}})
    assert once.with_max_seconds(30) is once  # the same body: the same policy, same digest
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(PolicyError, match="positive"):
            written.with_max_seconds(bad)


def test_a_registered_hit_is_recorded_and_a_budget_override_does_not_open_the_gate(
        files: dict[str, Path], workspace: object, attacks: list[str],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from sqlalchemy import select

    from bastion.store import schema as t
    from bastion.store.workspace import Workspace

    assert isinstance(workspace, Workspace)
    home = workspace.settings.home
    monkeypatch.setenv("BASTION_HOME", str(home))
    assert main(["model", "add", "cnn", str(files["model"])]) == 0
    assert main(["grant", "cnn", "rev", "reviewer"]) == 0
    assert main(["review", "request", "cnn@1"]) == 0
    assert main(["assess", "policy", "release", str(files["policy"])]) == 0
    capsys.readouterr()
    # a shorter budget passes, but is another policy: recorded, and the gate ignores it
    assert main(["assess", "run", "cnn@1", "--data", str(files["data"]),
                 "--max-seconds", "90"]) == 0
    err = capsys.readouterr().err
    assert "recorded assessment #1 of cnn@1: passed" in err and "does not count" in err
    monkeypatch.setenv("BASTION_ACTOR", "rev")
    assert main(["review", "approve", "cnn@1"]) == 2
    monkeypatch.setenv("BASTION_ACTOR", "tester")
    for number in (2, 3):  # measured, then read from the workspace's cache
        assert main(["assess", "run", "cnn@1", "--data", str(files["data"])]) == 0
        err = capsys.readouterr().err
        assert f"recorded assessment #{number} of cnn@1: passed" in err
    assert "(figures from the cache)" in err and HIT in err and len(attacks) == 2
    assert len(list((home / "cache" / "assess").glob("*.json"))) == 2
    assert not list((Path(os.environ["XDG_CACHE_HOME"])).rglob("*.json"))
    with workspace.engine.connect() as conn:
        records = [json.loads(r) for r in conn.execute(
            select(t.assessments.c.record).order_by(t.assessments.c.id)).scalars()]
    assert [r["from_cache"] is not None for r in records] == [False, False, True]
    assert records[0]["policy"]["overrides"] == {"max_seconds": 90}
    assert records[2]["findings"] == records[1]["findings"]
    monkeypatch.setenv("BASTION_ACTOR", "rev")
    assert main(["review", "approve", "cnn@1"]) == 0  # the cached evidence counts
