"""Built on torch: lightning checkpoints, torchmetrics metrics, timm models, accelerate states
and Keras (torch backend) models."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from . import Zoo, recipe

# lightning --------------------------------------------------------------------------------------


def _trainer(zoo: Zoo, **kwargs: Any) -> Any:
    import lightning

    settings = {"max_epochs": 1, "accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                "enable_model_summary": False, "default_root_dir": zoo.scratch}
    return lightning.Trainer(**(settings | kwargs))


@recipe("lightning")
def lit_trainer_checkpoint(zoo: Zoo) -> None:
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from .lightning_models import TinyClassifier, TinyData

    folder = zoo.path("checkpoints")
    folder.mkdir(exist_ok=True)
    callbacks = [ModelCheckpoint(dirpath=folder, save_last=True, monitor="train_loss"),
                 EarlyStopping(monitor="train_loss", patience=3)]
    logger = CSVLogger(zoo.scratch, name="logs")
    trainer = _trainer(zoo, callbacks=callbacks, logger=logger, max_epochs=2)
    trainer.fit(TinyClassifier(), datamodule=TinyData())
    for path in sorted(folder.glob("*.ckpt")):
        zoo.add(path, "ModelCheckpoint")
    zoo.save("manual.ckpt", "trainer.save_checkpoint", trainer.save_checkpoint)
    zoo.save("weights_only.ckpt", "trainer.save_checkpoint",
             lambda p: trainer.save_checkpoint(p, weights_only=True))
    hparams = Path(logger.log_dir) / "hparams.yaml"
    zoo.save("hparams.yaml", "CSVLogger.log_hyperparams", lambda p: shutil.copy(hparams, p))


@recipe("lightning")
def lit_namespace_hparams(zoo: Zoo) -> None:
    from .lightning_models import TinyClassifier, TinyData

    args = argparse.Namespace(batch_size=8, max_epochs=1, accelerator="cpu")
    model = TinyClassifier(n_hidden=6, lr=0.05, args=args, layers=[8, 4])
    trainer = _trainer(zoo, logger=False, enable_checkpointing=False)
    trainer.fit(model, datamodule=TinyData(batch_size=4))
    zoo.save("namespace_hparams.ckpt", "trainer.save_checkpoint", trainer.save_checkpoint)


@recipe("lightning")
def lit_fabric(zoo: Zoo) -> None:
    import lightning
    import torch

    from .torch_models import TinyNet, train_steps

    fabric = lightning.Fabric(accelerator="cpu", devices=1)
    model = TinyNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer = fabric.setup(model, optimizer)
    train_steps(model, optimizer)
    state = {"model": model, "optimizer": optimizer, "step": 3, "hparams": {"lr": 0.1}}
    zoo.save("fabric_state.ckpt", "fabric.save", lambda p: fabric.save(p, state))


# torchmetrics -----------------------------------------------------------------------------------


def _metrics() -> dict[str, Any]:
    import torch
    import torchmetrics as tm

    preds = torch.tensor([0, 2, 1, 2, 0, 1])
    target = torch.tensor([0, 1, 1, 2, 0, 2])
    scores = torch.nn.functional.one_hot(preds, 3).float() * 0.8 + 0.1
    metrics = {
        "accuracy": (tm.Accuracy(task="multiclass", num_classes=3), preds),
        "f1": (tm.F1Score(task="multiclass", num_classes=3, average="macro"), preds),
        "auroc": (tm.AUROC(task="multiclass", num_classes=3), scores),
        "confusion": (tm.ConfusionMatrix(task="multiclass", num_classes=3), preds),
        "mse": (tm.MeanSquaredError(), preds.float()),
    }
    for metric, inputs in metrics.values():
        metric.update(inputs, target.float() if isinstance(metric, tm.MeanSquaredError)
                      else target)
    return {name: metric for name, (metric, _) in metrics.items()}


@recipe("torchmetrics")
def tm_metric_objects(zoo: Zoo) -> None:
    for name, metric in _metrics().items():
        zoo.torch(f"{name}_metric.pt", metric)
        zoo.pickle(f"{name}_metric", metric)


@recipe("torchmetrics")
def tm_collection(zoo: Zoo) -> None:
    import torchmetrics as tm

    metrics = _metrics()
    collection = tm.MetricCollection({"acc": metrics["accuracy"], "f1": metrics["f1"]})
    zoo.torch("metric_collection.pt", collection)
    zoo.pickle("metric_collection", collection, (2, 5))


@recipe("torchmetrics")
def tm_state_dicts(zoo: Zoo) -> None:
    metrics = _metrics()
    for metric in metrics.values():
        metric.persistent(True)
    zoo.torch("metric_states.pt", {name: m.state_dict() for name, m in metrics.items()})


# timm -------------------------------------------------------------------------------------------

TIMM_MODELS = ("test_vit", "test_resnet", "test_efficientnet", "test_convnext")


@recipe("timm")
def timm_state_dicts(zoo: Zoo) -> None:
    import timm

    for name in TIMM_MODELS:
        model = timm.create_model(name, pretrained=False, num_classes=5)
        zoo.torch(f"{name}_state_dict.pth", model.state_dict())


@recipe("timm")
def timm_whole_models(zoo: Zoo) -> None:
    import timm

    for name in TIMM_MODELS[:2]:
        zoo.torch(f"{name}_model.pt", timm.create_model(name, pretrained=False, num_classes=5))


@recipe("timm")
def timm_save_for_hf(zoo: Zoo) -> None:
    import timm
    from timm.models import save_for_hf

    model = timm.create_model("test_vit", pretrained=False, num_classes=5)
    zoo.save_dir("test_vit_hf", "timm.save_for_hf",
                 lambda d: save_for_hf(model, str(d), safe_serialization="both"))


@recipe("timm")
def timm_checkpoint_saver(zoo: Zoo) -> None:
    import timm
    import torch
    from timm.optim import create_optimizer_v2
    from timm.utils import CheckpointSaver

    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=5)
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-3)
    args = argparse.Namespace(model="test_efficientnet", lr=1e-3, epochs=2, opt="adamw",
                              batch_size=4)
    folder = zoo.path("train")
    folder.mkdir(exist_ok=True)
    saver = CheckpointSaver(model, optimizer, args=args, checkpoint_dir=str(folder),
                            recovery_dir=str(folder), max_history=2)
    for epoch, metric in enumerate((0.3, 0.5)):
        loss = model(torch.randn(2, 3, 32, 32)).sum()
        loss.backward()
        optimizer.step()
        saver.save_checkpoint(epoch, metric=metric)
    for path in sorted(folder.iterdir()):
        if path.is_file():
            zoo.add(path, "CheckpointSaver.save_checkpoint")


# accelerate -------------------------------------------------------------------------------------


class _Counter:
    """A custom object registered for checkpointing (accelerate pickles its state_dict)."""

    def __init__(self) -> None:
        self.steps = 0

    def state_dict(self) -> dict[str, int]:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.steps = state["steps"]


def _accelerated() -> tuple[Any, Any, Any]:
    import torch
    from accelerate import Accelerator

    from .torch_models import TinyNet, train_steps

    accelerator = Accelerator(cpu=True)
    model = TinyNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LinearLR(optimizer)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    train_steps(model, optimizer)
    scheduler.step()
    return accelerator, model, optimizer


@recipe("accelerate")
def acc_save_state(zoo: Zoo) -> None:
    accelerator, _, _ = _accelerated()
    counter = _Counter()
    counter.steps = 3
    accelerator.register_for_checkpointing(counter)
    zoo.save_dir("state_bin", "accelerator.save_state",
                 lambda d: accelerator.save_state(str(d), safe_serialization=False))
    zoo.save_dir("state_safetensors", "accelerator.save_state",
                 lambda d: accelerator.save_state(str(d)))


@recipe("accelerate")
def acc_save_model(zoo: Zoo) -> None:
    accelerator, model, optimizer = _accelerated()
    zoo.save_dir("model_bin", "accelerator.save_model",
                 lambda d: accelerator.save_model(model, str(d), safe_serialization=False))
    zoo.save_dir("model_safetensors", "accelerator.save_model",
                 lambda d: accelerator.save_model(model, str(d)))
    unwrapped = accelerator.unwrap_model(model)
    zoo.save("unwrapped_state_dict.pt", "accelerator.save",
             lambda p: accelerator.save(unwrapped.state_dict(), p, safe_serialization=False))
    zoo.save("optimizer.pt", "accelerator.save",
             lambda p: accelerator.save(optimizer.state_dict(), p, safe_serialization=False))


# keras ------------------------------------------------------------------------------------------


def _keras_model(custom: bool = False) -> Any:
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(4,))
    x = keras.layers.Dense(8, activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    if custom:
        from .keras_models import Scale

        x = Scale(0.5)(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="tiny")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(16, 4)), rng.integers(0, 3, 16), epochs=1, verbose=0)
    return model


@recipe("keras")
def keras_native(zoo: Zoo) -> None:
    model = _keras_model()
    zoo.save("functional.keras", "model.save", model.save)
    zoo.save("functional.weights.h5", "model.save_weights", model.save_weights)
    zoo.save("custom_layer.keras", "model.save", _keras_model(custom=True).save)


@recipe("keras")
def keras_sequential(zoo: Zoo) -> None:
    import keras

    model = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dropout(0.2), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    zoo.save("sequential.keras", "keras.saving.save_model",
             lambda p: keras.saving.save_model(model, p))
    rnn = keras.Sequential([keras.Input(shape=(5, 3)), keras.layers.LSTM(4),
                            keras.layers.Dense(2)])
    zoo.save("lstm.keras", "model.save", rnn.save)


@recipe("keras")
def keras_legacy_h5(zoo: Zoo) -> None:
    zoo.save("functional.h5", "model.save", _keras_model().save)


@recipe("keras")
def keras_pickled(zoo: Zoo) -> None:
    zoo.pickle("functional_model", _keras_model())
