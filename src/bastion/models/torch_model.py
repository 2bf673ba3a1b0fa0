"""PyTorch models as predictors: an ``nn.Module`` or a TorchScript module.

    >>> import numpy as np, torch
    >>> from bastion.models.torch_model import TorchPredictor
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> p = TorchPredictor(net)
    >>> p.spec.shape, p.spec.n_classes, p.predict(np.zeros((5, 4))).shape
    ((4,), 2, (5,))

Every call runs in batches, in eval mode (each submodule's own mode is restored afterwards),
on inputs in the dtype of the module's parameters (float32 for almost every network), on their
device. Gradients come from autograd;
representations from a forward hook (the last ``Linear``'s input by default, or a named
layer's output). TorchScript modules take no hooks, so for them only the top-level children
of a scripted or traced ``nn.Sequential`` can be read, by running them in turn.

PyTorch is an optional extra (``bastion[torch]``); it is imported only here, on first use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bastion.models._scores import class_indices
from bastion.models.interface import (
    CapabilityError,
    FloatArray,
    IndexArray,
    InputSpec,
    ModelError,
    Output,
)

__all__ = ["TorchPredictor"]

_KEEPS_SHAPE: Final = frozenset({
    "Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "ReLU",
    "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh",
    "Hardtanh", "Hardswish", "Hardsigmoid", "Softplus", "Softsign", "PReLU", "LogSigmoid",
})
"""Layers that keep their input's shape: looked through when reading a network's input size."""
_CONV_DIMS: Final = {"Conv1d": 1, "Conv2d": 2, "Conv3d": 3}


def _kind(module: Any) -> str:
    """The layer type: ``nn.Linear`` → ``Linear``; TorchScript keeps it as ``original_name``;
    anything outside ``torch.nn`` is ``custom`` (its forward is not known here)."""
    import torch

    if isinstance(module, torch.jit.ScriptModule):
        return str(getattr(module, "original_name", "custom"))
    if type(module).__module__.startswith("torch.nn.modules."):
        return type(module).__name__
    return "custom"


def _chain(module: Any) -> list[Any]:
    """The layers a ``Sequential`` runs, in order (nested ones flattened); else the module."""
    if _kind(module) == "Sequential":
        return [leaf for child in module.children() for leaf in _chain(child)]
    return [module]


def _infer_spec(module: Any, dtype: str) -> InputSpec:
    """What can be read from the layers: the first layer's input size and the last linear
    layer's width, for a ``Sequential``; nothing for other modules (their forward is code)."""
    chain = _chain(module)
    shape: tuple[int | None, ...] | None = None
    for layer in chain:
        kind = _kind(layer)
        if kind in _KEEPS_SHAPE:
            continue
        weight = getattr(layer, "weight", None)
        if kind == "Linear" and weight is not None:
            shape = (int(weight.shape[1]),)
        elif kind in _CONV_DIMS and isinstance(getattr(layer, "in_channels", None), int):
            shape = (int(layer.in_channels), *([None] * _CONV_DIMS[kind]))
        break
    n_classes = None
    for layer in reversed(chain):
        kind = _kind(layer)
        if kind in ("Softmax", "LogSoftmax") or kind in _KEEPS_SHAPE:
            continue
        weight = getattr(layer, "weight", None)
        if kind == "Linear" and weight is not None:
            width = int(weight.shape[0])
            n_classes = 2 if width == 1 else width  # one score: a binary model
        break
    return InputSpec(shape=shape, dtype=dtype, n_classes=n_classes)


def _infer_output(module: Any) -> Output:
    """Probabilities after a final ``Softmax`` (or ``Sigmoid``: a binary model's one score),
    log-probabilities after ``LogSoftmax``, else logits."""
    last = _kind(_chain(module)[-1])
    return {"Softmax": Output.PROBABILITIES, "Sigmoid": Output.PROBABILITIES,
            "LogSoftmax": Output.LOG_PROBABILITIES}.get(last, Output.LOGITS)


