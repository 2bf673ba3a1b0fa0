"""``bastion assess``: attack-test a model against a security policy (NCSC 2.1).

Parse, call ``bastion.assess``, render. Exit codes: 0 every requirement met, 1 findings at or
above --fail-on (a failed requirement, a test that could not run or finish, a model whose
scan refused it), 2 usage or runtime error.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bastion.cli._context import State, catalog, state
from bastion.cli._output import emit_findings, write_text
from bastion.data.choices import Layout
from bastion.errors import UsageError
from bastion.findings import Severity
from bastion.report import OutputFormat

if TYPE_CHECKING:
    from bastion.assess import Assessment, Policy, Progress
    from bastion.catalog.service import Catalog

# bastion.assess (NumPy, ART, torch) loads inside each command: `bastion --help` stays fast.

app = typer.Typer(
    help=(
        "Attack-test a model against a security policy (NCSC 2.1): evasion attacks (FGSM, "
        "PGD, AutoPGD on PyTorch models; HopSkipJump and Square on any model), robust "
        "accuracy against the perturbation size ε; membership inference (NCSC 1.3, 5.1: "
        "threshold, ART black-box, LiRA) with --members TRAIN; model extraction (NCSC 3.3: "
        "a copy trained on the model's answers, per query budget and output mode, and the "
        "output fidelity and query quota that keep it away); out-of-distribution detectors "
        "(NCSC 2.6: msp, energy, Mahalanobis, k-NN; the chosen one saved for the gateway); "
        "a pruning sweep (NCSC 2.6); and a pass or fail finding for each of the policy's "
        "requirements.\n\n"
        "Start with a policy: bastion assess policy init --risk medium --output policy.yaml, "
        "then: bastion assess run model.pt --data test.npz --policy policy.yaml"
    ),
    no_args_is_help=True,
)
policy_app = typer.Typer(help="Write and check assessment policies (YAML, with a published "
                              "JSON Schema).", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


def register(root: typer.Typer) -> None:
    """Add the ``assess`` group to the root app."""
    root.add_typer(app, name="assess")


class _Bars:
    """A rich progress bar per test, on standard error."""

    def __init__(self, bar: Any) -> None:
        self._bar, self._tasks = bar, dict[str, Any]()

    def start(self, test: str, total: int) -> None:
        self._tasks[test] = self._bar.add_task(test, total=total)

    def advance(self, test: str) -> None:
        self._bar.advance(self._tasks[test])

    def stop(self, test: str) -> None:
        self._bar.stop_task(self._tasks[test])


@contextmanager
def _progress(st: State) -> Iterator[Progress | None]:
    """Bars on a terminal; nothing in pipes."""
    if not st.err_is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress("{task.description:<12}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=st.err) as bar:
        yield _Bars(bar)


def _curves(st: State, done: Assessment) -> None:
    """The figures as a table, before the findings."""
    from rich.table import Table

    from bastion.assess import EvasionResult
    from bastion.assess.interface import (
        ExtractionResult,
        MembershipResult,
        OodResult,
        PruningResult,
    )

    table = Table("test", "ε", "accuracy", "robust accuracy", "worst class", "median queries",
                  title=f"{done.source}: {done.policy.source}")
    for result in done.results:
        if isinstance(result, MembershipResult):
            _membership_table(st, result)
            continue
        if isinstance(result, ExtractionResult):
            _extraction_table(st, result)
            continue
        if isinstance(result, OodResult):
            _ood_table(st, result)
            continue
        if isinstance(result, PruningResult):
            _pruning_table(st, result)
            continue
        if not isinstance(result, EvasionResult):
            table.add_row(result.attack.display_name, "", "[red]not run[/red]", "", "", "")
            continue
        for p in result.curve:
            worst = min(p.per_class.values(), default=0.0)
            # HopSkipJump runs once for every ε: its queries are the test's, not the point's
            queries = p.median_queries if p.median_queries is not None else result.median_queries
            table.add_row(result.attack.display_name, f"{p.eps:g}", f"{p.accuracy:.3f}",
                          f"{p.robust_accuracy:.3f}", f"{worst:.3f}",
                          "" if queries is None else f"{queries:g}")
    if table.row_count:
        st.out.print(table)


def _membership_table(st: State, result: Any) -> None:
    """The membership figures, one row per attack."""
    from rich.table import Table

    from bastion.assess.interface import MembershipFigures

    def rate(value: float | None) -> str:
        return "not measurable" if value is None else f"{value:.3f}"

    table = Table("attack", "AUC", "balanced accuracy", "TPR @ 0.1% FPR", "TPR @ 1% FPR",
                  title=f"membership inference: {result.members} members, "
                        f"{result.non_members} non-members")
    for a in result.attacks:
        if isinstance(a, MembershipFigures):
            table.add_row(a.attack.display_name, f"{a.auc:.3f}", f"{a.balanced_accuracy:.3f}",
                          rate(a.tpr_at_0_1pct_fpr), rate(a.tpr_at_1pct_fpr))
        else:
            table.add_row(a.attack.display_name, "[red]not run[/red]", "", "", "")
    st.out.print(table)


def _extraction_table(st: State, result: Any) -> None:
    """The extraction figures, one row per budget and output, then the recommendation."""
    from rich.table import Table

    table = Table("queries", "output", "agreement", "surrogate accuracy", "training",
                  title=f"model extraction: {result.pool} rows to query, {result.evaluated} "
                        f"held out (model accuracy {result.target_accuracy:.3f})")
    for c in result.cells:
        table.add_row(str(c.budget), c.output.value, f"{c.agreement:.3f}", f"{c.accuracy:.3f}",
                      c.training)
    st.out.print(table)
    advice = result.recommendation
    quotas = Table("output", "max queries", title=f"recommendation: agreement ≤ "
                   f"{advice.threshold:g} ({result.threshold_source}); richest output: "
                   f"{advice.fidelity.value if advice.fidelity is not None else 'none'}")
    for mode, queries in advice.per_output.items():
        quotas.add_row(mode.value, "none safe" if queries is None else str(queries))
    st.out.print(quotas)


def _ood_table(st: State, result: Any) -> None:
    """The OoD figures, one row per detector and shift."""
    from rich.table import Table

    chosen = "none" if result.chosen is None else result.chosen.value
    table = Table("detector", "shift", "AUROC", "FPR @ 95% TPR", "note",
                  title=f"OoD detection: fitted on {result.fitted_on}, scored on "
                        f"{result.evaluated}; chosen for the gateway: {chosen}")
    for f in result.figures:
        table.add_row(f.detector.value, f.shift.value,
                      "n/a" if f.auroc is None else f"{f.auroc:.3f}",
                      "n/a" if f.fpr_at_95_tpr is None else f"{f.fpr_at_95_tpr:.3f}",
                      f.note or "")
    for name, reason in result.skipped.items():
        table.add_row(name, "", "not fitted", "", reason)
    st.out.print(table)


def _pruning_table(st: State, result: Any) -> None:
    """The pruning sweep, one row per sparsity."""
    from rich.table import Table

    chosen = "none" if result.chosen is None else f"{result.chosen:g}"
    table = Table("sparsity", "accuracy", "robust accuracy", "non-zero", "compressed bytes",
                  "ms / 1,000 rows",
                  title=f"pruning ({result.method}); sparsest within "
                        f"{result.max_accuracy_loss:g} accuracy loss: {chosen}")
    for lv in result.levels:
        table.add_row(f"{lv.sparsity:g}", f"{lv.accuracy:.3f}",
                      "" if lv.robust_accuracy is None else f"{lv.robust_accuracy:.3f}",
                      str(lv.nonzero),
                      "" if lv.compressed_bytes is None else f"{lv.compressed_bytes:,}",
                      f"{lv.latency_ms:.3g}")
    st.out.print(table)


@app.command("run")
def run(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(
        help="The model file (ONNX, TorchScript, a whole torch module, a state_dict or "
             "safetensors with --arch, a pickled/joblib/skops scikit-learn model), a "
             "registered version NAME@VER or NAME@ALIAS (verified and decrypted; the result "
             "is recorded against its digest), or a served model's Open Inference Protocol URL "
             "http(s)://HOST/v2/models/NAME (black-box tests only). A file's bytes are scanned "
             "first and it is loaded only if the scan passes.")],
    data: Annotated[Path, typer.Option(
        help="Labelled test data: .npz (X, y), X.npy (+ y.npy), CSV/Parquet with a label "
             "column, an image folder (one sub-folder per class), or a registered dataset "
             "NAME@VER.")],
    members: Annotated[Path | None, typer.Option(
        help="The membership test's members: labelled rows the model was trained on (its "
             "training data, any --data format). Without it a policy's membership test is "
             "a failed requirement. The OoD test fits its detectors on them (else on half "
             "of --data).")] = None,
    non_members: Annotated[Path | None, typer.Option(
        "--non-members", help="Labelled rows the model was not trained on, for the "
                              "membership test (default: --data, the test set); LiRA trains "
                              "its shadow models on these.")] = None,
    thief: Annotated[Path | None, typer.Option(
        help="The extraction test's query pool: inputs the attacker owns (any --data format; "
             "labels, if any, are ignored). Default: part of --data, the rest held out to "
             "score the stolen model.")] = None,
    ood: Annotated[Path | None, typer.Option(
        "--ood", help="The OoD test's own out-of-distribution inputs (any --data format; "
                      "labels, if any, are ignored), scored beside the generated shifts.")
    ] = None,
    save_ood: Annotated[Path | None, typer.Option(
        "--save-ood", help="Write the OoD test's chosen detector here (.npz, no pickle, "
                           "bound to the model's SHA-256) for the gateway. A registered "
                           "model's detector is registered in the catalog as NAME-ood.")
    ] = None,
    policy: Annotated[Path | None, typer.Option(
        help="The policy YAML (write one with: bastion assess policy init). Default: the "
             "workspace's release policy (bastion assess policy release).")] = None,
    file: Annotated[str | None, typer.Option(
        "--file", help="With NAME@VER holding several files: which one is the model.")
    ] = None,
    label: Annotated[str | None, typer.Option(
        help="Label column (default: label, target, class or y).")] = None,
    arch: Annotated[str | None, typer.Option(
        help="With state_dict or safetensors weights: package.module:factory, your code that "
             "builds the empty torch.nn.Module (imported only when named).")] = None,
    layout: Annotated[Layout, typer.Option(
        help="How a 4-D X is ordered: nchw or nhwc; auto: from the shape, else the model.")
    ] = Layout.AUTO,
    save_adversarial: Annotated[Path | None, typer.Option(
        help="Write the adversarial examples here (.npz: x, y, x_adv, eps, attack, fooled) "
             "for regression tests and adversarial training.")] = None,
    fmt: Annotated[OutputFormat, typer.Option(
        "--format", help="table, json, sarif, junit (a testcase per requirement, for CI "
                         "test reporters) or html (html needs --output: plots of accuracy "
                         "against ε, per class, and clean against adversarial images).")
    ] = OutputFormat.TABLE,
    output: Annotated[Path | None, typer.Option(
        help="Write the report here instead of stdout.")] = None,
    fail_on: Annotated[str, typer.Option(
        "--fail-on", help="Exit 1 on findings at or above this severity.")] = "high",
    max_seconds: Annotated[float | None, typer.Option(
        "--max-seconds", help="Time budget of every test for this run, in place of the "
                              "policy's (and each test's own): a test out of time is "
                              "incomplete, a failure. It makes another policy, with its own "
                              "digest: the release gate does not count it as the release "
                              "policy's.")] = None,
    no_cache: Annotated[bool, typer.Option(
        "--no-cache", help="Attack even when the same model, data and policy were assessed "
                           "before (the cached figures are replaced).")] = False,
    header: Annotated[list[str] | None, typer.Option(
        "--header", metavar="NAME:VALUE",
        help="With a URL: an HTTP header for every request (repeatable), e.g. "
             "'Authorization: Bearer …'.")] = None,
) -> None:
    """Attack MODEL with the tests POLICY names and judge each requirement.

    White-box tests need a PyTorch model; elsewhere they are reported as not run (a failure).
    The membership test needs --members (the training rows); non-members default to --data.
    ε values are radii in the model's own input units. A registered MODEL's assessment is
    stored in the catalog: under the release policy, a passing one is what `review approve`
    and `alias set NAME production VER` require. Figures are cached by model, data, policy and
    library versions: an unchanged model is not attacked again (--no-cache to force it).
    """
    from bastion.cli.data import _registered
    from bastion.models.remote import is_endpoint

    st = state(ctx)
    threshold = Severity.parse(fail_on)
    remote = is_endpoint(model)
    if header and not remote:
        raise UsageError("--header is for a model URL", hint="drop it, or give http(s)://…")
    ref = None if remote else _registered(Path(model))
    registry = _local_catalog(ctx, "assess a registered version") if ref else None
    chosen = _policy(ctx, policy, registry)  # a typo fails before anything is loaded
    if max_seconds is not None:
        chosen = chosen.with_max_seconds(max_seconds)
    if (ood is not None or save_ood is not None) and chosen.ood is None:
        raise UsageError("--ood and --save-ood are for the policy's ood test, which it does "
                         "not run", hint="add tests.ood to the policy (see: bastion assess "
                                         "policy init --risk medium)")
    how = _Run(chosen, label, arch, layout, save_adversarial, fmt, not no_cache, members,
               non_members, thief, ood)
    if remote:
        done = _assess_endpoint(ctx, st, model, _headers(header or []), data, how)
    elif registry is None or ref is None:
        done = _assess(ctx, st, Path(model), model, data, how)
    else:
        ref = registry.show(ref).summary.ref  # NAME@ALIAS → NAME@N, fixed for the record
        with tempfile.TemporaryDirectory(prefix="assess-") as scratch:
            copy = Path(scratch) / "version"
            manifest = registry.get(ref, copy)  # verified digest by digest as it decrypts
            path = copy / _model_file([f.path for f in manifest.files], file, ref)
            done = _assess(ctx, st, path, f"{ref}:{path.name}", data, how)
        passed = all(f.severity is Severity.INFO for f in done.findings)
        # a cache hit is recorded too: it is the evidence bound to this digest (it says so)
        number = registry.record_assessment(ref, policy_digest=chosen.digest, passed=passed,
                                            document=done.to_dict())
        st.say(f"recorded assessment #{number} of {ref}: {'passed' if passed else 'failed'}"
               + (" (figures from the cache)" if done.cached else ""))
        _register_detector(st, registry, ref, done)  # after the record: a refusal loses nothing
        if chosen.base_digest is not None:
            st.say(f"note: with --max-seconds the policy is another one (SHA-256 "
                   f"{chosen.digest[:16]}…, not {chosen.base_digest[:16]}…): the release gate "
                   "does not count this assessment as one under the policy as written")
    if save_ood is not None:
        _save_detector(st, done, save_ood)
    if fmt is OutputFormat.TABLE:
        _curves(st, done)
    raise typer.Exit(emit_findings(st, done.findings, tool="assess run", fmt=fmt,
                                   fail_on=threshold, output=output,
                                   summary=done.to_dict(), sections=lambda: _sections(done)))


def _save_detector(st: State, done: Assessment, path: Path) -> None:
    """``--save-ood``: the chosen detector, or why there is none."""
    detector = done.ood_detector
    if detector is None:
        raise UsageError("the OoD test fitted no detector to save",
                         hint="see the findings: no detector applied to this model")
    detector.save(path)
    st.say(f"wrote the OoD detector ({detector.kind.value}, threshold "
           f"{detector.threshold:.4g}) to {path}")


def _register_detector(st: State, registry: Catalog, ref: str, done: Assessment) -> None:
    """A registered model's chosen OoD detector, registered beside it as ``NAME-ood``
    (derived from the version: scanned, signed and audited like any version), unless its
    newest version already holds these exact bytes."""
    import hashlib

    from bastion.catalog.records import Kind
    from bastion.errors import NotFoundError

    detector = done.ood_detector
    if detector is None:
        return
    name = f"{ref.split('@', 1)[0]}-ood"
    data = detector.to_bytes()
    digest = hashlib.sha256(data).hexdigest()
    try:
        newest = registry.show(name)
    except NotFoundError:
        newest = None
    if newest is not None and any(f.get("sha256") == digest for f in newest.manifest):
        st.say(f"OoD detector unchanged: {newest.summary.ref}")
        return
    card = {"description": f"Out-of-distribution detector ({detector.kind.value}) for {ref}, "
                           "fitted by bastion assess; the gateway flags inputs scoring above "
                           f"{detector.threshold:.6g}.",
            "task": "ood-detection", "tags": ["bastion:ood-detector"]}
    with tempfile.TemporaryDirectory(prefix="ood-") as scratch:
        path = Path(scratch) / "detector.npz"
        path.write_bytes(data)
        added = registry.add(Kind.MODEL, name, path, card=card, derived_from=ref)
    st.say(f"registered the OoD detector as {added.summary.ref} (derived from {ref})")


def _headers(given: list[str]) -> dict[str, str]:
    out = {}
    for item in given:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {item!r} is not NAME:VALUE",
                             hint="e.g. --header 'Authorization: Bearer TOKEN'")
        out[name.strip()] = value.strip()
    return out


def _assess_endpoint(ctx: typer.Context, st: State, url: str, headers: dict[str, str],
                     data: Path, run: _Run) -> Assessment:
    """Attack a served model through its URL: black-box only (white-box tests: not run), never
    cached (what answers behind a URL can change without its bytes being seen)."""
    from bastion.assess import assess
    from bastion.cli.data import _load
    from bastion.data.layout import model_inputs
    from bastion.models.remote import RemotePredictor

    dataset = _load(ctx, data, run.label, layout=run.layout)
    with RemotePredictor.connect(url, headers=headers) as predictor, _progress(st) as progress:
        x = model_inputs(dataset, predictor, run.layout)
        inside, outside = _membership_data(ctx, run, predictor)
        done = assess(predictor, x, dataset.labels, run.policy, source=url, model_sha256=None,
                      images=dataset.pixels, progress=progress,
                      keep_examples=run.keep_examples, members=inside, non_members=outside,
                      thief=_thief_data(ctx, run, predictor), ood=_ood_data(ctx, run, predictor))
    if run.save_adversarial is not None:
        count = done.save_adversarial(run.save_adversarial)
        st.say(f"wrote {count} adversarial examples to {run.save_adversarial}")
    return done


def _sections(done: Assessment) -> list[Any]:
    from bastion.assess.plots import sections

    return sections(done)


@dataclass(frozen=True)
class _Run:
    """How ``assess run`` was asked to assess, whatever the target."""

    policy: Policy
    label: str | None
    arch: str | None
    layout: Layout
    save_adversarial: Path | None
    fmt: OutputFormat
    cache: bool
    members: Path | None = None
    non_members: Path | None = None
    thief: Path | None = None
    ood: Path | None = None

    @property
    def keep_examples(self) -> bool:
        """The adversarial examples are needed (saved, or drawn in the HTML report)."""
        return self.save_adversarial is not None or self.fmt is OutputFormat.HTML


def _membership_data(ctx: typer.Context, run: _Run, predictor: Any,
                     ) -> tuple[tuple[Any, Any] | None, tuple[Any, Any] | None]:
    """``--members`` and ``--non-members`` as the model takes them (each ``None`` when not
    given, or when the policy runs neither a membership nor an OoD test: nothing to read)."""
    from bastion.cli.data import _load
    from bastion.data.layout import model_inputs

    if run.policy.membership is None and run.policy.ood is None:
        return None, None
    out: list[tuple[Any, Any] | None] = []
    for flag, path in (("--members", run.members), ("--non-members", run.non_members)):
        if path is None:
            out.append(None)
            continue
        dataset = _load(ctx, path, run.label, layout=run.layout)
        if dataset.labels is None:
            raise UsageError(f"{flag} {path} has no labels",
                             hint="membership attacks read the loss on the true label: give "
                                  "labelled rows (--label names the column)")
        out.append((model_inputs(dataset, predictor, run.layout), dataset.labels))
    return out[0], out[1]


def _thief_data(ctx: typer.Context, run: _Run, predictor: Any) -> Any:
    """``--thief`` as the model takes it (``None``: not given, or no extraction test)."""
    from bastion.cli.data import _load
    from bastion.data.layout import model_inputs

    if run.policy.extraction is None or run.thief is None:
        return None
    return model_inputs(_load(ctx, run.thief, run.label, layout=run.layout), predictor,
                        run.layout)


def _ood_data(ctx: typer.Context, run: _Run, predictor: Any) -> Any:
    """``--ood`` as the model takes it (``None``: not given)."""
    from bastion.cli.data import _load
    from bastion.data.layout import model_inputs

    if run.policy.ood is None or run.ood is None:
        return None
    return model_inputs(_load(ctx, run.ood, run.label, layout=run.layout), predictor,
                        run.layout)


def _assess(ctx: typer.Context, st: State, model: Path, source: str, data: Path,
            run: _Run) -> Assessment:
    """Load (scan first), build the inputs the model takes, read the figures from the cache
    or attack, and save the examples.

    The examples are not cached: a run that needs them (--save-adversarial, --format html)
    attacks, and refreshes the cache entry. So does --no-cache.
    """
    from bastion.assess import assess
    from bastion.assess.cache import AssessmentCache, cache_key, code_digest
    from bastion.cli._arch import import_factory
    from bastion.cli.data import _load
    from bastion.data.layout import model_inputs, with_layout
    from bastion.models import load_model

    factory = import_factory(run.arch) if run.arch is not None else None
    loaded = load_model(model, arch=factory)  # scans these exact bytes first
    dataset = _load(ctx, data, run.label, layout=run.layout)
    x = model_inputs(dataset, loaded.predictor, run.layout)
    dataset = with_layout(dataset, loaded.predictor, run.layout)
    inside, outside = _membership_data(ctx, run, loaded.predictor)
    thief = _thief_data(ctx, run, loaded.predictor)
    unusual = _ood_data(ctx, run, loaded.predictor)
    architecture = code_digest(factory) if factory is not None else None
    # an --arch whose code cannot be read is not cached: the weights do not say the network
    cache = (AssessmentCache.default(home=st.home)
             if run.cache and (factory is None or architecture) else None)
    key = None if cache is None else cache_key(
        model_sha256=loaded.sha256, x=x, labels=dataset.labels, policy=run.policy,
        architecture=architecture, members=inside, non_members=outside, thief=thief,
        ood=unusual)
    if cache is not None and key is not None and not run.keep_examples:
        hit = cache.load(key, run.policy, source=source, warn=st.say)
        if hit is not None and hit.cached is not None:
            st.say(f"unchanged model, data and policy: figures from the cache "
                   f"({_when(hit.cached)}), not re-attacked")
            return hit
    with _progress(st) as progress:
        done = assess(loaded.predictor, x, dataset.labels, run.policy, source=source,
                      model_sha256=loaded.sha256, images=dataset.pixels, progress=progress,
                      keep_examples=run.keep_examples, members=inside, non_members=outside,
                      thief=thief, ood=unusual)
    if cache is not None and key is not None:
        cache.store(key, done, warn=st.say)
    if run.save_adversarial is not None:
        count = done.save_adversarial(run.save_adversarial)
        st.say(f"wrote {count} adversarial examples to {run.save_adversarial}")
    return done


def _when(stamp: str) -> str:
    """A stored UTC stamp for people: ``2026-12-04 10:31 UTC``."""
    return f"{stamp[:10]} {stamp[11:16]} UTC"


def _local_catalog(ctx: typer.Context, what: str) -> Catalog:
    """This workspace's catalog; a remote one cannot store assessments yet (fail closed)."""
    from bastion.catalog.service import Catalog

    registry = catalog(ctx)
    if not isinstance(registry, Catalog):
        raise UsageError(f"cannot {what} through a catalog server yet",
                         hint="run it where the workspace is (without BASTION_URL)")
    return registry


