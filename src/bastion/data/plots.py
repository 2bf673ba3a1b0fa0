"""Plots for data reports, as PNG bytes (matplotlib, Agg backend: no display, no files)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from bastion.data.capacity import LearningCurve
from bastion.data.poisoning import PoisoningReport

__all__ = ["class_balance_plot", "learning_curve_plot", "poisoning_plot"]


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 3.6), dpi=100, layout="constrained")
    return figure, figure.add_subplot()


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def class_balance_plot(counts: Mapping[str, int]) -> bytes:
    """Bar chart of samples per class, largest first."""
    figure, axes = _figure()
    names = list(counts)[:50]
    axes.bar(range(len(names)), [counts[n] for n in names], color="#0969da")
    axes.set_xticks(range(len(names)), names, rotation=90 if len(names) > 12 else 0)
    axes.set_ylabel("samples")
    axes.set_title("class balance")
    return _png(figure)


def learning_curve_plot(curve: LearningCurve) -> bytes:
    """Validation score against training samples, with the fitted curve and the target."""
    figure, axes = _figure()
    axes.plot(curve.sizes, curve.scores, "o", color="#0969da", label="cross-validated")
    if curve.fit is not None:
        top = max(curve.sizes[-1], curve.samples_needed or 0) * 1.2
        grid = np.linspace(curve.sizes[0], top, 200)
        axes.plot(grid, curve.predict(grid), "-", color="#57606a", label="fitted c − a·n^(−b)")
    if curve.target is not None:
        axes.axhline(curve.target, color="#cf222e", linestyle="--", label="target")
    axes.set_xlabel("training samples")
    axes.set_ylabel("score")
    axes.set_title("learning curve")
    axes.legend(loc="lower right")
    return _png(figure)


def poisoning_plot(report: PoisoningReport, codes: npt.NDArray[np.intp],
                   classes: tuple[str, ...]) -> bytes:
    """Score distributions: all samples against the suspicious ones, log-scaled counts."""
    figure, axes = _figure()
    scores = report.scores
    bins = np.linspace(float(scores.min()), float(scores.max()) + 1e-9, 60)
    axes.hist(scores, bins=bins, color="#8c959f", label="all samples", log=True)
    if len(report.suspicious):
        axes.hist(scores[report.suspicious], bins=bins, color="#cf222e", label="suspicious",
                  log=True)
        flagged = sorted({classes[c] for c in codes[report.suspicious]})
        axes.set_title(f"poisoning scores ({report.method.value}); flagged in {flagged[:5]}")
    else:
        axes.set_title(f"poisoning scores ({report.method.value}); nothing flagged")
    axes.set_xlabel("score (spectral / outlier)")
    axes.set_ylabel("samples")
    axes.legend()
    return _png(figure)