def _log_probabilities(out: Any, output: Output) -> Any:
    """Class log-probabilities ``(n, k)`` from a batch of network outputs (autograd-safe)."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    if not isinstance(out, torch.Tensor):
        raise CapabilityError(
            f"the model returns a {type(out).__name__}, not a tensor of class scores",
            hint="wrap it so that forward returns one (n, classes) tensor")
    z = out.reshape(len(out), -1)
    tiny = torch.finfo(z.dtype).tiny
    if z.shape[1] == 1:  # one score: the positive class of a binary model
        s = z[:, 0]
        if output is Output.LOGITS:
            pos, neg = F.logsigmoid(s), F.logsigmoid(-s)
        elif output is Output.LOG_PROBABILITIES:
            pos, neg = s, torch.log1p(-torch.exp(s).clamp(max=1 - 1e-7))
        else:
            pos, neg = torch.log(s.clamp(min=tiny)), torch.log1p(-s.clamp(max=1 - 1e-7))
        return torch.stack([neg, pos], dim=1)
    if output is Output.LOGITS:
        return F.log_softmax(z, dim=1)
    if output is Output.LOG_PROBABILITIES:
        return z
    return torch.log(z.clamp(min=tiny))


class TorchPredictor:
    """A PyTorch classifier (``nn.Module`` or TorchScript) as a :class:`Predictor` that is also
    :class:`Differentiable` and :class:`Representable`.

    Args:
        module: the network; its forward takes a batch (in its parameters' dtype, float32 as
            a rule) and returns ``(n, k)`` scores.
        spec: what it takes; default read from a ``Sequential``'s layers (input size of the
            first linear or convolution layer, width of the last linear one).
        output: what the scores are; ``AUTO`` reads a final ``Softmax``/``LogSoftmax``.
        batch_size: inputs per forward pass.
    """

    def __init__(self, module: Any, *, spec: InputSpec | None = None,
                 output: Output = Output.AUTO, batch_size: int = 256) -> None:
        import torch

        if not isinstance(module, torch.nn.Module):
            raise ModelError(f"a {type(module).__name__} is not a PyTorch module")
        if batch_size < 1:
            raise ModelError(f"batch_size must be at least 1, not {batch_size}")
        self._module = module
        self._modules = tuple(module.modules())  # walked once: every call checks their modes
        first = next((p for p in module.parameters() if p.is_floating_point()), None)
        self._dtype = first.dtype if first is not None else torch.float32
        self._device = first.device if first is not None else torch.device("cpu")
        self._spec = spec or _infer_spec(module, str(self._dtype).removeprefix("torch."))
        self._output = _infer_output(module) if output is Output.AUTO else Output(output)
        self._batch_size = batch_size
        self._scripted = isinstance(module, torch.jit.ScriptModule)

    @property
    def spec(self) -> InputSpec:
        """What the module takes and tells apart."""
        return self._spec

    @property
    def module(self) -> Any:
        """The ``torch.nn.Module`` itself (for tools that wrap it, such as ART's
        ``PyTorchClassifier``)."""
        return self._module

    @property
    def output(self) -> Output:
        """What the module's scores are (never ``AUTO``)."""
        return self._output

    # ------------------------------------------------------------------- running

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """Eval mode for the call; every submodule's own mode restored after, as it was.

        Flags are set per module, not through ``train()``/``eval()`` (which recurse): a
        black-box attack makes thousands of one-row calls, and only modules in training mode
        need touching at all."""
        training = [m for m in self._modules if m.training]
        for m in training:
            m.training = False
        try:
            yield
        finally:
            for m in training:
                m.training = True

    def _batches(self, x: npt.ArrayLike) -> Iterator[Any]:
        """Checked inputs in batches, in the parameters' dtype and on their device."""
        import torch

        array = np.ascontiguousarray(self._spec.check(x))
        for start in range(0, len(array), self._batch_size):
            batch = torch.from_numpy(array[start:start + self._batch_size])
            yield batch.to(device=self._device, dtype=self._dtype)

    def _log_proba(self, x: npt.ArrayLike) -> FloatArray:
        import torch

        rows = []
        with self._evaluating(), torch.no_grad():
            for batch in self._batches(x):
                logp = _log_probabilities(self._module(batch), self._output)
                rows.append(logp.double().cpu().numpy())
        width = self._spec.n_classes or 0
        return np.concatenate(rows) if rows else np.zeros((0, width))

    def predict(self, x: npt.ArrayLike) -> IndexArray:
        """The class index of each input (argmax of the scores)."""
        return np.asarray(self._log_proba(x).argmax(axis=1), dtype=np.int64)

    def predict_proba(self, x: npt.ArrayLike) -> FloatArray:
        """Class probabilities (softmax of logits, or the module's own probabilities)."""
        return np.asarray(np.exp(self._log_proba(x)), dtype=np.float64)

    def logits(self, x: npt.ArrayLike) -> FloatArray:
        """The network's raw class scores (see :meth:`Scorable.logits`); a network that ends
        in ``Softmax`` or ``LogSoftmax`` has none to give."""
        import torch

        if self._output is not Output.LOGITS:
            raise CapabilityError(
                f"the network gives {self._output.value}, not logits: the scores before its "
                "softmax cannot be recovered from them",
                hint="save the network without its final Softmax/LogSoftmax layer, or use a "
                     "detector that reads probabilities (msp)")
        rows = []
        with self._evaluating(), torch.no_grad():
            for batch in self._batches(x):
                z = self._module(batch)
                z = z.reshape(len(z), -1)
                if z.shape[1] == 1:  # one score: the positive class of a binary model
                    z = torch.cat([torch.zeros_like(z), z], dim=1)
                rows.append(z.double().cpu().numpy())
        width = self._spec.n_classes or 0
        return np.concatenate(rows) if rows else np.zeros((0, width))

    # ----------------------------------------------------------------- gradients

    def loss_gradient(self, x: npt.ArrayLike, y: npt.ArrayLike) -> FloatArray:
        """Gradient of each input's cross-entropy loss w.r.t. that input, by autograd (see
        :meth:`Differentiable.loss_gradient`); computed in eval mode, in float32."""
        import torch
        import torch.nn.functional as F  # noqa: N812

        array = self._spec.check(x)
        targets = class_indices(y, len(array), self._spec.n_classes)
        grads = []
        start = 0
        with self._evaluating(), torch.enable_grad():
            for batch in self._batches(array):
                batch.requires_grad_(True)
                target = torch.from_numpy(targets[start:start + len(batch)]).to(batch.device)
                start += len(batch)
                loss = F.nll_loss(_log_probabilities(self._module(batch), self._output),
                                  target, reduction="sum")
                (grad,) = torch.autograd.grad(loss, batch)
                grads.append(grad.double().cpu().numpy())
        return np.concatenate(grads) if grads else np.zeros(array.shape)

    # ----------------------------------------------------------- representations

    def representations(self, x: npt.ArrayLike, layer: str | None = None) -> FloatArray:
        """Hidden representation per input, flattened: the input of the last ``Linear`` by
        default (the penultimate layer), or the output of the layer named ``layer`` (a name
        from ``module.named_modules()``)."""
        if self._scripted:
            return self._script_representations(x, layer)
        import torch

        modules = dict(self._module.named_modules())
        if layer is None:
            linears = [name for name, m in modules.items() if isinstance(m, torch.nn.Linear)]
            if not linears:
                raise CapabilityError(
                    "the model has no linear layer to take the penultimate representation from",
                    hint="name a layer with layer=… (see model.named_modules())")
            target = modules[linears[-1]]
        elif layer in modules:
            target = modules[layer]
        else:
            raise CapabilityError(
                f"the model has no layer named {layer!r}",
                hint=f"layers: {', '.join(n for n in modules if n)[:400]}")
        captured: list[Any] = []

        def hook(_m: Any, args: tuple[Any, ...], out: Any) -> None:
            # default: the last linear layer's *input*; a named layer: its output
            captured.append((args[0] if layer is None else out).detach())

        handle = target.register_forward_hook(hook)
        outputs = []
        try:
            with self._evaluating(), torch.no_grad():
                for batch in self._batches(x):
                    captured.clear()
                    self._module(batch)
                    if not captured:
                        raise CapabilityError(
                            f"layer {layer or linears[-1]!r} did not run in the forward pass",
                            hint="name a layer that the forward pass uses")
                    outputs.append(captured[0].reshape(len(batch), -1).cpu().numpy())
        finally:
            handle.remove()
        return _stack(outputs)

    def _script_representations(self, x: npt.ArrayLike, layer: str | None) -> FloatArray:
        """TorchScript takes no hooks: run a scripted ``Sequential``'s children in turn."""
        import torch

        children = list(self._module.named_children())
        if _kind(self._module) != "Sequential" or not children:
            raise CapabilityError(
                "cannot read hidden representations of this TorchScript module",
                hint="only a scripted or traced nn.Sequential can be read layer by layer; "
                     "load the nn.Module itself (safetensors weights with arch=…)")
        names = [name for name, _ in children]
        if layer is None:
            linears = [i for i, (_, m) in enumerate(children) if _kind(m) == "Linear"]
            if not linears:
                raise CapabilityError(
                    "the model has no linear layer to take the penultimate representation from",
                    hint=f"name a layer with layer=… (one of {', '.join(names)[:400]})")
            stop = linears[-1]  # run up to, not through, the last linear layer
        elif layer in names:
            stop = names.index(layer) + 1
        else:
            raise CapabilityError(
                f"the model has no layer named {layer!r}",
                hint=f"layers of this TorchScript Sequential: {', '.join(names)[:400]}")
        outputs = []
        with self._evaluating(), torch.no_grad():
            for batch in self._batches(x):
                out = batch
                for _, child in children[:stop]:
                    try:
                        out = child(out)
                    except RuntimeError as exc:  # torch.jit.trace's own submodules
                        raise CapabilityError(
                            f"cannot run the TorchScript layers one by one: {exc}",
                            hint="save it with torch.jit.save and load it back") from None
                outputs.append(out.reshape(len(batch), -1).cpu().numpy())
        return _stack(outputs)


def _stack(outputs: list[npt.NDArray[Any]]) -> FloatArray:
    if not outputs:
        return np.zeros((0, 0))
    return np.concatenate(outputs).astype(np.float64)
