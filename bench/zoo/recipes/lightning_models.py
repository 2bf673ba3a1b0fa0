"""A tiny LightningModule and DataModule for the lightning recipes (imports lightning)."""

from __future__ import annotations

from typing import Any

import lightning
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .torch_models import TinyNet


class TinyClassifier(lightning.LightningModule):
    def __init__(self, n_in: int = 4, n_hidden: int = 8, lr: float = 0.01,
                 optimizer: str = "adam", **extra: Any) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = TinyNet(n_in, n_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class TinyData(lightning.LightningDataModule):
    def __init__(self, batch_size: int = 8, n: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()

    def train_dataloader(self) -> DataLoader[Any]:
        generator = torch.Generator().manual_seed(0)
        n = self.hparams["n"]
        data = TensorDataset(torch.randn(n, 4, generator=generator),
                             torch.randint(0, 3, (n,), generator=generator))
        return DataLoader(data, batch_size=self.hparams["batch_size"])
