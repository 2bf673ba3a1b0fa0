"""``bastion data``: dataset validation and verification (NCSC 2.2, 2.5, 2.6).

Parse, call ``bastion.data``, render. Exit codes: 0 clean, 1 findings at or above --fail-on,
2 usage or runtime error.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from bastion._fs import atomic_write
from bastion.cli._context import State, catalog, state
from bastion.cli._output import emit_findings, write_text
from bastion.data.choices import Layout, Method, Task
from bastion.errors import UsageError
from bastion.findings import Finding, Severity
from bastion.report import OutputFormat

if TYPE_CHECKING:

    from bastion.catalog.api import CatalogAPI
    from bastion.data.interface import Dataset
    from bastion.report.html import Section

# The data libraries (pandas, scipy, scikit-learn, torch) load inside each command, so that
# `bastion --help` and every other command start without them.

app = typer.Typer(
    help=(
        "Validate and verify datasets before training (NCSC 2.2, 2.5, 2.6): profile, quality "
        "checks, leakage between splits, label audits, label errors, poisoning, capacity.\n\n"
        "Datasets: CSV or Parquet (a label column), NumPy X.npy (+ y.npy) or .npz (X, y), "
        "or a folder of images with one sub-folder per class."
    ),
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    """Add the ``data`` group to the root app."""
    root.add_typer(app, name="data")

Source = Annotated[Path, typer.Argument(
    help="CSV, Parquet, .npy/.npz, an image folder, or a registered dataset NAME@VER.")]
Label = Annotated[
    str | None, typer.Option(help="Label column (default: label, target, class or y).")
]
Format = Annotated[
    OutputFormat, typer.Option("--format", help="table, json, sarif or html.")
]
Output = Annotated[Path | None, typer.Option(help="Write the report here instead of stdout.")]
FailOn = Annotated[
    str, typer.Option("--fail-on", help="Exit 1 on findings at or above this severity.")
]


def _registered(source: Path) -> str | None:
    """``NAME@VER`` when ``source`` names a registered version rather than a file."""
    text = str(source)
    return text if not source.exists() and "@" in text else None


def _load(ctx: typer.Context, source: Path, label: str | None,
          registry: CatalogAPI | None = None, layout: Layout = Layout.AUTO) -> Dataset:
    """A file or folder, or a registered ``NAME@VER`` fetched through the catalog."""
    from bastion.data.loaders import load_dataset

    ref = _registered(source)
    if ref is not None:
        return load_dataset(ref, label=label, fetch=(registry or catalog(ctx)).get,
                            layout=layout)
    return load_dataset(source, label=label, layout=layout)


def _model_and_inputs(
    dataset: Dataset, model: Path | None, arch: str | None, layout: Layout
) -> tuple[Dataset, Any, Any]:
    """The dataset (its images read in the layout the model decides), the model loaded after
    a clean scan of its bytes, and exactly the array it takes; no model: ``None`` for both."""
    if model is None:
        if arch is not None:
            raise UsageError("--arch needs --model WEIGHTS",
                             hint="e.g. --model weights.pt --arch mynets.digits:SmallCNN")
        return dataset, None, None
    from bastion.cli._arch import import_factory
    from bastion.data.layout import model_inputs, with_layout
    from bastion.models import load_model

    factory = import_factory(arch) if arch is not None else None  # the user's code, as named
    net = load_model(model, arch=factory).predictor  # scans these bytes first
    inputs = model_inputs(dataset, net, layout)
    return with_layout(dataset, net, layout), net, inputs


def _finish(
    st: State,
    findings: list[Finding],
    *,
    tool: str,
    fmt: OutputFormat,
    fail_on: str,
    output: Path | None,
    summary: dict[str, Any],
    sections: list[Section] | Callable[[], list[Section]],
) -> int:
    """Findings as table / JSON / SARIF, or an HTML report with the sections and plots
    (``sections`` may be a callable, drawn only for HTML)."""
    draw = sections if callable(sections) else lambda: sections
    return emit_findings(st, findings, tool=tool, fmt=fmt, fail_on=Severity.parse(fail_on),
                         output=output, summary=summary, sections=draw)


@app.command("profile")
def profile(ctx: typer.Context, source: Source, label: Label = None, fmt: Format =
            OutputFormat.TABLE, output: Output = None) -> None:
    """Rows, features, types, missing values, ranges, labels and image statistics."""
    from bastion.data.plots import class_balance_plot
    from bastion.data.profile import profile_dataset
    from bastion.report.html import Section, render_sections

    st = state(ctx)
    dataset = _load(ctx, source, label)
    prof = profile_dataset(dataset)
    if fmt is OutputFormat.JSON:
        write_text(st, json.dumps(prof.to_dict(), indent=2), output)
        return
    rows = [(c.name, c.dtype, c.missing, c.minimum, c.maximum, c.mean, c.distinct)
            for c in prof.columns]
    header = ("column", "type", "missing", "min", "max", "mean", "distinct")
    if fmt is OutputFormat.HTML:
        if output is None:
            raise UsageError("--format html needs --output FILE")
        sections = [Section("Columns", f"{prof.rows} rows, {prof.features} features",
                            tables=[(header, rows)])]
        if prof.label_counts:
            sections.append(Section("Labels", figures=[class_balance_plot(prof.label_counts)]))
        render_sections(output, title="bastion data profile", subtitle=prof.source,
                        findings=[], sections=sections)
        st.err.print(f"wrote {output}")
        return
    if fmt is not OutputFormat.TABLE:
        raise UsageError(f"--format {fmt.value} is not available for 'data profile'",
                         hint="use table, json or html")
    st.out.print(f"{prof.source}: {prof.kind}, {prof.rows} rows, {prof.features} features")
    table = Table(*header)
    for row in rows:
        table.add_row(*("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
                        for v in row))
    st.out.print(table)
    if prof.label_counts:
        st.out.print(f"labels ({prof.label_name}): " + ", ".join(
            f"{k}={v}" for k, v in prof.label_counts.items()))
    if prof.image:
        st.out.print(f"channel means {[round(m, 4) for m in prof.image.channel_means]}, "
                     f"sizes {prof.image.sizes}")


@app.command("check")
def check(
    ctx: typer.Context,
    source: Source,
    label: Label = None,
    schema: Annotated[Path | None, typer.Option(help="Declared schema (YAML or JSON).")] = None,
    timestamp: Annotated[str | None, typer.Option(help="Column with record times.")] = None,
    max_age_days: Annotated[float | None, typer.Option(help="Newest record's age limit.")] = None,
    near_tolerance: Annotated[float, typer.Option(
        help="Near duplicates: RMS difference per feature, in standard deviations (0: off).")
    ] = 0.01,
    fmt: Format = OutputFormat.TABLE,
    output: Output = None,
    fail_on: FailOn = "high",
) -> None:
    """Completeness, validity (--schema), consistency, duplicates, balance, timeliness."""
    from bastion.data.check import check_dataset
    from bastion.data.plots import class_balance_plot
    from bastion.data.profile import profile_dataset
    from bastion.data.schema import DataSchema
    from bastion.report.html import Section

    st = state(ctx)
    declared = DataSchema.from_file(schema) if schema else None
    dataset = _load(ctx, source, label or (declared.label if declared else None))
    findings = check_dataset(dataset, schema=declared, timestamp=timestamp,
                             max_age_days=max_age_days, near_tolerance=near_tolerance)
    prof = profile_dataset(dataset)
    sections = ([Section("Class balance", figures=[class_balance_plot(prof.label_counts)])]
                if prof.label_counts else [])
    raise typer.Exit(_finish(st, findings, tool="data check", fmt=fmt, fail_on=fail_on,
                             output=output, sections=sections,
                             summary={"source": str(source), "rows": prof.rows}))


@app.command("leakage")
def leakage(
    ctx: typer.Context,
    split: Annotated[list[str], typer.Option(
        help="NAME=PATH, once per split, training split first (e.g. train=train.csv).")],
    label: Label = None,
    near_tolerance: Annotated[float, typer.Option(help="Near copies (0: exact only).")] = 0.01,
    fmt: Format = OutputFormat.TABLE,
    output: Output = None,
    fail_on: FailOn = "high",
) -> None:
    """Exact and near-duplicate samples shared between splits (NCSC 2.5)."""
    from bastion.data.leakage import find_leakage

    st = state(ctx)
    splits: dict[str, Dataset] = {}
    for item in split:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--split {item!r} is not NAME=PATH", hint="e.g. --split test=t.csv")
        splits[name] = _load(ctx, Path(path), label)
    findings = find_leakage(splits, near_tolerance=near_tolerance)
    raise typer.Exit(_finish(st, findings, tool="data leakage", fmt=fmt, fail_on=fail_on,
                             output=output, sections=[],
                             summary={"splits": {k: len(v) for k, v in splits.items()}}))


@app.command("agreement")
def agreement(
    ctx: typer.Context,
    annotations: Annotated[Path, typer.Argument(help="CSV: one row per item, labeller, label.")],
    item: Annotated[str, typer.Option(help="Item column.")] = "item",
    labeller: Annotated[str, typer.Option(help="Labeller column.")] = "labeller",
    label: Annotated[str, typer.Option(help="Label column.")] = "label",
    min_kappa: Annotated[float, typer.Option(help="Flag labellers below this kappa.")] = 0.6,
    margin: Annotated[float, typer.Option(help="Flag labellers this far below the median.")
                      ] = 0.2,
    fmt: Format = OutputFormat.TABLE,
    output: Output = None,
    fail_on: FailOn = "high",
) -> None:
    """Several labellers: agreement (Cohen, Fleiss, Krippendorff), outliers, disputed items."""
    from bastion.data.labellers import audit_labellers, read_annotations
    from bastion.report.html import Section

    st = state(ctx)
    audit = audit_labellers(read_annotations(annotations, item=item, labeller=labeller,
                                             label=label),
                            source=str(annotations), min_kappa=min_kappa, margin=margin)
    summary = audit.to_dict()
    if fmt is OutputFormat.TABLE:
        table = Table("labeller", "items", "compared", "agreement", "kappa", "flagged")
        for s in audit.scores:
            table.add_row(s.labeller, str(s.items), str(s.compared), f"{s.agreement:.3f}",
                          f"{s.kappa:.3f}", "[red]yes[/red]" if s.flagged else "")
        st.out.print(table)
        st.out.print(f"Fleiss' kappa {audit.fleiss_kappa} over {audit.fleiss_items} items; "
                     f"Krippendorff's alpha {audit.krippendorff_alpha}")
    sections = [Section("Labellers", tables=[(
        ("labeller", "items", "agreement", "kappa", "flagged"),
        [(s.labeller, s.items, f"{s.agreement:.3f}", f"{s.kappa:.3f}", s.flagged)
         for s in audit.scores])])]
    raise typer.Exit(_finish(st, audit.findings(), tool="data agreement", fmt=fmt,
                             fail_on=fail_on, output=output, summary=summary,
                             sections=sections))


@app.command("audit-sample")
def audit_sample_cmd(
    ctx: typer.Context,
    source: Source,
    size: Annotated[int, typer.Option(min=1, help="Items to draw.")],
    output: Annotated[Path, typer.Option(help="CSV to write (fill in its verdict column).")],
    label: Label = None,
    seed: Annotated[int, typer.Option(help="Random seed (record it for reproducibility).")] = 0,
) -> None:
    """Draw a stratified random sample of rows for people to check against their labels."""
    from bastion.data.sampling import audit_sample

    st = state(ctx)
    dataset = _load(ctx, source, label)
    if dataset.labels is None:
        raise UsageError("audit-sample needs labelled data", hint="name the label with --label")
    sample = audit_sample(dataset.labels, size, seed=seed)
    write_text(st, sample.to_csv(index=False), output)
    st.err.print(f"{len(sample)} rows; write 'correct' or 'wrong' in the verdict column, then "
                 f"run: bastion data audit-result {output}")


@app.command("audit-result")
def audit_result(
    ctx: typer.Context,
    sample: Annotated[Path, typer.Argument(help="The audit-sample CSV with verdicts.")],
    confidence: Annotated[float, typer.Option(help="Confidence level.")] = 0.95,
    fmt: Format = OutputFormat.TABLE,
    output: Output = None,
) -> None:
    """Estimated label error rate with a Wilson confidence interval."""
    import pandas as pd

    from bastion.data.interface import DataError
    from bastion.data.sampling import estimate_error_rate

    st = state(ctx)
    try:
        frame = pd.read_csv(sample, dtype={"verdict": str, "label": str}, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{sample}: not a readable audit sample ({exc})") from exc
    estimate = estimate_error_rate(frame, confidence=confidence)
    if fmt is OutputFormat.JSON:
        write_text(st, json.dumps(estimate.to_dict(), indent=2), output)
        return
    if fmt is not OutputFormat.TABLE:
        raise UsageError(f"--format {fmt.value} is not available for 'data audit-result'",
                         hint="use table or json")
    st.out.print(f"label error rate {estimate.rate:.2%} "
                 f"({estimate.confidence:.0%} interval {estimate.low:.2%} – {estimate.high:.2%}); "
                 f"{estimate.errors} wrong of {estimate.reviewed} reviewed")


@app.command("label-issues")
def label_issues(
    ctx: typer.Context,
    source: Source,
    label: Label = None,
    probabilities: Annotated[Path | None, typer.Option(
        help=".npy of out-of-fold class probabilities (rows: samples; columns: sorted labels). "
             "Default: a logistic-regression baseline, 5-fold.")] = None,
    fmt: Format = OutputFormat.TABLE,
    output: Output = None,
    fail_on: FailOn = "high",
) -> None:
    """Likely label errors by confident learning (cleanlab)."""
    import numpy as np

    from bastion.data.interface import DataError
    from bastion.data.label_issues import find_label_issues

    st = state(ctx)
    dataset = _load(ctx, source, label)
    probs = None
    if probabilities is not None:
        try:
            probs = np.load(probabilities, allow_pickle=False).astype(np.float64)
        except (OSError, ValueError) as exc:
            raise DataError(f"{probabilities}: not a plain NumPy array ({exc})") from exc
    issues = find_label_issues(dataset, pred_probs=probs)
    raise typer.Exit(_finish(st, issues.findings(dataset), tool="data label-issues", fmt=fmt,
                             fail_on=fail_on, output=output, sections=[],
                             summary={"source": str(source), **issues.to_dict()}))


@app.command("split-work")
def split_work_cmd(
    ctx: typer.Context,
    labeller: Annotated[list[str], typer.Option(help="A labeller's name; repeat for each.")],
    max_fraction: Annotated[float, typer.Option(
        help="Most of the dataset any one labeller may see (e.g. 0.3).")],
    output: Annotated[Path, typer.Option(help="CSV of item,labeller assignments.")],
    items: Annotated[int | None, typer.Option(help="Number of items (or give --dataset).")
                     ] = None,
    dataset: Annotated[Path | None, typer.Option(help="Dataset whose rows are the items.")
                       ] = None,
    overlap: Annotated[float, typer.Option(help="Share of items labelled more than once.")
                       ] = 0.1,
    per_item: Annotated[int, typer.Option(help="Labellers per shared item.")] = 2,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Assign items so no labeller sees more than a set fraction, with overlap for agreement."""
    from bastion.data.sampling import split_work

    st = state(ctx)
    if (items is None) == (dataset is None):
        raise UsageError("give exactly one of --items N or --dataset PATH")
    count = items if items is not None else len(_load(ctx, dataset, None))  # type: ignore[arg-type]
    plan = split_work(count, labeller, max_fraction=max_fraction, overlap=overlap,
                      per_overlap_item=per_item, seed=seed)
    write_text(st, plan.to_csv(index=False), output)
    loads = plan["labeller"].value_counts()
    st.err.print(f"{count} items, {len(plan)} assignments; most per labeller "
                 f"{int(loads.max())} ({loads.max() / count:.1%})")


