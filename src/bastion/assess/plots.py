"""The HTML report of an assessment: accuracy against ε, per-class bars, clean against
adversarial images, membership inference ROC curves on log-log axes, model extraction agreement
against the query budget (log x axis), OoD score histograms per detector and shift, and the
pruning trade-off (accuracy and robust accuracy against sparsity); figures as PNG bytes
(matplotlib, Agg backend: no display, no files)."""

from __future__ import annotations

import io
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bastion.assess.interface import (
    EvasionResult,
    ExtractionResult,
    MembershipFigures,
    MembershipResult,
    Norm,
    OodResult,
    PruningResult,
    SkippedTest,
)
from bastion.assess.runner import Assessment
from bastion.report.html import Section

__all__ = ["accuracy_plot", "agreement_plot", "class_plot", "images_plot", "ood_plot",
           "pruning_plot", "roc_plot", "sections"]

_MAX_IMAGES: Final = 8


def _figure(width: float = 6.4, height: float = 3.6) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _ran(assessment: Assessment) -> list[EvasionResult]:
    return [r for r in assessment.results if isinstance(r, EvasionResult) and r.curve]


def accuracy_plot(results: list[EvasionResult], norm: Norm) -> bytes:
    """Robust accuracy against ε for every test measured in ``norm``."""
    figure = _figure()
    axes = figure.add_subplot()
    for result in (r for r in results if r.norm is norm):
        name = result.attack.display_name + ("" if result.complete else " (incomplete)")
        axes.plot([p.eps for p in result.curve], [p.robust_accuracy for p in result.curve],
                  "o-", label=name)
    axes.set_xlabel("ε (L∞)" if norm is Norm.LINF else "ε (L2)")
    axes.set_ylabel("robust accuracy")
    axes.set_ylim(-0.02, 1.02)
    axes.legend()
    axes.set_title("accuracy under attack")
    return _png(figure)


def class_plot(result: EvasionResult) -> bytes:
    """Robust accuracy per class at the test's largest ε reached, beside clean accuracy."""
    first, last = result.curve[0], result.curve[-1]
    names = list(last.per_class)
    figure = _figure()
    axes = figure.add_subplot()
    where = np.arange(len(names))
    axes.bar(where - 0.2, [first.per_class[n] for n in names], 0.4, color="#8c959f",
             label=f"ε {first.eps:g}")
    axes.bar(where + 0.2, [last.per_class[n] for n in names], 0.4, color="#cf222e",
             label=f"ε {last.eps:g}")
    axes.set_xticks(where, names, rotation=90 if len(names) > 12 else 0)
    axes.set_ylabel("robust accuracy")
    axes.set_ylim(0, 1.05)
    axes.legend()
    axes.set_title(f"{result.attack.display_name}: per class")
    return _png(figure)


