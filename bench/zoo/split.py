"""The zoo's development / held-out split: sha256(name) parity, never a choice.

    python bench/zoo/split.py --check     # libraries.toml matches the rule
    python bench/zoo/split.py NAME        # which half a new library falls in
"""

from __future__ import annotations

import hashlib
import sys
import tomllib
from pathlib import Path

LIBRARIES = Path(__file__).with_name("libraries.toml")


def half(library: str) -> str:
    """``dev`` when sha256(library) is even, else ``held-out``."""
    return "dev" if int(hashlib.sha256(library.encode()).hexdigest(), 16) % 2 == 0 else "held-out"


def halves() -> dict[str, list[str]]:
    """The two halves as libraries.toml records them."""
    data = tomllib.loads(LIBRARIES.read_text("utf-8"))
    return {"dev": data["dev"]["libraries"], "held-out": data["held_out"]["libraries"]}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        wrong = [(lib, h) for h, libs in halves().items() for lib in libs if half(lib) != h]
        for lib, h in wrong:
            print(f"{lib} is listed under {h} but sha256 puts it in {half(lib)}")
        return 1 if wrong else 0
    for lib in argv:
        print(lib, half(lib))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
