"""The end-to-end demo on the embedded example (scikit-learn's digits: nothing is downloaded).

It grows with each capability. Today it makes a throw-away workspace, records the life of a
small model in the audit log, seals and verifies the chain, then shows that tampering with a copy
of the log is caught and named.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
from sqlalchemy import func, update

from bastion import __version__
from bastion.catalog.audit import AuditLog
from bastion.catalog.db import make_engine
from bastion.catalog.schema import audit_entries
from bastion.catalog.workspace import Workspace, init_workspace
from bastion.report.html import render_report

__all__ = ["DemoResult", "DemoStep", "run_demo"]


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


def run_demo(directory: Path | None = None, progress: Callable[[str], None] = print) -> DemoResult:
    """Run the demo in ``directory`` (a new temporary one by default) and write its report."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    root = Path(tempfile.mkdtemp(prefix="bastion-demo-")) if directory is None else directory
    root.mkdir(parents=True, exist_ok=True)
    result = DemoResult(directory=root, report=root / "report.html")

    def step(title: str, detail: str, ok: bool = True) -> None:
        result.steps.append(DemoStep(title, detail, ok))
        progress(f"{'ok' if ok else 'FAILED':>6}  {title}: {detail}")

    ws = init_workspace(root)
    with ws:
        step(
            "workspace",
            f"created {ws.settings.home} with a P-256 signing key "
            f"{ws.signer.verifying_key.key_id[:12]}… and a key-encryption key (0600)",
        )

        digits = load_digits()
        data_digest = hashlib.sha256(digits.data.tobytes() + digits.target.tobytes()).hexdigest()
        ws.record(
            "dataset.load",
            "digits",
            rows=len(digits.target),
            features=int(digits.data.shape[1]),
            sha256=data_digest,
        )
        step(
            "dataset",
            f"digits: {len(digits.target)} images, {digits.data.shape[1]} features, "
            f"sha256 {data_digest[:12]}…",
        )

        x_train, x_test, y_train, y_test = train_test_split(
            digits.data, digits.target, test_size=0.25, random_state=0, stratify=digits.target
        )
        model = LogisticRegression(max_iter=2000).fit(x_train / 16.0, y_train)
        accuracy = float(np.mean(model.predict(x_test / 16.0) == y_test))
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        model_path = root / "digits-logreg.joblib"
        model_path.write_bytes(buffer.getvalue())
        model_digest = hashlib.sha256(buffer.getvalue()).hexdigest()
        ws.record(
            "model.train",
            "digits-logreg",
            trained_on="digits",
            accuracy=accuracy,
            sha256=model_digest,
        )
        step(
            "model",
            f"logistic regression, test accuracy {accuracy:.3f}, sha256 {model_digest[:12]}…",
        )

        sealed = ws.audit.checkpoint()
        verdict = ws.audit.verify()
        step(
            "audit",
            f"{verdict.entries} entries, sealed through #{sealed}, chain intact",
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


def _tamper_demo(ws: Workspace, root: Path) -> tuple[str, str, bool]:
    """Change one recorded accuracy in a copy of the database; verification must name it."""
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
                .where(audit_entries.c.action == "model.train")
                .values(
                    details=func.replace(audit_entries.c.details, '"accuracy":', '"accuracy":9')
                )
            )
        verdict = AuditLog(engine, ws.signer).verify()
    finally:
        engine.dispose()
        scratch.unlink(missing_ok=True)
    named = [p for p in verdict.problems if p.kind.value == "modified"]
    if named:
        return (
            "tamper check",
            f"edited the recorded accuracy in a copy: detected — {named[0].message}",
            True,
        )
    return ("tamper check", "an edited copy was NOT detected", False)
