"""Pruning on real models trained here: a CNN on the digits pruned by global magnitude, checked
against a pruning done by hand in the test; a random forest cut to its first trees, checked
against the trees' own average; the original left untouched, ``chosen`` read off right, the
models that cannot be pruned skipped with a reason, robust accuracy as the evasion test gives
it, the time budget, the round trip."""

from __future__ import annotations

import json
import warnings
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tests.assess.conftest import Digits, cnn, policy, train

from bastion.assess._target import Target
from bastion.assess.evasion import run_test
from bastion.assess.interface import Attack, EvasionResult, SkippedTest
from bastion.assess.policy import AttackSpec
from bastion.assess.pruning import (
    FOREST_METHOD,
    TORCH_METHOD,
    PruningResult,
    prune,
    run_pruning,
)
from bastion.models import CapabilityError, InputSpec, Predictor, as_predictor

CLASSES = tuple(str(c) for c in range(10))
SAMPLES = 200


class Sample(NamedTuple):
    x: np.ndarray
    y: np.ndarray


@pytest.fixture(scope="module")
def net(digits: Digits) -> torch.nn.Module:
    """A CNN of its own (the session's CNN is shared: nothing here may risk it)."""
    return train(cnn(), digits.x_train, digits.y_train, epochs=4)


@pytest.fixture(scope="module")
def sample(digits: Digits) -> Sample:
    return Sample(digits.x_test[:SAMPLES], digits.y_test[:SAMPLES])


@pytest.fixture(scope="module")
def flat() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = load_digits()
    x, y = (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)
    return x[:1200], y[:1200], x[1200:1200 + SAMPLES], y[1200:1200 + SAMPLES]


@pytest.fixture(scope="module")
def forest(flat: tuple[np.ndarray, ...]) -> RandomForestClassifier:
    x, y, _, _ = flat
    return RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(x, y)


def _run(predictor: Predictor, x: np.ndarray, y: np.ndarray, levels: list[float],
         **kw: Any) -> PruningResult | SkippedTest:
    settings: dict[str, Any] = {"max_accuracy_loss": 0.02, "robust": None,
                                "classes": CLASSES, "clip": (0.0, 1.0), "seed": 0,
                                "max_seconds": 600.0, **kw}
    return run_pruning(predictor, x, y, levels=levels, **settings)


def _result(found: PruningResult | SkippedTest) -> PruningResult:
    assert isinstance(found, PruningResult), found
    return found


def _fgsm(eps: float = 0.1) -> AttackSpec:
    spec = policy({"fgsm": {"eps": [eps]}}).test(Attack.FGSM)
    assert spec is not None
    return spec


def _weights(module: torch.nn.Module) -> list[torch.Tensor]:
    """The Linear and Conv2d weights, read here rather than from the code under test."""
    return [m.weight for m in module.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)]


def _by_hand(module: torch.nn.Module, sparsity: float) -> list[torch.Tensor]:
    """Global magnitude pruning done here: zero the round(s × total) smallest |w| of all the
    prunable weights together (the rule torch's global_unstructured states)."""
    weights = [w.detach().clone() for w in _weights(module)]
    flat = torch.cat([w.reshape(-1) for w in weights])
    k = round(sparsity * flat.numel())
    zero = torch.zeros(flat.numel(), dtype=torch.bool)
    zero[torch.argsort(flat.abs())[:k]] = True
    out, at = [], 0
    for w in weights:
        mask = zero[at:at + w.numel()].reshape(w.shape)
        out.append(torch.where(mask, torch.zeros_like(w), w))
        at += w.numel()
    return out


