"""What to audit: packages and versions from requirements files, ``pyproject.toml``, lockfiles,
and installed environments.

Nothing here executes the input. Requirements are parsed as text (PEP 508 through ``packaging``);
environments are read from their ``*.dist-info`` / ``*.egg-info`` metadata files. For another
interpreter (``--python``), Bastion runs it once with ``-I -S`` (isolated, no ``site``: no
``.pth`` file or ``sitecustomize`` runs) only to learn its site-packages directories, then reads
the metadata itself. A requirement without an exact ``==`` version comes back with
``version=None`` and a reason, so the audit reports it instead of passing it.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from packaging.markers import InvalidMarker
from packaging.requirements import InvalidRequirement, Requirement

from bastion.deps.interface import DepsError, Package

__all__ = [
    "collect",
    "current_environment",
    "from_environment",
    "from_lockfile",
    "from_pyproject",
    "from_requirement",
    "from_requirements",
    "from_site_packages",
]

_MAX_INCLUDE_DEPTH: Final = 10
# Runs under -I -S: the standard library only, before any site-specific code could load.
_PATHS_SCRIPT: Final = r"""
import json, os, sys, sysconfig
exe = os.path.dirname(os.path.abspath(sys.executable))
prefix, system = sys.prefix, False
for d in (exe, os.path.dirname(exe)):
    cfg = os.path.join(d, "pyvenv.cfg")
    if os.path.isfile(cfg):
        prefix = d
        with open(cfg, encoding="utf-8") as f:
            for line in f:
                k, _, v = line.partition("=")
                if k.strip() == "include-system-site-packages":
                    system = v.strip().lower() == "true"
        break
def paths(base):
    p = sysconfig.get_paths(vars={"base": base, "platbase": base})
    return [p["purelib"], p["platlib"]]
dirs = paths(prefix) + (paths(sys.base_prefix) if system else [])
print(json.dumps({"paths": dirs, "prefix": prefix}))
"""


def from_requirement(line: str, source: str) -> Package:
    """One PEP 508 requirement as a package, exact only when pinned with ``==`` or ``===``."""
    try:
        req = Requirement(line)
    except InvalidRequirement as exc:
        raise DepsError(f"{source}: {line!r} is not a valid requirement ({exc})") from None
    if req.url:
        return Package(req.name, None, source, f"installed from a URL ({req.url})")
    pins = [s for s in req.specifier if s.operator in ("==", "===") and not s.version.endswith("*")]
    if len(pins) == 1 and len(req.specifier) == 1:
        return Package(req.name, pins[0].version, source)
    spec = str(req.specifier) or "any version"
    return Package(req.name, None, source, f"not pinned to one version ({spec})")


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines with ``\\`` continuations joined and comments removed, with their first line number."""
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not buffer:
            start = number
        if raw.endswith("\\"):
            buffer += raw[:-1] + " "
            continue
        line = buffer + raw
        buffer = ""
        if line.lstrip().startswith("#"):
            continue
        line = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if line:
            yield start, line


def from_requirements(path: Path, _depth: int = 0) -> list[Package]:
    """A pip requirements file; ``-r`` includes are followed, ``-c`` constraints add nothing.

    Markers are evaluated for this interpreter; requirements whose markers are false are not part
    of the set. Editable installs and URLs cannot be audited and come back unresolved.
    """
    if _depth > _MAX_INCLUDE_DEPTH:
        raise DepsError(f"{path}: -r includes nested deeper than {_MAX_INCLUDE_DEPTH}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DepsError(
            f"cannot read {path}: {exc}", hint="pass a readable requirements file"
        ) from None
    packages: list[Package] = []
    for number, line in _logical_lines(text):
        where = f"{path}:{number}"
        option, _, value = line.partition(" ")
        if option in ("-r", "--requirement") or line.startswith(("-r", "--requirement=")):
            target = value.strip() or line.removeprefix("--requirement=").removeprefix("-r")
            packages += from_requirements(path.parent / target.strip(), _depth + 1)
            continue
        if option in ("-e", "--editable") or line.startswith("--editable="):
            packages.append(Package(value.strip() or line, None, where, "editable install"))
            continue
        if line.startswith("-"):
            continue  # -c, --hash-only lines, index options: they add no package
        requirement = line.split(" --", 1)[0].strip()  # drop per-requirement --hash options
        package = from_requirement(requirement, where)
        try:
            marker = Requirement(requirement).marker
            if marker is not None and not marker.evaluate():
                continue
        except (InvalidRequirement, InvalidMarker) as exc:
            raise DepsError(f"{where}: cannot evaluate the marker ({exc})") from None
        packages.append(package)
    return packages


def _toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DepsError(f"cannot read {path} as TOML: {exc}") from None


def from_pyproject(path: Path) -> list[Package]:
    """``[project] dependencies`` and every ``optional-dependencies`` group of a pyproject.toml."""
    project = _toml(path).get("project")
    if not isinstance(project, dict):
        raise DepsError(
            f"{path} has no [project] table",
            hint="Bastion reads PEP 621 metadata; for other tools audit their lockfile",
        )
    lines: list[str] = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        lines += group
    return [from_requirement(line, str(path)) for line in lines]


