from __future__ import annotations

from pathlib import Path

from bastion.demo import run_demo


def test_demo_runs_end_to_end_and_detects_tampering(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(tmp_path / "demo", progress=lines.append)
    assert result.ok, lines
    assert result.report.is_file()
    html = result.report.read_text()
    tamper = next(s for s in result.steps if s.title == "tamper check")
    assert "detected" in tamper.detail and "entry #3" in tamper.detail
    assert "tamper check" in html and "failed" not in html
    model = next(s for s in result.steps if s.title == "model")
    accuracy = float(model.detail.split("accuracy ")[1].split(",")[0])
    assert accuracy > 0.9  # a logistic regression on digits is far better than chance