def _policy(ctx: typer.Context, path: Path | None, registry: Catalog | None) -> Policy:
    """The policy file given, or else the workspace's release policy."""
    from bastion.assess import Policy
    from bastion.errors import WorkspaceError

    if path is not None:
        return Policy.from_file(path)
    try:
        release = (registry or _local_catalog(ctx, "read the release policy")).release_policy()
    except WorkspaceError:
        raise UsageError("no --policy given, and no workspace to take a release policy from",
                         hint="write one: bastion assess policy init --risk medium --output "
                              "policy.yaml, then pass --policy policy.yaml") from None
    if release is None:
        raise UsageError("no --policy given, and the workspace has no release policy",
                         hint="pass --policy FILE, or set one: bastion assess policy release "
                              "FILE")
    chosen = Policy.from_mapping(release["policy"], source=f"release policy ({release['source']})")
    if chosen.digest != release["digest"]:
        raise UsageError("the stored release policy no longer matches its digest",
                         hint="set it again: bastion assess policy release FILE")
    return chosen


def _model_file(files: list[str], chosen: str | None, ref: str) -> str:
    """Which of a version's files is the model: ``--file``, or its only file."""
    if chosen is not None:
        if chosen not in files:
            raise UsageError(f"{ref} has no file {chosen!r}", hint=f"its files: {files}")
        return chosen
    if len(files) != 1:
        raise UsageError(f"{ref} holds {len(files)} files; say which is the model",
                         hint=f"--file NAME, one of {files[:10]}")
    return files[0]


