"""What to audit: requirements, pyproject, lockfiles and environments, read without executing."""

from __future__ import annotations

import importlib.metadata
import json
import sys
import venv
from pathlib import Path

import pytest

from bastion import deps


def _pairs(packages: list[deps.Package]) -> list[tuple[str, str | None]]:
    return [(p.name, p.version) for p in packages]


def test_requirements_file_features(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("idna==3.7  # pinned\n", encoding="utf-8")
    (tmp_path / "req.txt").write_text(
        "# a comment\n"
        "--index-url https://example.invalid/simple\n"
        "-r base.txt\n"
        "-c constraints.txt\n"
        "requests==2.31.0 \\\n"
        "    --hash=sha256:0123456789abcdef\n"
        "urllib3>=2\n"
        "legacy===1.0-foo\n"
        "wild==1.*\n"
        "winonly==1.0; sys_platform == 'win32'\n"
        "everywhere==2.0; python_version >= '3'\n"
        "-e ./local-project\n"
        "remote @ https://example.invalid/remote-1.0.tar.gz\n",
        encoding="utf-8",
    )
    packages = deps.from_requirements(tmp_path / "req.txt")
    assert _pairs(packages) == [
        ("idna", "3.7"),
        ("requests", "2.31.0"),
        ("urllib3", None),
        ("legacy", "1.0-foo"),
        ("wild", None),
        ("everywhere", "2.0"),
        ("./local-project", None),
        ("remote", None),
    ]
    reasons = {p.name: p.reason for p in packages if p.version is None}
    assert reasons["urllib3"] == "not pinned to one version (>=2)"
    assert reasons["./local-project"] == "editable install"
    assert reasons["remote"].startswith("installed from a URL")
    assert packages[1].source == f"{tmp_path / 'req.txt'}:5"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("numpy=>1.0\n", "req.txt:1: 'numpy=>1.0' is not a valid requirement"),
        ("-r req.txt\n", "nested deeper than"),
    ],
)
def test_bad_requirements_are_errors(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "req.txt").write_text(text, encoding="utf-8")
    with pytest.raises(deps.DepsError, match=message):
        deps.from_requirements(tmp_path / "req.txt")


def test_pyproject_dependencies_and_extras(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "1"\n'
        'dependencies = ["numpy==1.26.4", "scipy>=1.11"]\n'
        '[project.optional-dependencies]\ntorch = ["torch==2.13.0"]\n',
        encoding="utf-8",
    )
    packages = deps.from_pyproject(tmp_path / "pyproject.toml")
    assert _pairs(packages) == [("numpy", "1.26.4"), ("scipy", None), ("torch", "2.13.0")]
    (tmp_path / "poetry.toml").write_text("[tool.poetry]\nname = 'x'\n", encoding="utf-8")
    with pytest.raises(deps.DepsError, match=r"has no \[project\] table"):
        deps.from_pyproject(tmp_path / "poetry.toml")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "poetry.lock",
            '[[package]]\nname = "Jinja2"\nversion = "2.10"\noptional = false\n'
            '[[package]]\nname = "markupsafe"\nversion = "2.1.5"\n',
        ),
        (
            "uv.lock",
            'version = 1\n[[package]]\nname = "jinja2"\nversion = "2.10"\n'
            '[[package]]\nname = "markupsafe"\nversion = "2.1.5"\n'
            '[[package]]\nname = "myapp"\nsource = { editable = "." }\n',
        ),
        (
            "pylock.toml",
            'lock-version = "1.0"\ncreated-by = "test"\n'
            '[[packages]]\nname = "jinja2"\nversion = "2.10"\n'
            '[[packages]]\nname = "MarkupSafe"\nversion = "2.1.5"\n',
        ),
    ],
)
def test_toml_lockfiles(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    packages = deps.from_lockfile(tmp_path / name)
    assert [(p.key, p.version) for p in packages][:2] == [
        ("jinja2", "2.10"),
        ("markupsafe", "2.1.5"),
    ]
    if name == "uv.lock":
        assert packages[2].version is None and "no version" in packages[2].reason


def test_pipfile_lock(tmp_path: Path) -> None:
    lock = {
        "_meta": {},
        "default": {"jinja2": {"version": "==2.10"}},
        "develop": {"pytest": {"version": "==8.0.0"}, "local": {"path": "."}},
    }
    (tmp_path / "Pipfile.lock").write_text(json.dumps(lock), encoding="utf-8")
    packages = deps.from_lockfile(tmp_path / "Pipfile.lock")
    assert _pairs(packages) == [("jinja2", "2.10"), ("pytest", "8.0.0"), ("local", None)]


def test_lockfile_without_packages(tmp_path: Path) -> None:
    (tmp_path / "x.lock").write_text("version = 1\n", encoding="utf-8")
    with pytest.raises(deps.DepsError, match=r"no \[\[package\]\] entries"):
        deps.from_lockfile(tmp_path / "x.lock")


def test_current_environment_matches_importlib_metadata() -> None:
    expected = {(d.metadata["Name"], d.version) for d in importlib.metadata.distributions()}
    assert {(p.name, p.version) for p in deps.current_environment()} == expected


def _venv_with_trap(tmp_path: Path, canary: Path) -> tuple[Path, Path]:
    """A real virtual environment holding one distribution and a .pth file that would create
    the canary if any of its site machinery ran."""
    root = tmp_path / "venv"
    venv.create(root, with_pip=False, system_site_packages=False, symlinks=True)
    python = root / "bin" / "python"
    site = (
        root / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )
    dist = site / "Trap_Pkg-1.2.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: Trap_Pkg\nVersion: 1.2.3\nSummary: Name: not-this\n\n"
        "Version: 9.9.9 in the long description is not a header\n",
        encoding="utf-8",
    )
    (site / "trap.pth").write_text(f"import pathlib; pathlib.Path({str(canary)!r}).touch()\n")
    return python, site


def test_other_interpreter_is_read_not_run(tmp_path: Path, canary: Path) -> None:
    python, site = _venv_with_trap(tmp_path, canary)
    packages = deps.from_environment(python)
    assert _pairs(packages) == [("Trap_Pkg", "1.2.3")]
    assert packages[0].source == f"environment:{python}"
    assert _pairs(deps.from_site_packages(site)) == [("Trap_Pkg", "1.2.3")]
    assert not canary.exists()


def test_not_an_interpreter(tmp_path: Path) -> None:
    with pytest.raises(deps.DepsError, match="cannot ask") as info:
        deps.from_environment(tmp_path / "no-python")
    assert info.value.hint and "--site-packages" in info.value.hint


def test_collect_defaults_to_the_running_environment(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("a==1\n", encoding="utf-8")
    assert _pairs(deps.collect(requirements=[tmp_path / "r.txt"])) == [("a", "1")]
    assert len(deps.collect()) == len(deps.current_environment())
