"""ATLAS ids: every one a finding can carry is named in ``bastion.atlas``, and each is ATLAS's."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml
from tests.conftest import shared_file

from bastion import atlas

SRC = Path(__file__).resolve().parents[1] / "src" / "bastion"


def test_no_technique_id_is_written_outside_the_vocabulary() -> None:
    found = []
    for path in SRC.rglob("*.py"):
        if path.name == "atlas.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(
                r"AML\.T\d{4}(\.\d{3})?", node.value
            ):
                found.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value}")
    assert found == []


def test_every_id_and_name_is_atlas_own() -> None:
    data = yaml.safe_load(shared_file("data/atlas/ATLAS.yaml").read_text(encoding="utf-8"))
    names = {t["id"]: t["name"] for m in data["matrices"] for t in m.get("techniques", ())}
    assert {i: names.get(i) for i in atlas.NAMES} == atlas.NAMES
