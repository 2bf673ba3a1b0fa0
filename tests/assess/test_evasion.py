"""White-box evasion tests on real networks: the curve's shape, defences, determinism, budgets."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from tests.assess.conftest import Digits, policy

from bastion.assess import Attack, EvasionResult, SkippedTest, assess
from bastion.findings import Severity
from bastion.models import as_predictor


def _result(done: object, attack: Attack) -> EvasionResult:
    result = next(r for r in done.results if r.attack is attack)  # type: ignore[attr-defined]
    assert isinstance(result, EvasionResult)
    return result


def test_undefended_accuracy_falls_with_eps_to_zero(digits: Digits,
                                                    digits_cnn: torch.nn.Module) -> None:
    eps = [0.0, 0.03, 0.1, 0.2, 0.3]
    done = assess(as_predictor(digits_cnn), digits.x_test, digits.y_test,
                  policy({"pgd_linf": {"eps": eps, "steps": 7}, "fgsm": {"eps": eps}},
                         sample_size=1000), keep_examples=True)
    pgd, fgsm = _result(done, Attack.PGD_LINF), _result(done, Attack.FGSM)
    with torch.no_grad():  # clean accuracy, by the network itself
        clean = (digits_cnn(torch.from_numpy(digits.x_test)).argmax(1).numpy()
                 == digits.y_test).mean()
    assert pgd.samples == len(digits.y_test) and abs(pgd.clean_accuracy - clean) < 1e-9
    assert pgd.clean_accuracy > 0.85
    each = [p.accuracy for p in pgd.curve]  # each ε's attack on its own, not cumulated
    assert all(b <= a + 0.01 for a, b in itertools.pairwise(each)), each
    assert each[1] < each[0] and pgd.at(0.3).robust_accuracy <= 0.02  # type: ignore[union-attr]
    for p_pgd, p_fgsm in zip(pgd.curve, fgsm.curve, strict=True):  # PGD iterates FGSM's step
        assert p_pgd.robust_accuracy <= p_fgsm.robust_accuracy + 0.02
    assert set(pgd.curve[-1].per_class) == {str(c) for c in range(10)}
    ex = pgd.examples  # every example inside its ε-ball and the valid range, fooled as said
    assert ex is not None and len(ex.y) == 4 * len(digits.y_test)
    assert (np.abs(ex.x_adv - ex.x).reshape(len(ex.y), -1).max(1) <= ex.eps + 1e-5).all()
    assert ex.x_adv.min() >= 0.0 and ex.x_adv.max() <= 1.0
    with torch.no_grad():
        wrong = digits_cnn(torch.from_numpy(ex.x_adv)).argmax(1).numpy() != ex.y
    assert (wrong == ex.fooled).all()


def test_quantised_inputs_hold_at_small_eps_and_black_box_sees_the_masking(
        digits: Digits, digits_cnn: torch.nn.Module, quantised_cnn: torch.nn.Module) -> None:
    tests = {"pgd_linf": {"eps": [0.0, 0.03, 0.1], "steps": 10},
             "square": {"eps": [0.1], "samples": 30, "max_queries": 200}}
    plain = assess(as_predictor(digits_cnn), digits.x_test, digits.y_test, policy(tests))
    quant = assess(as_predictor(quantised_cnn), digits.x_test, digits.y_test, policy(tests))
    p_plain, p_quant = _result(plain, Attack.PGD_LINF), _result(quant, Attack.PGD_LINF)
    # below 1/32 nothing the quantised network sees can change: its clean accuracy stands
    assert p_quant.at(0.03).robust_accuracy == p_quant.clean_accuracy  # type: ignore[union-attr]
    assert (p_quant.at(0.03).robust_accuracy  # type: ignore[union-attr]
            >= p_plain.at(0.03).robust_accuracy + 0.03)  # type: ignore[union-attr]
    # at 0.1 the rounding hides its gradient from PGD, but not the model from Square
    square = _result(quant, Attack.SQUARE).at(0.1)
    assert square is not None
    assert square.robust_accuracy < p_quant.at(0.1).robust_accuracy - 0.1  # type: ignore[union-attr]


def test_the_same_seed_gives_the_same_figures(digits: Digits,
                                              digits_cnn: torch.nn.Module) -> None:
    tests = {"pgd_linf": {"eps": [0.05, 0.1], "steps": 5},
             "autopgd": {"eps": [0.1], "steps": 5},
             "hopskipjump": {"eps": [0.5], "samples": 6, "max_queries": 200},
             "square": {"eps": [0.1], "samples": 6, "max_queries": 100}}

    def figures(seed: int) -> list[dict[str, object]]:
        done = assess(as_predictor(digits_cnn), digits.x_test, digits.y_test,
                      policy(tests, seed=seed, sample_size=60))
        return [{k: v for k, v in r.to_dict().items() if k != "seconds"}
                for r in done.results]

    first = figures(1)
    assert figures(1) == first
    assert figures(2) != first  # another seed draws other samples


def test_a_network_ending_in_softmax_is_attacked_through_its_logits(
        digits: Digits, digits_cnn: torch.nn.Module) -> None:
    tests = {"fgsm": {"eps": [0.05, 0.1]}}
    logits = assess(as_predictor(digits_cnn), digits.x_test, digits.y_test, policy(tests))
    probs = assess(as_predictor(torch.nn.Sequential(digits_cnn, torch.nn.Softmax(dim=1))),
                   digits.x_test, digits.y_test, policy(tests))
    a, b = _result(logits, Attack.FGSM), _result(probs, Attack.FGSM)
    assert [p.robust_accuracy for p in a.curve] == [p.robust_accuracy for p in b.curve]


def test_out_of_time_stops_the_sweep_and_fails(digits: Digits,
                                               digits_cnn: torch.nn.Module) -> None:
    ticks = itertools.count(step=100.0)  # each reading of the clock: 100 s later
    pol = policy({"pgd_linf": {"eps": [0.05, 0.1, 0.2], "steps": 3, "max_seconds": 150}},
                 [{"test": "pgd_linf", "metric": "robust_accuracy", "eps": 0.2, "min": 0.0}])
    done = assess(as_predictor(digits_cnn), digits.x_test, digits.y_test, pol,
                  clock=lambda: next(ticks))
    pgd = _result(done, Attack.PGD_LINF)
    assert not pgd.complete and [p.eps for p in pgd.curve] == [0.05, 0.1]
    by_rule = {f.rule: f for f in done.findings}
    assert by_rule["assess.test.incomplete"].severity is Severity.HIGH
    failed = by_rule["assess.pgd_linf.robust_accuracy"]  # min 0 cannot pass unmeasured
    assert failed.severity is Severity.HIGH and "time limit" in failed.detail


def test_white_box_tests_on_a_model_without_gradients_fail(digits: Digits,
                                                           digits_mlp: object) -> None:
    pol = policy({"pgd_linf": {"eps": [0.0, 0.1]}},
                 [{"test": "pgd_linf", "metric": "clean_accuracy", "min": 0.0}])
    done = assess(as_predictor(digits_mlp), digits.x_test.reshape(len(digits.x_test), -1),
                  digits.y_test, pol)
    (skipped,) = done.results
    assert isinstance(skipped, SkippedTest) and "PyTorch" in skipped.reason
    severities = {f.rule: f.severity for f in done.findings}
    assert severities == {"assess.test.not_run": Severity.HIGH,
                          "assess.pgd_linf.clean_accuracy": Severity.HIGH}