@app.command("poisoning")
def poisoning(
    ctx: typer.Context,
    source: Source,
    label: Label = None,
    model: Annotated[Path | None, typer.Option(
        help="A trained model to read: torch.save of a whole module, TorchScript, a "
             "state_dict or safetensors weights with --arch, a pickled/joblib/skops "
             "scikit-learn MLP; its bytes are scanned first, and loaded only through the "
             "scanner's allowlist.")] = None,
    arch: Annotated[str | None, typer.Option(
        help="With --model weights: package.module:factory, your code that builds the empty "
             "torch.nn.Module (imported only when named).")] = None,
    layout: Annotated[Layout, typer.Option(
        help="How a 4-D X is ordered: nchw (n, c, h, w) or nhwc (n, h, w, c); auto: from "
             "the shape, else the model's first layer.")] = Layout.AUTO,
    method: Annotated[Method, typer.Option(
        help="auto (with --model: combined; without: trigger search for arrays/images, "
             "outliers for tables), trigger, outliers, or with --model: combined, spectral, "
             "clustering.")] = Method.AUTO,
    layer: Annotated[str | None, typer.Option(
        help="With --model: the layer to read (default: the penultimate).")] = None,
    remove: Annotated[Path | None, typer.Option(
        help="Write a cleaned copy without the suspicious rows here. A registered NAME@VER "
             "source: also register it as the dataset's next version (derived_from NAME@VER, "
             "the reason in its card and the audit log); a file: + a .lineage.json record.")
    ] = None,
    register_as: Annotated[str | None, typer.Option(
        help="With --remove: register the cleaned copy as a version of this dataset instead "
             "(a new dataset if the name is new).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Save the score distributions (PNG).")
                    ] = None,
    fmt: Format = OutputFormat.TABLE,
    output: Output = None,
    fail_on: FailOn = "high",
) -> None:
    """Poisoned samples and backdoors (NCSC 2.2). With --model (the default then reads it):
    samples that look like another class and whose label survives being half-covered, found
    as a group in the model's hidden layer, whatever the trigger looks like. Without: a shared
    patch trigger, or samples sitting inside another class."""
    from bastion.catalog.cleaned import register_cleaned
    from bastion.data.clean import write_cleaned
    from bastion.data.plots import poisoning_plot
    from bastion.data.poisoning import detect_poisoning

    st = state(ctx)
    if register_as is not None and remove is None:
        raise UsageError("--register-as needs --remove OUT",
                         hint="e.g. --remove cleaned.csv --register-as NAME")
    ref = _registered(source)
    registry = catalog(ctx) if remove is not None and (ref or register_as) else None
    if registry is not None and ref is not None:
        ref = registry.show(ref).summary.ref  # NAME@ALIAS → NAME@N; unknown: fails here
        source = Path(ref)
    dataset = _load(ctx, source, label, registry, layout)
    dataset, net, inputs = _model_and_inputs(dataset, model, arch, layout)
    report = detect_poisoning(dataset, model=net, inputs=inputs, layer=layer, method=method)
    png = poisoning_plot(report, dataset.label_codes, dataset.classes)
    if plot is not None:
        atomic_write(plot, png)
    why = {"detector": f"data poisoning ({report.method.value})",
           "reason": "rows flagged as possibly poisoned (NCSC 2.2)"}
    flagged, kept = len(report.suspicious), len(dataset) - len(report.suspicious)
    if remove is not None and registry is None:
        cleaned = write_cleaned(dataset, report.suspicious, remove, **why)
        st.err.print(f"wrote {cleaned.path} ({kept} kept, {flagged} removed) and {cleaned.lineage}")
    elif remove is not None and registry is not None and flagged:
        info = register_cleaned(registry, dataset, report.suspicious, remove, derived_from=ref,
                                name=register_as or str(ref).partition("@")[0], **why)
        st.err.print(f"wrote {remove} ({kept} kept, {flagged} removed), registered as "
                     f"{info.summary.ref}")
    elif remove is not None:
        st.err.print("nothing flagged: no cleaned version written or registered")
    raise typer.Exit(_finish(st, report.findings(dataset), tool="data poisoning", fmt=fmt,
                             fail_on=fail_on, output=output,
                             sections=lambda: _poisoning_sections(report, dataset, png),
                             summary={"source": str(source), **report.to_dict()}))


