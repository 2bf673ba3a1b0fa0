"""Run tools/allowlist.py in the zoo's environment, with torchvision's Python half importable.

    python bench/zoo/review.py review --observe bench/.work/zoo/dev \\
        --out src/bastion/scan/pickle/ecosystem.json

PyPI's torchvision is built for CUDA torch; beside the CPU torch its compiled ops fail to load
and timm, transformers and lightning would not import (so their classes would go unreviewed).
``build.torchvision_without_ops`` declares the two op schemas so their Python parts import.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

from build import torchvision_without_ops  # noqa: E402
from tools.allowlist import main  # noqa: E402

if __name__ == "__main__":
    torchvision_without_ops()
    sys.exit(main())
