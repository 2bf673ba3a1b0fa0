"""``bastion verify`` against the OpenSSF ``model_signing`` Python API verifying the same files.

``bastion verify`` re-hashes every stored (encrypted) blob against the digest recorded when it
was written, checks the signature bundle, the files rows and the version's audit entries.
``bastion verify --deep`` also decrypts every chunk (AES-256-GCM) and re-hashes the plaintext.
``model_signing`` hashes the plaintext files from a directory (its default: per-file SHA-256 on
a thread pool) and checks the same bundle. Target: ``verify`` at least as fast (ratio >= 1.0).

    python bench/catalog_verify.py [--size-mb 1024] [--files 4]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import model_signing
import numpy as np

from bastion.catalog.service import Catalog
from bastion.store.workspace import init_workspace


def make_model(directory: Path, size_mb: int, files: int) -> None:
    directory.mkdir()
    rng = np.random.default_rng(0)
    per_file = size_mb * 1024 * 1024 // 4 // files
    for i in range(files):
        np.save(directory / f"shard-{i:02d}.npy", rng.standard_normal(per_file, dtype="float32"))
    (directory / "config.json").write_text(f'{{"shards": {files}}}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("BASTION_ACTOR", "bench")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_model(work / "model", args.size_mb, args.files)
        ws = init_workspace(work / "project")
        try:
            catalog = Catalog(ws)
            catalog.add_model("m", work / "model")
            catalog.get("m@1", work / "plain", signature=work / "m.sig")
            public_key = ws.settings.signing_key_file.with_suffix(".pub.pem")
            ours, deep, theirs = [], [], []
            for _ in range(args.rounds):  # interleaved; best of each (shared machine)
                start = time.perf_counter()
                result = catalog.verify("m@1")
                ours.append(time.perf_counter() - start)
                assert result.ok, result.problems
                start = time.perf_counter()
                result = catalog.verify("m@1", deep=True)
                deep.append(time.perf_counter() - start)
                assert result.ok, result.problems
                start = time.perf_counter()
                model_signing.verifying.Config().use_elliptic_key_verifier(
                    public_key=public_key
                ).verify(work / "plain", work / "m.sig")
                theirs.append(time.perf_counter() - start)
        finally:
            ws.close()
    mib = args.size_mb
    print(f"model: {mib} MiB in {args.files} files + config, best of {args.rounds} rounds")
    print(f"model_signing verify (API, plaintext)   {min(theirs):6.2f} s  "
          f"{mib / min(theirs):8.1f} MiB/s")
    print(f"bastion verify (stored blobs + sig)     {min(ours):6.2f} s  "
          f"{mib / min(ours):8.1f} MiB/s")
    print(f"bastion verify --deep (+ decrypt)       {min(deep):6.2f} s  "
          f"{mib / min(deep):8.1f} MiB/s")
    print(f"ratio verify (model_signing time / bastion time):        "
          f"{min(theirs) / min(ours):.2f} (target >= 1.0)")
    print(f"ratio verify --deep (model_signing time / bastion time): "
          f"{min(theirs) / min(deep):.2f}")


if __name__ == "__main__":
    main()