def _poisoning_sections(report: Any, dataset: Any, png: bytes) -> list[Any]:
    """The HTML report's parts: overall and per-class scores, the combined method's split per
    class, and the flagged samples drawn when the data are images."""
    from bastion.data.plots import flagged_images_plot, poisoning_class_plot
    from bastion.report.html import Section

    codes, classes = dataset.label_codes, dataset.classes
    sections = [Section("Scores", f"method {report.method.value}, read at {report.layer}; "
                        f"{len(report.suspicious)} of {len(dataset)} samples flagged",
                        figures=[png, poisoning_class_plot(report, codes, classes)])]
    if report.splits:
        header = ("label", "samples", "high group", "separation (Ashman's D)", "lift",
                  "poisoned")
        rows = [(v.label, v.size, v.high_group, f"{v.separation:.2f}", f"{v.lift:.2f}",
                 "yes" if v.poisoned else "no") for v in report.splits]
        sections.append(Section(
            "Split per class", "a class is poisoned when its scores split into two clear "
            "groups (D ≥ 2.5) and the high group sits well above the dataset's median",
            tables=[(header, rows)]))
    if dataset.pixels is not None and len(report.suspicious):
        sections.append(Section(
            "Flagged samples", "highest score first, each scaled to its own range",
            figures=[flagged_images_plot(dataset.pixels, report.suspicious, codes, classes)]))
    elif len(report.suspicious):
        sections.append(Section("Flagged samples", "not drawn: the data are not images (or "
                                "their layout was not decided)"))
    return sections


