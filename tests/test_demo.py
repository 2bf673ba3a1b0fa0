from __future__ import annotations

from pathlib import Path

from bastion.catalog.service import Catalog
from bastion.demo import run_demo
from bastion.store.workspace import Workspace


def test_demo_runs_the_whole_life_of_a_model(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(tmp_path / "demo", progress=lines.append)
    assert result.ok, lines
    steps = {s.title: s.detail for s in result.steps}
    assert "entry #3" in steps["tamper check"] and "detected" in steps["tamper check"]
    assert "refused" in steps["malicious model"]
    assert not list((tmp_path / "demo").glob("CANARY*"))
    html = result.report.read_text()
    assert "rollback" in html and "failed" not in html

    # What the demo claims is what the workspace holds.
    with Workspace.open(tmp_path / "demo" / ".bastion", env={}) as ws:
        catalog = Catalog(ws)
        production = catalog.show("digits-clf@production")
        assert production.summary.ref == "digits-clf@1"
        assert production.summary.status.value == "approved"
        approvals = [r["reviewer"] for r in production.reviews if r["decision"] == "approve"]
        assert approvals == ["grace (security reviewer)"]
        assert catalog.verify("digits-clf@2").ok
        downstream = {n.ref for n in catalog.lineage("digits@1").downstream}
        assert downstream == {"digits-clf@1", "digits-clf@2"}
        assert [v.name for v in catalog.search()].count("downloaded") == 0
        assert ws.audit.verify().ok
