"""Dependency audit speed: Bastion's offline index against pip-audit, on the same 300 packages.

Both tools audit the same pinned requirements built from the PyPA advisory snapshot (300 packages
named in it, each at a version its records list, so the lookups find real advisories). Measured:

* the one-off import of the snapshot into Bastion's index (``import_database``);
* Bastion's audit: parse the requirements, open the index, match (best of --repeat runs);
* Bastion auditing an installed environment of 300 distributions (a site-packages directory
  of ``*.dist-info`` folders, read from disk) — the 1 s target of issue 6;
* the whole CLI, ``bastion deps audit -r … --format json``, process start included;
* baseline: ``pip-audit -r … --no-deps --disable-pip -s osv --osv-url`` against a loopback
  OSV-compatible endpoint serving the same records (tests/deps/osv_endpoint.py), one run.

    python bench/deps_audit.py [--packages 300] [--repeat 5] [--advisories ../shared/data/...]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from packaging.version import InvalidVersion, Version

from bastion import deps
from bastion.deps.database import _Loader

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ADVISORIES = ROOT.parent / "shared" / "data" / "pypa-advisory-db" / "vulns"


def _endpoint():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "osv_endpoint", ROOT / "tests" / "deps" / "osv_endpoint.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _canonical(version: str) -> bool:
    try:
        return str(Version(version)) == version
    except InvalidVersion:
        return False


def _pins(advisories: Path, n: int) -> list[tuple[str, str]]:
    """n (name, version) pairs: each package at the middle of its first record's versions."""
    pins = []
    for folder in sorted(p for p in advisories.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.yaml")):
            record = yaml.load(path.read_bytes(), Loader=_Loader)
            versions = [v for a in record.get("affected", []) for v in a.get("versions", [])]
            valid = [v for v in versions if _canonical(v)]
            if valid:
                pins.append((folder.name, valid[len(valid) // 2]))
                break
        if len(pins) == n:
            return pins
    raise SystemExit(f"only {len(pins)} packages with listed versions in {advisories}")


def _site_packages(directory: Path, pins: list[tuple[str, str]]) -> Path:
    for name, version in pins:
        dist = directory / f"{name.replace('-', '_')}-{version}.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n{'long text ' * 500}\n",
            encoding="utf-8",
        )
    return directory


def _best(repeat: int, fn) -> tuple[float, deps.DepsReport]:  # type: ignore[no-untyped-def]
    best, report = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        report = fn()
        best = min(best, time.perf_counter() - start)
    return best, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--advisories", type=Path, default=DEFAULT_ADVISORIES)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        index_file = work / "osv" / "index.sqlite"
        start = time.perf_counter()
        info = deps.import_database(args.advisories, index_file)
        import_s = time.perf_counter() - start
        print(
            f"import: {info.records} advisories in {import_s:.2f} s, "
            f"index {index_file.stat().st_size / 1e6:.1f} MB"
        )

        pins = _pins(args.advisories, args.packages)
        requirements = work / "requirements.txt"
        requirements.write_text("".join(f"{n}=={v}\n" for n, v in pins), encoding="utf-8")
        site = _site_packages(work / "site-packages", pins)

        def from_requirements() -> deps.DepsReport:
            index = deps.LocalIndex.open(index_file)
            try:
                return deps.audit(deps.from_requirements(requirements), index)
            finally:
                index.close()

        def from_environment() -> deps.DepsReport:
            index = deps.LocalIndex.open(index_file)
            try:
                return deps.audit(deps.from_site_packages(site), index)
            finally:
                index.close()

        req_s, report = _best(args.repeat, from_requirements)
        env_s, env_report = _best(args.repeat, from_environment)
        ours = {
            (f.evidence["package"], f.evidence["advisory"])
            for f in report.findings
            if f.rule == "deps.vulnerable"
        }
        env_ours = {
            (f.evidence["package"], f.evidence["advisory"])
            for f in env_report.findings
            if f.rule == "deps.vulnerable"
        }
        print(
            f"bastion, requirements ({len(pins)} pinned): {req_s * 1000:.0f} ms "
            f"(best of {args.repeat}), {len(ours)} advisories"
        )
        print(
            f"bastion, environment ({len(pins)} dist-info): {env_s * 1000:.0f} ms "
            f"(best of {args.repeat}), {len(env_ours)} advisories "
            f"[target < 1000 ms: {'met' if env_s < 1 else 'NOT met'}]"
        )

        start = time.perf_counter()
        cli = subprocess.run(
            [
                str(Path(sys.executable).with_name("bastion")),
                "deps",
                "audit",
                "-r",
                str(requirements),
                "--db",
                str(index_file),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        cli_s = time.perf_counter() - start
        if cli.returncode not in (0, 1):
            raise SystemExit(f"bastion CLI failed: {cli.stderr}")
        print(f"bastion CLI end to end: {cli_s * 1000:.0f} ms")

        index = deps.LocalIndex.open(index_file)
        records = [
            r.data
            for rs in index.records_for(
                sorted({deps.Package(n, None, "").key for n, _ in pins})
            ).values()
            for r in rs
        ]
        index.close()
        unique = list({r["id"]: r for r in records}.values())
        env = {
            **os.environ,
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1",
        }
        with _endpoint().serve(unique) as (url, requests):
            start = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip_audit",
                    "-r",
                    str(requirements),
                    "--no-deps",
                    "--disable-pip",
                    "-s",
                    "osv",
                    "--osv-url",
                    f"{url}/v1/query",
                    "-f",
                    "json",
                    "--progress-spinner",
                    "off",
                    "--cache-dir",
                    str(work / "cache"),
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            pip_audit_s = time.perf_counter() - start
        if done.returncode not in (0, 1):
            raise SystemExit(f"pip-audit failed: {done.stderr}")
        theirs = set()
        for dependency in json.loads(done.stdout)["dependencies"]:
            for vuln in dependency["vulns"]:
                ids = {vuln["id"], *vuln["aliases"]}
                theirs.add(
                    (
                        dependency["name"],
                        next(i for i in sorted(ids) if i.startswith("PYSEC"))
                        if any(i.startswith("PYSEC") for i in ids)
                        else vuln["id"],
                    )
                )
        print(
            f"pip-audit (OSV mode, loopback endpoint, {len(requests)} requests): "
            f"{pip_audit_s * 1000:.0f} ms, {len(theirs)} advisories"
        )
        ours_keyed = {(deps.Package(n, None, "").key, i) for n, i in ours}
        print(
            f"same advisories: {ours_keyed == theirs} "
            f"(only bastion: {len(ours_keyed - theirs)}, "
            f"only pip-audit: {len(theirs - ours_keyed)})"
        )
        for name, ident in sorted(ours_keyed ^ theirs)[:5]:
            side = "bastion" if (name, ident) in ours_keyed else "pip-audit"
            print(f"  only {side}: {name} {ident}")
        print(
            f"ratio pip-audit / bastion: requirements {pip_audit_s / req_s:.0f}x, "
            f"CLI end to end {pip_audit_s / cli_s:.1f}x"
        )


if __name__ == "__main__":
    main()