@app.command("capacity")
def capacity(
    ctx: typer.Context,
    source: Source,
    label: Label = None,
    task: Annotated[Task | None, typer.Option(help="Default: guessed from the data.")] = None,
    parameters: Annotated[int | None, typer.Option(help="Your model's trainable parameters.")
                          ] = None,
    model_score: Annotated[float | None, typer.Option(
        help="Your model's cross-validated score (accuracy; R² for regression).")] = None,
    target: Annotated[float | None, typer.Option(help="Score you need.")] = None,
    fmt: Format = OutputFormat.TABLE,
    output: Output = None,
    fail_on: FailOn = "high",
) -> None:
    """Data size against the task and the model (NCSC 2.6): rules of thumb, learning curve,
    baselines (logistic regression, decision tree, gradient boosting)."""
    from bastion.data.capacity import assess_capacity
    from bastion.data.plots import learning_curve_plot
    from bastion.report.html import Section

    st = state(ctx)
    dataset = _load(ctx, source, label)
    report = assess_capacity(dataset, task=task, parameters=parameters,
                             model_score=model_score, target=target)
    if fmt is OutputFormat.TABLE:
        table = Table("baseline", "score", "± sd")
        for b in report.baselines:
            table.add_row(b.name, f"{b.score:.4f}", f"{b.spread:.4f}")
        st.out.print(table)
        curve = report.curve
        st.out.print(f"learning curve plateau {curve.plateau}; samples for target "
                     f"{curve.target}: {curve.samples_needed}")
    sections = [Section("Learning curve", figures=[learning_curve_plot(report.curve)]),
                Section("Baselines", tables=[(("model", "score", "sd"),
                                              [(b.name, f"{b.score:.4f}", f"{b.spread:.4f}")
                                               for b in report.baselines])])]
    raise typer.Exit(_finish(st, report.findings(dataset), tool="data capacity", fmt=fmt,
                             fail_on=fail_on, output=output, sections=sections,
                             summary={"source": str(source), **report.to_dict()}))