def roc_plot(result: MembershipResult) -> bytes:
    """Each attack's ROC curve on log-log axes (where the low-FPR figures live), beside
    chance (TPR = FPR) and the 0.1 % and 1 % FPR lines."""
    figure = _figure(5.2, 4.4)
    axes = figure.add_subplot()
    ran = result.figures()
    low = min((p[0] for a in ran for p in a.roc if p[0] > 0), default=1e-3)
    for a in ran:
        points = [(f, t) for f, t in a.roc if f > 0 and t > 0]
        if points:
            axes.plot([f for f, _ in points], [t for _, t in points], "-",
                      label=f"{a.attack.display_name} (AUC {a.auc:.2f})")
    axes.plot([low, 1.0], [low, 1.0], ":", color="#8c959f", label="chance")
    for alpha in (0.001, 0.01):
        if alpha >= low:
            axes.axvline(alpha, color="#d0d7de", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(low, 1.0)
    axes.set_ylim(low, 1.02)
    axes.set_xlabel("false positive rate (non-members called members)")
    axes.set_ylabel("true positive rate (members found)")
    axes.legend(loc="lower right")
    axes.set_title("membership inference ROC")
    return _png(figure)


def agreement_plot(result: ExtractionResult) -> bytes:
    """The stolen model's agreement with the target against the query budget (log x), one
    line per output mode, beside the recommendation's threshold."""
    figure = _figure()
    axes = figure.add_subplot()
    for output in result.outputs:
        cells = sorted((c for c in result.cells if c.output is output), key=lambda c: c.budget)
        if cells:
            axes.plot([c.budget for c in cells], [c.agreement for c in cells], "o-",
                      label=output.value)
    axes.axhline(result.threshold, color="#cf222e", linestyle=":",
                 label=f"threshold {result.threshold:g}")
    axes.set_xscale("log")
    axes.set_xticks(list(result.budgets), [f"{b:,}" for b in result.budgets])
    axes.set_xticks([], minor=True)  # the budgets themselves, not powers of ten
    axes.set_xlabel("queries (log scale)")
    axes.set_ylabel("agreement with the model")
    axes.set_ylim(-0.02, 1.02)
    axes.legend(loc="lower right")
    axes.set_title("model extraction" + ("" if result.complete else " (incomplete)"))
    return _png(figure)


def _extraction_section(result: ExtractionResult) -> Section:
    rows = [(c.budget, c.output.value, c.queries, c.distinct, f"{c.agreement:.3f}",
             f"{c.accuracy:.3f}", c.training) for c in result.cells]
    advice = result.recommendation
    quota = [(m.value, "none safe" if q is None else q) for m, q in advice.per_output.items()]
    quota.append(("fidelity (richest safe at the smallest budget)",
                  "none" if advice.fidelity is None else advice.fidelity.value))
    return Section(
        "Model extraction", f"a surrogate trained on the model's answers, scored on "
        f"{result.evaluated} held-out rows (the model's own accuracy there: "
        f"{result.target_accuracy:.3f}); the recommendation keeps agreement at or under "
        f"{result.threshold:g} ({result.threshold_source}): the largest safe query budget per "
        "output mode, for the gateway's quotas per role.",
        figures=[agreement_plot(result)] if result.cells else [],
        tables=[(("budget", "output", "queries", "distinct", "agreement", "surrogate accuracy",
                  "training"), rows), (("output", "max queries"), quota)])


def ood_plot(result: OodResult) -> bytes:
    """Per detector, the in-distribution scores' histogram against each shift's (one panel
    per detector, densities, so sets of different sizes compare)."""
    kinds = list(dict.fromkeys(f.detector for f in result.figures if f.histogram))
    figure = _figure(3.2 * max(len(kinds), 1), 3.0)
    panels = figure.subplots(1, max(len(kinds), 1), squeeze=False)[0]
    for axes, kind in zip(panels, kinds, strict=False):
        drawn = [f for f in result.of(kind) if f.histogram]
        edges = np.asarray(drawn[0].histogram["edges"])
        centres, width = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
        inside = np.asarray(drawn[0].histogram["in"], dtype=float)
        axes.bar(centres, inside / max(inside.sum(), 1) / width, width=width, alpha=0.35,
                 color="#1f6feb", label="in-distribution")
        for f in drawn:
            f_edges = np.asarray(f.histogram["edges"])
            out = np.asarray(f.histogram["out"], dtype=float)
            axes.step(f_edges[:-1], out / max(out.sum(), 1) / np.diff(f_edges), where="post",
                      label=f"{f.shift.value} (AUROC {f.auroc:.2f})" if f.auroc is not None
                      else f.shift.value)
        if kind is result.chosen and result.threshold is not None:
            axes.axvline(result.threshold, color="#cf222e", linestyle=":", label="threshold")
        axes.set_title(kind.value + (" (chosen)" if kind is result.chosen else ""))
        axes.set_xlabel("score (higher: more unusual)")
        axes.legend(fontsize="x-small")
    panels[0].set_ylabel("density")
    return _png(figure)


def _ood_section(result: OodResult) -> Section:
    rows = [(f.detector.value, f.shift.value, "n/a" if f.auroc is None else f"{f.auroc:.3f}",
             "n/a" if f.fpr_at_95_tpr is None else f"{f.fpr_at_95_tpr:.3f}",
             str(f.out_samples), f.note or "") for f in result.figures]
    rows += [(name, "", "not fitted", "", "", reason) for name, reason in result.skipped.items()]
    chosen = "none" if result.chosen is None else (
        f"{result.chosen.value} (threshold {result.threshold:.4g})")
    return Section(
        "Out-of-distribution detection", f"detectors fitted on {result.fitted_on} rows, "
        f"scored on {result.evaluated} held-out rows against each shift: AUROC (1 tells every "
        "unusual input apart) and the share of unusual inputs let through when 95 % of "
        f"ordinary ones pass. Chosen for the gateway: {chosen}.",
        figures=[ood_plot(result)] if any(f.histogram for f in result.figures) else [],
        tables=[(("detector", "shift", "AUROC", "FPR @ 95% TPR", "unusual inputs", "note"),
                 rows)])


def pruning_plot(result: PruningResult) -> bytes:
    """Accuracy and robust accuracy against sparsity, with the allowed loss."""
    figure = _figure()
    axes = figure.add_subplot()
    levels = [lv.sparsity for lv in result.levels]
    axes.plot(levels, [lv.accuracy for lv in result.levels], "o-", label="accuracy")
    robust = [(lv.sparsity, lv.robust_accuracy) for lv in result.levels
              if lv.robust_accuracy is not None]
    if robust:
        axes.plot(*zip(*robust, strict=True), "s--", label="robust accuracy")
    if result.levels:
        floor = result.levels[0].accuracy - result.max_accuracy_loss
        axes.axhline(floor, color="#cf222e", linestyle=":",
                     label=f"allowed loss {result.max_accuracy_loss:g}")
    if result.chosen is not None:
        axes.axvline(result.chosen, color="#1a7f37", linestyle=":", label="sparsest within")
    axes.set_xlabel("sparsity")
    axes.set_ylabel("accuracy")
    axes.set_ylim(-0.02, 1.02)
    axes.legend(loc="lower left")
    axes.set_title("pruning" + ("" if result.complete else " (incomplete)"))
    return _png(figure)


def _pruning_section(result: PruningResult) -> Section:
    rows = [(f"{lv.sparsity:g}", f"{lv.accuracy:.3f}",
             "" if lv.robust_accuracy is None else f"{lv.robust_accuracy:.3f}", lv.nonzero,
             "" if lv.compressed_bytes is None else f"{lv.compressed_bytes:,}",
             f"{lv.latency_ms:.3g}") for lv in result.levels]
    return Section(
        "Pruning", f"{result.method}; the sparsest level within {result.max_accuracy_loss:g} "
        f"accuracy loss: {'none' if result.chosen is None else f'{result.chosen:g}'}.",
        figures=[pruning_plot(result)] if result.levels else [],
        tables=[(("sparsity", "accuracy", "robust accuracy", "non-zero", "compressed bytes",
                  "ms per 1,000 rows"), rows)])


def _rate(value: float | None) -> str:
    return "not measurable" if value is None else f"{value:.3f}"


def _membership_section(result: MembershipResult) -> Section:
    rows = [(a.attack.display_name, a.members, a.non_members, f"{a.auc:.3f}",
             f"{a.balanced_accuracy:.3f}", _rate(a.tpr_at_0_1pct_fpr), _rate(a.tpr_at_1pct_fpr))
            if isinstance(a, MembershipFigures) else
            (a.attack.display_name, "", "", "not run", a.reason, "", "")
            for a in result.attacks]
    return Section(
        "Membership inference", "how well each attack tells training rows (members) from "
        "others; read the true-positive rate at a low false-positive rate: an attack sure "
        "of a few members leaks them whatever its AUC. A rate needs at least 1/FPR "
        "non-members to be measured.", figures=[roc_plot(result)] if result.figures() else [],
        tables=[(("attack", "members", "non-members", "AUC", "balanced accuracy",
                  "TPR @ 0.1% FPR", "TPR @ 1% FPR"), rows)])


def _nhwc(x: npt.NDArray[Any], like: tuple[int, ...]) -> npt.NDArray[Any]:
    """Model inputs as NHWC images shaped like the data's (``like``: one image's shape)."""
    if x.ndim == 4 and x.shape[1:] != like and x.shape[2:] + x.shape[1:2] == like:
        return x.transpose(0, 2, 3, 1)
    return x.reshape(len(x), *like)


def images_plot(result: EvasionResult, like: tuple[int, ...],
                clip: tuple[float, float] = (0.0, 1.0)) -> bytes | None:
    """Clean images above the adversarial ones that fooled the model, at the largest ε
    (``None`` when none did)."""
    ex = result.examples
    if ex is None:
        return None
    mask = ex.fooled & (ex.eps == ex.eps.max(initial=0.0)) if result.attack.white_box \
        else ex.fooled
    chosen = np.flatnonzero(mask)[:_MAX_IMAGES]
    if not len(chosen):
        return None
    clean, adv = _nhwc(ex.x[chosen], like), _nhwc(ex.x_adv[chosen], like)
    figure = _figure(1.4 * len(chosen), 3.0)
    grid = figure.subplots(2, len(chosen), squeeze=False)
    for j in range(len(chosen)):
        for row, images in enumerate((clean, adv)):
            image = images[j]
            axes = grid[row][j]
            low, high = clip  # one scale for both rows: the perturbation shows as it is
            if image.shape[-1] == 1:
                axes.imshow(image[..., 0], cmap="gray", vmin=low, vmax=high)
            else:
                axes.imshow(((image - low) / (high - low)).clip(0, 1))
            axes.set_xticks([])
            axes.set_yticks([])
        grid[1][j].set_xlabel(f"ε {ex.eps[chosen[j]]:.3g}")
    grid[0][0].set_ylabel("clean")
    grid[1][0].set_ylabel("adversarial")
    return _png(figure)


def sections(assessment: Assessment) -> list[Section]:
    """The report's parts after its findings."""
    ran = _ran(assessment)
    out = [Section("Setup", tables=[(("what", "value"), [
        ("model SHA-256", assessment.model_sha256 or "(in memory)"),
        ("policy", f"{assessment.policy.source} (SHA-256 {assessment.policy.digest[:16]}…)"),
        ("seed", assessment.policy.seed), ("data SHA-256", assessment.data_sha256),
        ("input range", f"{list(assessment.clip)} (from the {assessment.clip_source})"),
        *((f"{k} version", v) for k, v in assessment.libraries.items())])])]
    rows = [(r.attack.display_name, r.norm.value, f"{p.eps:g}", f"{p.accuracy:.3f}",
             f"{p.robust_accuracy:.3f}",
             "" if p.median_queries is None else f"{p.median_queries:g}")
            for r in ran for p in r.curve]
    figures = [accuracy_plot(ran, norm) for norm in Norm if any(r.norm is norm for r in ran)]
    if assessment.policy.tests:  # evasion tests asked for (a privacy-only policy has none)
        out.append(Section("Accuracy under attack", "robust accuracy: the share of samples "
                           "every attack up to that ε left correctly classified",
                           figures=figures, tables=[(("test", "norm", "ε", "accuracy",
                                                      "robust accuracy", "median queries"),
                                                     rows)]))
        out.append(Section("Per class", figures=[class_plot(r) for r in ran]))
    out += [_membership_section(r) for r in assessment.results
            if isinstance(r, MembershipResult)]
    out += [_extraction_section(r) for r in assessment.results
            if isinstance(r, ExtractionResult)]
    out += [_ood_section(r) for r in assessment.results if isinstance(r, OodResult)]
    out += [_pruning_section(r) for r in assessment.results if isinstance(r, PruningResult)]
    skipped = [r for r in assessment.results if isinstance(r, SkippedTest)]
    if skipped:
        out.append(Section("Tests not run", tables=[(("test", "reason", "remedy"), [
            (s.attack.display_name, s.reason, s.remedy) for s in skipped])]))
    if assessment.images is not None:
        like = tuple(assessment.images.shape[1:])
        drawn = (images_plot(r, like, assessment.clip) for r in ran)
        grids = [png for png in drawn if png is not None]
        out.append(Section("Clean and adversarial images", "each test's successful examples "
                           "at its largest ε (black-box: the smallest found)", figures=grids))
    return out
