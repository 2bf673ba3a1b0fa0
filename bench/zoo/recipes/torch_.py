"""torch: training checkpoints, whole modules, TorchScript, exported programs, quantized models,
distributed checkpoints and tensors of every dtype."""

from __future__ import annotations

import argparse
import random
from typing import Any

from . import Skip, Zoo, recipe


def _args() -> argparse.Namespace:
    return argparse.Namespace(lr=0.01, epochs=3, batch_size=8, arch="tinynet", seed=0,
                              data="./data", amp=False)


def _checkpoint(optimizer_name: str, scheduler_name: str) -> dict[str, Any]:
    import numpy as np
    import torch

    from .torch_models import TinyNet, train_steps

    model = TinyNet()
    optimizers = {
        "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        "adam": lambda p: torch.optim.Adam(p, lr=1e-3),
        "adamw": lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01),
        "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-3),
    }
    optimizer = optimizers[optimizer_name](model.parameters())
    schedulers = {
        "steplr": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
        "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10),
        "onecycle": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=20),
        "plateau": lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=1),
        "lambda": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lr_lambda=_warmup),
    }
    scheduler = schedulers[scheduler_name](optimizer)
    loss = train_steps(model, optimizer)
    if scheduler_name == "plateau":
        scheduler.step(loss)
    else:
        scheduler.step()
    return {
        "epoch": 3,
        "global_step": 3,
        "model_state_dict": model.state_dict(),
        "optimizer_state_dict": optimizer.state_dict(),
        "scheduler_state_dict": scheduler.state_dict(),
        "loss": loss,
        "best_acc": 0.5,
        "args": _args(),
        "rng_state": {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        },
    }


def _warmup(step: int) -> float:
    return min(1.0, (step + 1) / 5)


@recipe("torch")
def torch_training_checkpoints(zoo: Zoo) -> None:
    for opt, sched in (("sgd", "steplr"), ("adam", "cosine"), ("adamw", "onecycle"),
                       ("rmsprop", "plateau")):
        zoo.torch(f"checkpoint_{opt}_{sched}.pt", _checkpoint(opt, sched))
    zoo.torch("checkpoint_legacy_format.pth.tar", _checkpoint("sgd", "steplr"),
              _use_new_zipfile_serialization=False)
    zoo.torch("checkpoint_protocol4.pt", _checkpoint("adam", "cosine"), pickle_protocol=4)


@recipe("torch")
def torch_state_dicts(zoo: Zoo) -> None:
    import torch

    from .torch_models import TinyConv, TinyRNN

    zoo.torch("tinyconv_state_dict.pt", TinyConv().state_dict())
    zoo.torch("tinyrnn_state_dict.bin", TinyRNN().state_dict())
    model = TinyConv()
    optimizer = torch.optim.Adam(model.parameters())
    zoo.torch("optimizer_only.pt", optimizer.state_dict())
    zoo.torch("lambda_scheduler.pt", _checkpoint("sgd", "lambda")["scheduler_state_dict"])
    scaler = torch.amp.GradScaler("cpu")
    zoo.torch("grad_scaler.pt", scaler.state_dict())
    zoo.torch("rng_states.pth", {"torch": torch.get_rng_state(),
                                 "generator": torch.Generator().manual_seed(1).get_state()})


@recipe("torch")
def torch_whole_modules(zoo: Zoo) -> None:
    import torch
    from torch import nn

    from .torch_models import TinyConv, TinyNet

    sequential = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.LayerNorm(8), nn.Linear(8, 2))
    zoo.torch("sequential_model.pt", sequential)
    zoo.torch("tinynet_model.pt", TinyNet())
    zoo.torch("tinyconv_model.pth", TinyConv().eval())
    zoo.torch("transformer_encoder.pt", nn.TransformerEncoder(
        nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16), num_layers=1,
        enable_nested_tensor=False))
    zoo.torch("distribution.pt", torch.distributions.Normal(torch.zeros(2), torch.ones(2)))


