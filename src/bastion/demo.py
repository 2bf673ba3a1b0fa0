"""The end-to-end demo on the embedded example (scikit-learn's digits: nothing is downloaded).

It grows with each capability. It makes a throw-away workspace, then follows two versions of a
small model through their life: the dataset is registered, each model is scanned, registered
with its lineage, signed, reviewed by someone other than its author and promoted; production is
rolled back; a booby-trapped model is refused by the scanner without ever being executed; and
the audit log proves itself intact, then catches an edit to a copy of it.
"""

from __future__ import annotations

import dataclasses
import pickle
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
from sqlalchemy import func, update

from bastion import __version__
from bastion.catalog.records import RegistrationRefusedError
from bastion.catalog.service import Catalog
from bastion.report.html import render_report
from bastion.scan import scan
from bastion.store.audit import AuditLog
from bastion.store.db import make_engine
from bastion.store.roles import Role
from bastion.store.schema import audit_entries
from bastion.store.workspace import Workspace, init_workspace

__all__ = ["DemoResult", "DemoStep", "run_demo"]

AUTHOR, REVIEWER = "ada (ML engineer)", "grace (security reviewer)"


@dataclass(frozen=True, slots=True)
class DemoStep:
    """One thing the demo did and what it showed."""

    title: str
    detail: str
    ok: bool = True


@dataclass
class DemoResult:
    """Where the demo ran and what it showed."""

    directory: Path
    report: Path
    steps: list[DemoStep] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every step showed what it should."""
        return all(step.ok for step in self.steps)


class _Booby:
    """Pickles to a call of ``os.system`` that would create a file (never run by the demo)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {self.target}",))


def run_demo(directory: Path | None = None, progress: Callable[[str], None] = print) -> DemoResult:
    """Run the demo in ``directory`` (a new temporary one by default) and write its report."""
    root = Path(tempfile.mkdtemp(prefix="bastion-demo-")) if directory is None else directory
    root.mkdir(parents=True, exist_ok=True)
    result = DemoResult(directory=root, report=root / "report.html")

    def step(title: str, detail: str, ok: bool = True) -> None:
        result.steps.append(DemoStep(title, detail, ok))
        progress(f"{'ok' if ok else 'FAILED':>6}  {title}: {detail}")

    ws = init_workspace(root, env={"BASTION_ACTOR": AUTHOR})
    with ws:
        step(
            "workspace",
            f"created {ws.settings.home}: SQLite (WAL), encrypted blob store, "
            f"P-256 signing key {ws.signer.verifying_key.key_id[:12]}…, key-encryption key (0600)",
        )
        _lifecycle(ws, root, step)
        sealed = ws.audit.checkpoint()
        verdict = ws.audit.verify()
        step(
            "audit",
            f"{verdict.entries} entries, sealed through #{sealed} by a signed "
            "checkpoint, chain intact",
            ok=verdict.ok,
        )
    step(*_tamper_demo(ws, root))
    render_report(
        result.report,
        title="Bastion demo",
        subtitle=f"bastion {__version__} · embedded example: scikit-learn digits",
        rows=[(s.title, s.detail, s.ok) for s in result.steps],
    )
    return result


