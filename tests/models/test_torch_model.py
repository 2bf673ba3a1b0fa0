"""TorchPredictor against the module it wraps: predictions, probabilities, gradients (autograd
and finite differences), representations, modes, batching, TorchScript."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from tests.models.conftest import make_net, script, trace

from bastion.models import (
    CapabilityError,
    Differentiable,
    InputSpecError,
    ModelError,
    Output,
    Predictor,
    Representable,
    TorchPredictor,
)


def _logits(net: torch.nn.Module, x: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        return net(torch.as_tensor(x))


def test_predictions_and_probabilities_are_the_modules(net, x) -> None:
    p = TorchPredictor(net)
    assert isinstance(p, Predictor) and isinstance(p, Differentiable)
    assert isinstance(p, Representable)
    assert p.spec.shape == (4,) and p.spec.n_classes == 2 and p.output is Output.LOGITS
    logits = _logits(net, x)
    assert p.predict(x).tolist() == logits.argmax(1).tolist()
    assert p.predict(x).dtype == np.int64
    np.testing.assert_allclose(p.predict_proba(x), torch.softmax(logits, 1).numpy(), atol=1e-6)
    assert p.module is net


def test_a_final_softmax_is_read_as_probabilities(x) -> None:
    net = make_net()
    probs = torch.nn.Sequential(*net, torch.nn.Softmax(dim=1))
    logp = torch.nn.Sequential(*net, torch.nn.LogSoftmax(dim=1))
    expected = torch.softmax(_logits(net, x), 1).numpy()
    for model, kind in ((probs, Output.PROBABILITIES), (logp, Output.LOG_PROBABILITIES)):
        p = TorchPredictor(model)
        assert p.output is kind and p.spec.n_classes == 2
        np.testing.assert_allclose(p.predict_proba(x), expected, atol=1e-6)


def test_one_binary_logit() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 1))
    x = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    p = TorchPredictor(net)
    positive = torch.sigmoid(_logits(net, x))[:, 0].numpy()
    np.testing.assert_allclose(p.predict_proba(x)[:, 1], positive, atol=1e-6)
    assert p.predict(x).tolist() == (positive > 0.5).astype(int).tolist()


@pytest.mark.parametrize(("head", "kind"), [
    (torch.nn.Sigmoid(), Output.PROBABILITIES), (torch.nn.LogSigmoid(), Output.LOGITS)])
def test_one_binary_score_of_every_kind(head: torch.nn.Module, kind: Output) -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(3, 1)
    x = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    positive = torch.sigmoid(_logits(linear, x))[:, 0].numpy()
    p = TorchPredictor(torch.nn.Sequential(linear, head))
    assert p.spec.n_classes == 2 and p.output is kind
    if isinstance(head, torch.nn.LogSigmoid):  # its output read right only when told
        p = TorchPredictor(torch.nn.Sequential(linear, head), output=Output.LOG_PROBABILITIES)
    np.testing.assert_allclose(p.predict_proba(x)[:, 1], positive, atol=1e-6)
    grads = p.loss_gradient(x, np.ones(6, dtype=int))
    t = torch.as_tensor(x).requires_grad_(True)
    (-torch.log(torch.sigmoid(linear(t)))).sum().backward()
    np.testing.assert_allclose(grads, t.grad.numpy(), atol=1e-5)


def test_gradients_match_autograd_on_the_original(net, x) -> None:
    y = np.array([0, 1, 1, 0, 1, 0, 0])
    p = TorchPredictor(net, batch_size=3)
    grads = p.loss_gradient(x, y)
    t = torch.as_tensor(x).requires_grad_(True)
    torch.nn.functional.cross_entropy(net(t), torch.as_tensor(y), reduction="sum").backward()
    assert grads.shape == x.shape
    np.testing.assert_allclose(grads, t.grad.numpy(), atol=1e-6)
    # one-hot rows (ART's convention) give the same; each row is its own input's gradient
    np.testing.assert_allclose(p.loss_gradient(x, np.eye(2)[y]), grads, atol=1e-7)
    np.testing.assert_allclose(p.loss_gradient(x[:1], y[:1]), grads[:1], atol=1e-7)


def test_gradients_match_finite_differences() -> None:
    net = make_net(3).double()
    x = np.random.default_rng(2).standard_normal((3, 4))
    y = np.array([1, 0, 1])
    p = TorchPredictor(net)

    def loss(batch: np.ndarray) -> np.ndarray:  # per-sample cross-entropy, float64
        logp = torch.log_softmax(_logits(net, batch), 1).numpy()
        return -logp[np.arange(len(y)), y]

    eps, numeric = 1e-4, np.zeros_like(x)
    for j in range(x.shape[1]):
        step = np.zeros_like(x)
        step[:, j] = eps
        numeric[:, j] = (loss(x + step) - loss(x - step)) / (2 * eps)
    # a float64 module runs in float64: central differences agree to about eps²
    np.testing.assert_allclose(p.loss_gradient(x, y), numeric, rtol=1e-6, atol=1e-8)


def test_bad_labels_are_refused(net, x) -> None:
    p = TorchPredictor(net)
    with pytest.raises(InputSpecError, match="labels for 7 inputs"):
        p.loss_gradient(x, [0, 1])
    with pytest.raises(InputSpecError, match=r"0…1"):
        p.loss_gradient(x, np.full(7, 2))
    with pytest.raises(InputSpecError, match="integers"):
        p.loss_gradient(x, np.full(7, 0.5))


def test_representations_penultimate_and_named(x) -> None:
    net = make_net(act=torch.nn.ReLU)
    p = TorchPredictor(net)
    with torch.no_grad():
        hidden = torch.relu(net[0](torch.as_tensor(x))).numpy()
        first = net[0](torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(p.representations(x), hidden, atol=1e-6)
    np.testing.assert_allclose(p.representations(x, "0"), first, atol=1e-6)
    assert p.representations(x).dtype == np.float64
    with pytest.raises(CapabilityError, match="no layer named 'head'") as err:
        p.representations(x, "head")
    assert "0, 1, 2" in (err.value.hint or "")
    with pytest.raises(CapabilityError, match="no linear layer"):
        TorchPredictor(torch.nn.Sequential(torch.nn.ReLU())).representations(x)


def test_modes_are_restored_and_eval_is_used(x) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.9), torch.nn.Linear(8, 2))
    net.train()
    net[1].eval()  # a mixed state, as it was, must come back exactly
    p = TorchPredictor(net)
    first, second = p.predict_proba(x), p.predict_proba(x)
    np.testing.assert_array_equal(first, second)  # dropout off: eval mode during the call
    p.loss_gradient(x, np.zeros(7, dtype=int))
    p.representations(x)
    assert [m.training for m in net.modules()] == [True, True, False, True]


def test_batches_give_the_same_answers(net, x) -> None:
    whole = TorchPredictor(net).predict_proba(x)
    np.testing.assert_allclose(TorchPredictor(net, batch_size=2).predict_proba(x), whole,
                               atol=1e-7)
    np.testing.assert_allclose(TorchPredictor(net, batch_size=1).representations(x),
                               TorchPredictor(net).representations(x), atol=1e-7)
    assert TorchPredictor(net).predict_proba(x[:0]).shape == (0, 2)


def test_spec_inference_and_input_checks(net) -> None:
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 6 * 6, 3))
    p = TorchPredictor(cnn)
    assert p.spec.shape == (1, None, None) and p.spec.n_classes == 3
    images = np.random.default_rng(0).random((2, 1, 8, 8))
    assert p.predict_proba(images).shape == (2, 3)
    with pytest.raises(InputSpecError, match=r"\(n, 1, \?, \?\)"):
        p.predict(np.zeros((2, 8, 8)))
    flat_first = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    assert TorchPredictor(flat_first).spec.shape is None  # Flatten: the input shape is unknown
    with pytest.raises(InputSpecError, match=r"\(n, 4\)"):
        TorchPredictor(net).predict(np.zeros((2, 5)))
    with pytest.raises(ModelError, match="not a PyTorch module"):
        TorchPredictor(object())
    with pytest.raises(ModelError, match="batch_size"):
        TorchPredictor(net, batch_size=0)


def test_a_module_returning_a_tuple_is_refused(x) -> None:
    class Pair(torch.nn.Module):
        def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return t, t

    with pytest.raises(CapabilityError, match="returns a tuple"):
        TorchPredictor(Pair()).predict(x)


def _saved_and_loaded(module: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(module, buffer)
        return torch.jit.load(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("compile_", ["script", "trace"])
def test_torchscript_sequential(compile_: str, x) -> None:
    net = make_net(act=torch.nn.ReLU)
    compiled = script(net) if compile_ == "script" else trace(net, torch.as_tensor(x[:1]))
    p = TorchPredictor(_saved_and_loaded(compiled))
    assert p.spec.shape == (4,) and p.spec.n_classes == 2
    assert p.predict(x).tolist() == _logits(net, x).argmax(1).tolist()
    np.testing.assert_allclose(p.loss_gradient(x, np.ones(7, dtype=int)),
                               TorchPredictor(net).loss_gradient(x, np.ones(7, dtype=int)),
                               atol=1e-6)
    with torch.no_grad():
        hidden = torch.relu(net[0](torch.as_tensor(x))).numpy()
    np.testing.assert_allclose(p.representations(x), hidden, atol=1e-6)
    np.testing.assert_allclose(p.representations(x, "1"), hidden, atol=1e-6)
    with pytest.raises(CapabilityError, match="no layer named 'head'"):
        p.representations(x, "head")


def test_a_traced_module_in_memory_cannot_run_layer_by_layer(x) -> None:
    p = TorchPredictor(trace(make_net(), torch.as_tensor(x[:1])))
    assert p.predict(x).shape == (7,)
    with pytest.raises(CapabilityError, match=r"torch\.jit\.save"):
        p.representations(x)


def test_a_double_precision_module_takes_double_inputs(x) -> None:
    net = make_net().double()
    p = TorchPredictor(net)
    assert p.spec.dtype == "float64"
    np.testing.assert_allclose(p.predict_proba(x), torch.softmax(_logits(net, x.astype(float)), 1),
                               atol=1e-12)


def test_torchscript_that_is_not_a_sequential_has_no_representations(x) -> None:
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return self.fc(t)

    p = TorchPredictor(script(Net()))
    assert p.predict(x).shape == (7,)
    with pytest.raises(CapabilityError, match="TorchScript"):
        p.representations(x)


def test_logits_are_the_networks_raw_scores(net, x) -> None:
    from bastion.models import Scorable

    p = TorchPredictor(net)
    assert isinstance(p, Scorable)
    np.testing.assert_allclose(p.logits(x), _logits(net, x).double().numpy(), atol=1e-6)
    one = torch.nn.Sequential(torch.nn.Linear(4, 1))  # a binary model's one score z → [0, z]
    z = _logits(one, x).double().numpy()[:, 0]
    np.testing.assert_allclose(TorchPredictor(one).logits(x), np.stack([0 * z, z], 1), atol=1e-6)
    softmax = torch.nn.Sequential(net, torch.nn.Softmax(dim=1))
    with pytest.raises(CapabilityError, match="not logits"):
        TorchPredictor(softmax).logits(x)