@recipe("torch")
def torch_jit(zoo: Zoo) -> None:
    import torch

    from .torch_models import TinyConv, TinyNet, TinyRNN

    zoo.save("tinynet_scripted.pt", "torch.jit.save", torch.jit.script(TinyNet().eval()).save)
    traced = torch.jit.trace(TinyConv().eval(), torch.randn(1, 1, 8, 8))
    zoo.save("tinyconv_traced.pt", "torch.jit.save", lambda p: torch.jit.save(traced, p))
    rnn = torch.jit.trace(TinyRNN().eval(), torch.randint(0, 20, (1, 5)))
    zoo.save("tinyrnn_traced.ptl", "torch.jit.save", lambda p: torch.jit.save(rnn, p))


@recipe("torch")
def torch_export(zoo: Zoo) -> None:
    import torch

    from .torch_models import TinyNet

    program = torch.export.export(TinyNet().eval(), (torch.randn(2, 4),))
    zoo.save("tinynet.pt2", "torch.export.save", lambda p: torch.export.save(program, p))


@recipe("torch")
def torch_quantized(zoo: Zoo) -> None:
    import torch
    from torch import nn

    from .torch_models import TinyNet

    quantized = torch.ao.quantization.quantize_dynamic(TinyNet().eval(), {nn.Linear},
                                                       dtype=torch.qint8)
    zoo.torch("dynamic_quantized_state_dict.pt", quantized.state_dict())
    zoo.torch("dynamic_quantized_model.pt", quantized)
    zoo.save("dynamic_quantized_scripted.pt", "torch.jit.save",
             torch.jit.script(quantized).save)


@recipe("torch")
def torch_distributed_checkpoint(zoo: Zoo) -> None:
    import torch
    import torch.distributed.checkpoint as dcp

    from .torch_models import TinyNet, train_steps

    model = TinyNet()
    optimizer = torch.optim.Adam(model.parameters())
    train_steps(model, optimizer)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": 3}
    try:
        zoo.save_dir("dcp_checkpoint", "dcp.save",
                      lambda d: dcp.save(state, checkpoint_id=d, no_dist=True))
    except Exception as exc:
        raise Skip(f"dcp.save without a process group failed: {exc}") from exc


TENSOR_DTYPES = (
    "float32", "float64", "float16", "bfloat16", "int8", "uint8", "int16", "int32", "int64",
    "bool", "complex64", "complex128", "uint16", "uint32", "uint64",
    "float8_e4m3fn", "float8_e5m2",
)


@recipe("torch")
def torch_tensor_dtypes(zoo: Zoo) -> None:
    import torch

    base = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    tensors = {name: base.to(getattr(torch, name)) for name in TENSOR_DTYPES}
    zoo.torch("tensors_every_dtype.pt", tensors)
    for name in ("bfloat16", "float16", "int64", "bool", "complex64", "float8_e4m3fn"):
        zoo.torch(f"tensor_{name}.pt", tensors[name])
    special = {
        "quint8": torch.quantize_per_tensor(base, 0.1, 10, torch.quint8),
        "qint8_per_channel": torch.quantize_per_channel(
            base, torch.tensor([0.1, 0.2]), torch.tensor([0, 0]), 0, torch.qint8),
        "sparse_coo": base.to_sparse(),
        "sparse_csr": base.to_sparse_csr(),
        "view": base[:, 1],
        "non_contiguous": base.t(),
        "parameter": torch.nn.Parameter(base.clone()),
    }
    zoo.torch("tensors_special.pt", special)


@recipe("torch")
def torch_datasets(zoo: Zoo) -> None:
    import torch
    from torch.utils.data import TensorDataset

    data = TensorDataset(torch.randn(10, 4), torch.randint(0, 2, (10,)))
    zoo.torch("tensor_dataset.pt", data)
    vocab = [f"w{i}" for i in range(16)]
    zoo.torch("embeddings.pt", {"vectors": torch.randn(16, 8), "vocab": vocab})
