"""Plots for data reports, as PNG bytes (matplotlib, Agg backend: no display, no files)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from bastion.data.capacity import LearningCurve
from bastion.data.poisoning import PoisoningReport

__all__ = ["class_balance_plot", "flagged_images_plot", "learning_curve_plot",
           "poisoning_class_plot", "poisoning_plot"]

_MAX_CLASSES = 40
_MAX_IMAGES = 32


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
    axes.set_xlabel(f"score ({report.method.value})")
    axes.set_ylabel("samples")
    axes.legend()
    return _png(figure)


def poisoning_class_plot(report: PoisoningReport, codes: npt.NDArray[np.intp],
                         classes: tuple[str, ...]) -> bytes:
    """Each class's scores side by side (the largest classes when there are many): a poisoned
    class shows a second group above its own, which is what the detector split off."""
    labels, counts = np.unique(codes, return_counts=True)
    shown = np.sort(labels[np.argsort(-counts, kind="stable")[:_MAX_CLASSES]])
    figure = _figure()[0]
    figure.set_size_inches(max(6.4, 0.35 * len(shown) + 2), 3.6)
    axes = figure.axes[0]
    flagged = np.zeros(len(codes), dtype=bool)
    flagged[report.suspicious] = True
    rng = np.random.default_rng(0)  # jitter only: the picture, not the result
    for x, c in enumerate(shown):
        for mask, colour in ((~flagged, "#8c959f"), (flagged, "#cf222e")):
            rows = np.flatnonzero((codes == c) & mask)
            if len(rows) > 2000:
                rows = rng.choice(rows, 2000, replace=False)
            axes.scatter(x + rng.uniform(-0.3, 0.3, len(rows)), report.scores[rows], s=4,
                         color=colour, alpha=0.6, linewidths=0)
    axes.set_xticks(range(len(shown)), [classes[c] for c in shown],
                    rotation=90 if len(shown) > 12 else 0)
    axes.set_xlabel("label" + (f" ({len(shown)} largest of {len(labels)})"
                               if len(shown) < len(labels) else ""))
    axes.set_ylabel(f"score ({report.method.value})")
    axes.set_title("scores per class; red: flagged")
    return _png(figure)


def flagged_images_plot(pixels: npt.NDArray[Any], rows: npt.NDArray[np.int64],
                        codes: npt.NDArray[np.intp], classes: tuple[str, ...]) -> bytes:
    """The first flagged samples (highest score first) drawn as images with their labels,
    each scaled to its own range: a trigger is often easiest to see."""
    from matplotlib.figure import Figure

    chosen = rows[:_MAX_IMAGES]
    columns = min(8, len(chosen))
    lines = -(-len(chosen) // columns)
    figure = Figure(figsize=(1.2 * columns, 1.35 * lines), dpi=100, layout="constrained")
    for i, row in enumerate(chosen):
        axes = figure.add_subplot(lines, columns, i + 1)
        image = np.asarray(pixels[row], dtype=np.float64)
        low, high = float(np.nanmin(image)), float(np.nanmax(image))
        image = np.nan_to_num((image - low) / (high - low if high > low else 1.0))
        if image.shape[-1] == 1:
            axes.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            axes.imshow(image[..., :3], interpolation="nearest")
        axes.set_title(f"#{row} {classes[codes[row]]}", fontsize=7)
        axes.set_axis_off()
    return _png(figure)