def _lifecycle(ws: Workspace, root: Path, step: Callable[..., None]) -> None:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    author = Catalog(ws)
    reviewer = Catalog(
        dataclasses.replace(ws, settings=dataclasses.replace(ws.settings, actor=REVIEWER))
    )

    # 1. The dataset: registered with a card, hashed, encrypted, signed.
    digits = load_digits()
    data_dir = root / "digits-data"
    data_dir.mkdir(exist_ok=True)
    np.save(data_dir / "X.npy", digits.data)
    np.save(data_dir / "y.npy", digits.target)
    dataset = author.add_dataset(
        "digits",
        data_dir,
        card={
            "kind": "dataset",
            "description": "8x8 handwritten digits shipped with scikit-learn",
            "collection": "UCI ML hand-written digits; 43 writers",
            "sensitivity": "internal",
        },
    )
    step(
        "dataset",
        f"registered {dataset.summary.ref}: {len(digits.target)} images, "
        f"manifest sha256 {dataset.summary.digest[:12]}…, signed, encrypted at rest",
    )

    # 2. Two model versions: scanned, registered with lineage, reviewed, promoted.
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    for number, c in ((1, 1.0), (2, 0.05)):
        model = LogisticRegression(C=c, max_iter=2000).fit(x_train, y_train)
        accuracy = float(np.mean(model.predict(x_test) == y_test))
        model_dir = root / f"model-v{number}"
        model_dir.mkdir(exist_ok=True)
        joblib.dump(model, model_dir / "model.joblib")
        report = scan(model_dir)
        step(
            f"scan v{number}",
            f"{len(report.files)} file(s), no finding at medium or above "
            f"(joblib pickle checked against the allowlist)",
            ok=report.clean,
        )
        info = author.add_model(
            "digits-clf",
            model_dir,
            trained_on=[dataset.summary.ref],
            card={
                "kind": "model",
                "description": "digit classifier (logistic regression)",
                "task": "classification",
                "framework": "scikit-learn",
                "performance": [{"name": "accuracy", "value": round(accuracy, 4)}],
            },
        )
        if number == 1:
            author.grant("digits-clf", REVIEWER, Role.REVIEWER)
        author.request_review(info.summary.ref)
        reviewer.approve(info.summary.ref, "scan clean, accuracy acceptable")
        author.set_alias("digits-clf", "production", number)
        check = author.verify(info.summary.ref)
        step(
            f"model v{number}",
            f"{info.summary.ref}: accuracy {accuracy:.3f}, trained on "
            f"{dataset.summary.ref}, approved by {REVIEWER.partition(' ')[0]}, now production; "
            f"verify: {check.files} file(s), signature and digests "
            f"{'match' if check.ok else 'DO NOT match'}",
            ok=check.ok,
        )

    # 3. Lineage, then a rollback.
    lineage = author.lineage(dataset.summary.ref)
    models = sorted({n.ref for n in lineage.downstream})
    step(
        "lineage",
        f"{dataset.summary.ref} → {', '.join(models)} "
        "(if the dataset turns out poisoned, these are the models to retrain)",
        ok=models == ["digits-clf@1", "digits-clf@2"],
    )
    now = author.rollback("digits-clf")
    step("rollback", f"production moved back from digits-clf@2 to {now}", ok=now == "digits-clf@1")

    # 4. A booby-trapped model: found by reading bytes, refused, never executed.
    canary = root / "CANARY-this-file-means-the-payload-ran"
    evil_dir = root / "downloaded-model"
    evil_dir.mkdir(exist_ok=True)
    (evil_dir / "model.pkl").write_bytes(pickle.dumps(_Booby(canary)))
    try:
        author.add_model("downloaded", evil_dir)
        refused, rules = False, "none"
    except RegistrationRefusedError as exc:
        refused = True
        rules = ", ".join(sorted({f"{f.rule} ({f.severity.value})" for f in exc.findings}))
    step(
        "malicious model",
        f"a pickle calling os.system was refused at registration: {rules}; "
        f"payload executed: {'YES' if canary.exists() else 'no'}",
        ok=refused and not canary.exists(),
    )


def _tamper_demo(ws: Workspace, root: Path) -> tuple[str, str, bool]:
    """Change one recorded digest in a copy of the database; verification must name it."""
    database = ws.settings.home / "bastion.db"
    if not database.exists():  # PostgreSQL workspace: do not touch shared data
        return ("tamper check", "skipped: the workspace database is not a local SQLite file", True)
    scratch = root / "tampered-copy.db"
    shutil.copyfile(database, scratch)
    engine = make_engine(f"sqlite:///{scratch}")
    try:
        with engine.begin() as conn:
            conn.execute(
                update(audit_entries)
                .where(audit_entries.c.action == "model.add")
                .values(details=func.replace(audit_entries.c.details, '"digest":"', '"digest":"f'))
            )
        verdict = AuditLog(engine, ws.signer).verify()
    finally:
        engine.dispose()
        scratch.unlink(missing_ok=True)
    named = [p for p in verdict.problems if p.kind.value == "modified"]
    if named:
        return (
            "tamper check",
            "edited a recorded model digest in a copy of the database: "
            f"detected — {named[0].message}",
            True,
        )
    return ("tamper check", "an edited copy was NOT detected", False)