@policy_app.command("init")
def policy_init(
    ctx: typer.Context,
    risk: Annotated[str, typer.Option(
        help="low: FGSM and PGD; medium: + PGD L2 and HopSkipJump; high: + AutoPGD, "
             "Square and membership inference (needs --members), more samples, steps and "
             "queries, stricter requirements.")] = "medium",
    output: Annotated[Path | None, typer.Option(
        help="Write the policy here (default: stdout).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite --output if it exists.")] = False,
) -> None:
    """Write a commented policy for a risk level, ready to edit."""
    from bastion.assess import Risk, policy_template

    st = state(ctx)
    if risk not in {r.value for r in Risk}:
        raise UsageError(f"unknown risk {risk!r}", hint="use low, medium or high")
    if output is not None and output.exists() and not force:
        raise UsageError(f"{output} exists", hint="choose another --output, or add --force")
    write_text(st, policy_template(risk), output)


@policy_app.command("release")
def policy_release(
    ctx: typer.Context,
    policy: Annotated[Path, typer.Argument(help="The policy YAML every release must pass.")],
) -> None:
    """Make POLICY the workspace's release policy: from now on `review approve` and `alias set
    NAME production VER` need a passing `bastion assess` of that version under it (or
    --accept-risk with a reason). Older assessments under another policy become stale."""
    import json

    import yaml

    from bastion.assess import Policy

    st = state(ctx)
    checked = Policy.from_file(policy)
    # The stored body is what later runs read back: its digest is the one the gate compares.
    body = json.loads(json.dumps(yaml.safe_load(policy.read_text(encoding="utf-8")),
                                 default=str))
    stored = Policy.from_mapping(body, source=str(policy))
    registry = _local_catalog(ctx, "set the release policy")
    registry.set_release_policy(stored.digest, body, str(policy))
    st.say(f"release policy: {policy} (SHA-256 {stored.digest[:16]}…, "
           f"{len(checked.requirements)} requirements)")


@policy_app.command("check")
def policy_check(
    ctx: typer.Context,
    policy: Annotated[Path, typer.Argument(help="The policy YAML.")],
) -> None:
    """Validate a policy; print what it runs and requires."""
    from bastion.assess import Policy

    st = state(ctx)
    checked = Policy.from_file(policy)
    st.out.print(f"{policy}: valid (SHA-256 {checked.digest[:16]}…); tests: "
                 f"{', '.join(checked.test_names)}", markup=False)
    for requirement in checked.requirements:
        st.out.print(f"  requires {requirement} ({requirement.severity.value})", markup=False)