def _accuracy(module: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((module(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def test_sparsity_zero_changes_nothing(net: torch.nn.Module, sample: Sample) -> None:
    p = as_predictor(net)
    result = _result(_run(p, sample.x, sample.y, [0.0]))
    level = result.levels[0]
    assert result.method == TORCH_METHOD and result.samples == SAMPLES
    assert level.accuracy == _accuracy(net, sample.x, sample.y)
    assert level.accuracy == float((p.predict(sample.x) == sample.y).mean()) > 0.8
    pruned = prune(p, 0.0)
    assert np.array_equal(pruned.predict_proba(sample.x), p.predict_proba(sample.x))
    every = sum(int(t.numel()) for t in net.parameters())
    assert level.nonzero == sum(int(torch.count_nonzero(t)) for t in net.parameters()) == every
    assert level.parameters == sum(int(w.numel()) for w in _weights(net))
    assert level.compressed_bytes is not None and 0 < level.compressed_bytes <= 4 * every + 64
    assert level.latency_ms > 0 and level.robust_accuracy is None


def test_global_magnitude_zeroes_the_smallest_weights_of_all_layers(
        net: torch.nn.Module, sample: Sample) -> None:
    levels = [0.0, 0.3, 0.6, 0.9]
    result = _result(_run(as_predictor(net), sample.x, sample.y, levels))
    total = sum(int(w.numel()) for w in _weights(net))  # 8·9 + 32·512 + 10·32 = 16,776
    every = sum(int(t.numel()) for t in net.parameters())  # and 50 biases
    assert total == 16_776 and every == total + 50
    assert [v.sparsity for v in result.levels] == levels and result.complete
    for level in result.levels:
        zeroed = round(level.sparsity * total)
        assert level.parameters == total
        assert level.nonzero == every - zeroed, level  # every weight of the net was non-zero
        pruned = prune(as_predictor(net), level.sparsity)
        got = _weights(pruned.module)  # type: ignore[attr-defined]
        assert sum(int((w == 0).sum()) for w in got) == zeroed
        for mine, theirs in zip(got, _by_hand(net, level.sparsity), strict=True):
            assert torch.equal(mine, theirs)  # the very weights a global rule zeroes
        assert level.accuracy == _accuracy(pruned.module, sample.x, sample.y)  # type: ignore[attr-defined]
        # the masks were made permanent: plain parameters, no hooks, no weight_orig
        names = dict(pruned.module.named_parameters())  # type: ignore[attr-defined]
        assert not any(n.endswith("_orig") for n in names)
        assert not any(m._forward_pre_hooks for m in pruned.module.modules())  # type: ignore[attr-defined]
    # global, not per layer: at 0.6 the big Linear loses more than its share, the last less
    at = _by_hand(net, 0.6)
    shares = [float((w == 0).float().mean()) for w in at]
    assert max(shares) - min(shares) > 0.1, shares
    nonzero = [v.nonzero for v in result.levels]
    packed = [v.compressed_bytes or 0 for v in result.levels]
    assert nonzero == sorted(nonzero, reverse=True) and len(set(nonzero)) == 4
    assert packed == sorted(packed, reverse=True) and packed[-1] < packed[0] / 2


def test_the_original_is_never_modified(net: torch.nn.Module, sample: Sample,
                                        forest: RandomForestClassifier,
                                        flat: tuple[np.ndarray, ...]) -> None:
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    modes = [m.training for m in net.modules()]
    _result(_run(as_predictor(net), sample.x, sample.y, [0.0, 0.5, 0.9], robust=_fgsm()))
    after = net.state_dict()
    assert set(after) == set(before)
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert [m.training for m in net.modules()] == modes
    assert not any(m._forward_pre_hooks for m in net.modules())
    trees = list(forest.estimators_)
    _, _, x, y = flat
    _result(_run(as_predictor(forest), x, y, [0.5, 0.9]))
    assert forest.estimators_ == trees and forest.n_estimators == 20


def test_chosen_is_the_sparsest_level_within_the_allowance(net: torch.nn.Module,
                                                           sample: Sample) -> None:
    p = as_predictor(net)
    levels = [0.0, 0.5, 0.8, 0.995]
    base = _accuracy(net, sample.x, sample.y)
    loose = _result(_run(p, sample.x, sample.y, levels, max_accuracy_loss=1.0))
    assert loose.chosen == 0.995 and loose.max_accuracy_loss == 1.0
    assert loose.parameters["unpruned_accuracy"] == base
    accuracy = {v.sparsity: v.accuracy for v in loose.levels}
    assert accuracy[0.995] < base - 0.2  # 84 weights left: the network is gone
    strict = _result(_run(p, sample.x, sample.y, levels, max_accuracy_loss=0.0))
    keeps = [s for s, a in accuracy.items() if a >= base]
    assert strict.chosen == max(keeps) and strict.chosen < 0.995
    some = _result(_run(p, sample.x, sample.y, levels, max_accuracy_loss=0.05))
    assert some.chosen == max(s for s, a in accuracy.items() if a >= base - 0.05)
    # without the unpruned level, and with every level below the line: nothing is chosen
    none = _result(_run(p, sample.x, sample.y, [0.995], max_accuracy_loss=0.0))
    assert none.chosen is None


def test_a_forest_keeps_its_first_trees(forest: RandomForestClassifier,
                                        flat: tuple[np.ndarray, ...]) -> None:
    _, _, x, y = flat
    levels = [0.0, 0.5, 0.9, 0.99]
    result = _result(_run(as_predictor(forest), x, y, levels))
    assert result.method == FOREST_METHOD
    for level, kept in zip(result.levels, [20, 10, 2, 1], strict=True):
        trees = forest.estimators_[:kept]
        proba = np.mean([t.predict_proba(x) for t in trees], axis=0)
        by_hand = float((forest.classes_[proba.argmax(1)] == y).mean())
        assert level.accuracy == by_hand, (level, kept)
        assert level.parameters == kept and level.compressed_bytes is None
        assert level.nonzero == sum(t.tree_.node_count for t in trees)
    assert result.levels[0].accuracy == float((forest.predict(x) == y).mean())
    assert result.levels[0].accuracy > result.levels[-1].accuracy


def test_a_forest_in_a_pipeline_and_a_white_box_attack_on_it(
        flat: tuple[np.ndarray, ...]) -> None:
    x_train, y_train, x, y = flat
    model = make_pipeline(StandardScaler(), ExtraTreesClassifier(n_estimators=8, max_depth=6,
                                                                 random_state=0))
    model.fit(x_train, y_train)
    result = _result(_run(as_predictor(model), x, y, [0.0, 0.5], robust=_fgsm()))
    assert result.method == FOREST_METHOD and [v.parameters for v in result.levels] == [8, 4]
    assert model.steps[-1][1].n_estimators == 8 and len(model.steps[-1][1].estimators_) == 8
    assert all(v.robust_accuracy is None for v in result.levels)
    assert "gradients" in result.parameters["robust_skipped"]


def test_models_that_cannot_be_pruned_are_skipped(net: torch.nn.Module, sample: Sample,
                                                  flat: tuple[np.ndarray, ...]) -> None:
    x_train, y_train, x, y = flat
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        logistic = LogisticRegression(max_iter=50).fit(x_train, y_train)
    skipped = _run(as_predictor(logistic), x, y, [0.0, 0.5])
    assert isinstance(skipped, SkippedTest) and skipped.attack is Attack.PRUNING
    assert "PyTorch networks" in skipped.reason and "forests" in skipped.reason
    assert "LogisticRegression" in skipped.reason and skipped.remedy
    assert skipped.to_dict()["attack"] == "pruning"

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript files still exist
        scripted = torch.jit.script(net)
    skipped = _run(as_predictor(scripted), sample.x, sample.y, [0.5])
    assert isinstance(skipped, SkippedTest) and "TorchScript" in skipped.reason
    assert "nn.Module itself" in skipped.remedy and "--arch" in skipped.remedy

    class NoLayers(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(64, 10))

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return t.reshape(len(t), -1) @ self.w

    bare = as_predictor(NoLayers(), spec=InputSpec(shape=(1, 8, 8), n_classes=10))
    skipped = _run(bare, sample.x, sample.y, [0.5])
    assert isinstance(skipped, SkippedTest) and "no Linear or Conv" in skipped.reason
    with pytest.raises(CapabilityError):
        prune(bare, 0.5)
    with pytest.raises(ValueError, match="sparsity"):
        prune(as_predictor(net), 1.0)


def test_robust_accuracy_is_the_evasion_tests_and_deterministic(net: torch.nn.Module,
                                                               sample: Sample) -> None:
    p, spec = as_predictor(net), _fgsm(0.1)
    first = _result(_run(p, sample.x, sample.y, [0.0, 0.7], robust=spec))
    alone = run_test(spec, Target(p, sample.x, sample.y, CLASSES, (0.0, 1.0), 0, False))
    assert isinstance(alone, EvasionResult)
    assert first.levels[0].robust_accuracy == alone.curve[0].robust_accuracy
    robust = [v.robust_accuracy for v in first.levels]
    assert all(r is not None and 0 <= r < v.accuracy for r, v in zip(robust, first.levels,
                                                                     strict=True))
    assert first.parameters["attack"] == "fgsm" and first.parameters["eps"] == 0.1
    assert first.parameters["norm"] == "inf"

    def figures(r: PruningResult) -> list[dict[str, Any]]:
        return [{k: v for k, v in level.to_dict().items() if k != "latency_ms"}
                for level in r.levels]

    again = _result(_run(p, sample.x, sample.y, [0.0, 0.7], robust=spec))
    assert figures(again) == figures(first)


def test_the_time_budget_stops_between_levels(net: torch.nn.Module, sample: Sample) -> None:
    ticks = iter([0.0])

    def clock() -> float:  # the first call starts the test, every later one is past its budget
        return next(ticks, 1000.0)

    class Bar:
        def __init__(self) -> None:
            self.calls: list[tuple[str, ...]] = []

        def start(self, test: str, total: int) -> None:
            self.calls.append(("start", test, str(total)))

        def advance(self, test: str) -> None:
            self.calls.append(("advance", test))

        def stop(self, test: str) -> None:
            self.calls.append(("stop", test))

    bar = Bar()
    result = _result(_run(as_predictor(net), sample.x, sample.y, [0.0, 0.5, 0.9],
                          max_seconds=10.0, clock=clock, progress=bar))
    assert not result.complete and [v.sparsity for v in result.levels] == [0.0]
    assert result.planned == (0.0, 0.5, 0.9) and result.seconds == 1000.0
    assert bar.calls == [("start", "pruning", "3"), ("advance", "pruning"), ("stop", "pruning")]
    bar.calls.clear()
    _result(_run(as_predictor(net), sample.x, sample.y, [0.0, 0.5], progress=bar))
    assert [c[0] for c in bar.calls] == ["start", "advance", "advance", "stop"]


def test_the_result_reads_back_and_refuses_what_it_did_not_write(
        forest: RandomForestClassifier, flat: tuple[np.ndarray, ...]) -> None:
    _, _, x, y = flat
    result = _result(_run(as_predictor(forest), x, y, [0.0, 0.5]))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["attack"] == "pruning" and data["chosen"] == result.chosen
    back = PruningResult.from_dict(data)
    assert back.to_dict() == data and back.attack is Attack.PRUNING
    assert back.levels == result.levels  # PruningLevel compares by value
    with pytest.raises(ValueError, match="not a pruning result"):
        PruningResult.from_dict({**data, "attack": "extraction"})
    with pytest.raises(KeyError):
        PruningResult.from_dict({k: v for k, v in data.items() if k != "levels"})
    with pytest.raises(TypeError):
        PruningResult.from_dict({**data, "complete": "yes"})
    broken = {**data, "levels": [{**data["levels"][0], "nonzero": 3.5}]}
    with pytest.raises(TypeError):
        PruningResult.from_dict(broken)
    with pytest.raises(KeyError):
        PruningResult.from_dict({**data, "levels": [{"sparsity": 0.0}]})


# ------------------------------------------------------------------- in a policy, end to end


def test_a_policy_runs_the_sweep_at_its_requirements_eps(net: torch.nn.Module,
                                                         sample: Sample) -> None:
    from bastion.assess import assess
    from bastion.assess.plots import sections
    from bastion.assess.runner import Assessment
    from bastion.findings import Principle, Severity

    chosen = policy({"fgsm": {"eps": [0.0, 0.05, 0.1]},
                     "pruning": {"levels": [0.0, 0.5, 0.9], "max_accuracy_loss": 0.02}},
                    [{"test": "fgsm", "metric": "robust_accuracy", "eps": 0.05, "min": 0.0}])
    assert chosen.pruning is not None and chosen.pruning.robust is not None
    assert chosen.pruning.robust.eps == (0.05,)  # the first robust requirement's ε
    done = assess(as_predictor(net), sample.x, sample.y, chosen)
    fgsm, sweep = done.results
    assert isinstance(fgsm, EvasionResult) and isinstance(sweep, PruningResult)
    point = fgsm.at(0.05)
    assert point is not None and sweep.levels[0].robust_accuracy == point.robust_accuracy
    summary = next(f for f in done.findings if f.rule == "assess.pruning.summary")
    assert summary.severity is Severity.INFO and summary.principle is Principle.P2_6
    assert "sparsest within 0.02 accuracy loss" in summary.title
    back = Assessment.from_dict(json.loads(json.dumps(done.to_dict())), chosen)
    assert isinstance(back.results[1], PruningResult)
    assert back.results[1].to_dict() == sweep.to_dict()
    assert "Pruning" in [s.heading for s in sections(done)]


def test_the_pruning_policy_is_checked() -> None:
    from bastion.assess import PolicyError

    with pytest.raises(PolicyError, match="must ascend"):
        policy({"pruning": {"levels": [0.5, 0.25]}})
    with pytest.raises(PolicyError, match="which the policy's tests do not run"):
        policy({"pruning": {"robust": {"test": "fgsm", "eps": 0.1}}})
    with pytest.raises(PolicyError, match=r"is not one tests\.fgsm\.eps measures"):
        policy({"fgsm": {"eps": [0.0, 0.1]}, "pruning": {"robust": {"test": "fgsm",
                                                                     "eps": 0.2}}})
    with pytest.raises(PolicyError, match="from 0 up to"):
        policy({"pruning": {"levels": [0.0, 1.0]}})
    bare = policy({"pruning": {}})
    assert bare.pruning is not None and bare.pruning.robust is None
    assert bare.pruning.levels == (0.0, 0.25, 0.5, 0.75, 0.9)