def from_lockfile(path: Path) -> list[Package]:
    """``poetry.lock``, ``uv.lock``, ``pylock.toml`` (PEP 751) or ``Pipfile.lock``.

    An entry without a version (a local directory, a VCS checkout) comes back unresolved.
    """
    if path.name == "Pipfile.lock" or path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DepsError(f"cannot read {path} as JSON: {exc}") from None
        packages = []
        for section in ("default", "develop"):
            for name, entry in (data.get(section) or {}).items():
                version = entry.get("version") if isinstance(entry, dict) else None
                if isinstance(version, str) and version.startswith("=="):
                    packages.append(Package(name, version[2:], str(path)))
                else:
                    packages.append(Package(name, None, str(path), "no pinned version in the lock"))
        return packages
    data = _toml(path)
    entries = data.get("packages", data.get("package"))  # PEP 751 pylock | poetry and uv
    if not isinstance(entries, list):
        raise DepsError(
            f"{path} has no [[package]] entries",
            hint="pass poetry.lock, uv.lock, pylock.toml or Pipfile.lock; for pip-compile output "
            "use --requirements",
        )
    packages = []
    for entry in entries:
        name, version = entry.get("name"), entry.get("version")
        if not isinstance(name, str):
            raise DepsError(f"{path}: a [[package]] entry has no name")
        if isinstance(version, str):
            packages.append(Package(name, version, str(path)))
        else:
            reason = "no version in the lock (a local source?)"
            packages.append(Package(name, None, str(path), reason))
    return packages


def _name_version(dist: importlib.metadata.Distribution) -> tuple[str | None, str | None]:
    """``Name`` and ``Version`` from the metadata headers only: parsing the whole file (with its
    long description) as ``dist.metadata`` does is most of the time an environment audit takes."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the headers end at the first blank line (core metadata, RFC 822 style)
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version") and key not in found:
            found[key] = value.strip()
    return found.get("Name"), found.get("Version")


def _distributions(dists: Iterable[importlib.metadata.Distribution], where: str) -> list[Package]:
    packages = []
    for dist in dists:
        name, version = _name_version(dist)
        if not name:
            continue  # a metadata directory without a name is not an installed distribution
        if version:
            packages.append(Package(name, version, where))
        else:
            packages.append(Package(name, None, where, "installed metadata has no version"))
    unique = {(p.key, p.version): p for p in packages}  # a directory twice on sys.path
    return sorted(unique.values(), key=lambda p: (p.key, p.version or ""))


def from_site_packages(*directories: Path) -> list[Package]:
    """The distributions whose metadata lies in ``directories``, read without importing anything."""
    missing = [d for d in directories if not d.is_dir()]
    if missing:
        raise DepsError(f"{missing[0]} is not a directory", hint="pass a site-packages directory")
    where = "environment:" + ":".join(str(d) for d in directories)
    dists = importlib.metadata.distributions(path=[str(d) for d in directories])
    return _distributions(dists, where)


def from_environment(python: Path) -> list[Package]:
    """The distributions installed for another interpreter, read from its site-packages."""
    try:
        done = subprocess.run(
            [str(python), "-I", "-S", "-c", _PATHS_SCRIPT],
            capture_output=True,
            timeout=60,
            check=True,
            text=True,
        )
        paths = [Path(p) for p in json.loads(done.stdout)["paths"]]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        raise DepsError(
            f"cannot ask {python} for its site-packages ({exc.__class__.__name__})",
            hint="pass the path of a Python 3 interpreter, or --site-packages DIR",
        ) from None
    unique = list(dict.fromkeys(p for p in paths if p.is_dir()))
    if not unique:
        raise DepsError(f"{python} reports no existing site-packages directory")
    packages = from_site_packages(*unique)
    return [Package(p.name, p.version, f"environment:{python}", p.reason) for p in packages]


def current_environment() -> list[Package]:
    """The distributions installed for the running interpreter (recorded at registration)."""
    dists = importlib.metadata.distributions()
    return _distributions(dists, f"environment:{sys.executable}")


def collect(
    *,
    requirements: Sequence[Path] = (),
    pyproject: Path | None = None,
    lockfile: Path | None = None,
    python: Path | None = None,
    site_packages: Sequence[Path] = (),
) -> list[Package]:
    """Everything the inputs name, in order; no input at all means the running environment."""
    packages: list[Package] = []
    for path in requirements:
        packages += from_requirements(path)
    if pyproject is not None:
        packages += from_pyproject(pyproject)
    if lockfile is not None:
        packages += from_lockfile(lockfile)
    if python is not None:
        packages += from_environment(python)
    if site_packages:
        packages += from_site_packages(*site_packages)
    if not (requirements or pyproject or lockfile or python or site_packages):
        packages = current_environment()
    return packages
