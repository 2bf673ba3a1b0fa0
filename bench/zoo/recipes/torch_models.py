"""Small torch modules the torch-family recipes train and save, as a user's models.py would
hold them (imported only by those recipes: it needs torch)."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """A two-layer classifier with a buffer, like a user's own model class."""

    def __init__(self, n_in: int = 4, n_hidden: int = 8, n_out: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Dropout(0.1))
        self.head = nn.Linear(n_hidden, n_out)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class TinyConv(nn.Module):
    """Conv + batch norm + pooling, for the shapes vision code saves."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(torch.relu(self.norm(self.conv(x)))).flatten(1))


class TinyRNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.lstm = nn.LSTM(6, 5, batch_first=True)
        self.out = nn.Linear(5, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.embed(tokens))
        return self.out(hidden[:, -1])


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 3) -> float:
    """A few optimizer steps on random data, so optimizer state exists to save."""
    generator = torch.Generator().manual_seed(0)
    loss = torch.zeros(())
    for _ in range(steps):
        x = torch.randn(8, 4, generator=generator)
        y = torch.randint(0, 3, (8,), generator=generator)
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    return float(loss)
