"""Export → import of a large model as a signed bundle, against the raw operations a careful
person would do by hand in the same run: ``tar cf`` + ``sha256sum`` to send, ``tar xf`` +
``sha256sum`` to receive. Prints both times and the ratio.

Bastion does more on each side: export decrypts and re-verifies every blob and signs the
index; import checks both signatures, hashes while extracting, rescans the files and registers
them (hash + encrypt + fsync + sign) in the receiving catalog.

    python bench/bundle_roundtrip.py [--size-mb 512] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from bastion.catalog.bundle import export_bundle, import_bundle
from bastion.catalog.service import Catalog
from bastion.store.workspace import init_workspace
from catalog_add import make_model  # bench/ is on sys.path when a script runs


def baseline(model: Path, work: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["tar", "cf", str(work / "raw.tar"), "-C", str(model.parent), model.name], check=True
    )
    subprocess.run(["sha256sum", str(work / "raw.tar")], check=True, stdout=subprocess.DEVNULL)
    (work / "raw-out").mkdir()
    subprocess.run(["tar", "xf", str(work / "raw.tar"), "-C", str(work / "raw-out")], check=True)
    subprocess.run(
        ["sha256sum", str(work / "raw-out" / model.name)], check=True, stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        model = work / "model" / "weights.npy"
        model.parent.mkdir()
        make_model(model, args.size_mb)
        env = {"BASTION_ACTOR": "bench"}
        source = init_workspace(work / "source", env=env)
        target = init_workspace(work / "target", env=env)
        try:
            Catalog(source).add_model("big", model.parent)
            raw = baseline(model, work)
            start = time.perf_counter()
            exported = export_bundle(source, "big@1", work / "big.tar")
            middle = time.perf_counter()
            import_bundle(target, exported.path, trusted_key_ids=[exported.key_id])
            end = time.perf_counter()
        finally:
            source.close()
            target.close()
        mb = model.stat().st_size / 1024**2
        ours = end - start
        print(f"model: {mb:.0f} MiB")
        print(f"baseline tar+sha256sum, both sides: {raw:.2f} s ({mb / raw:.0f} MiB/s)")
        print(
            f"bastion export: {middle - start:.2f} s, import (verify + rescan + register): "
            f"{end - middle:.2f} s, total {ours:.2f} s ({mb / ours:.0f} MiB/s)"
        )
        print(f"ratio bastion/baseline time: {ours / raw:.2f}x")


if __name__ == "__main__":
    main()
