"""Configs that make a loader run code: Hugging Face ``auto_map`` and Hydra ``_target_``.

* ``auto_map`` in a ``config.json`` or ``tokenizer_config.json`` names the Python classes
  ``from_pretrained(..., trust_remote_code=True)`` imports from ``.py`` files shipped beside it
  (``"AutoModel": "modeling_x.XModel"``, or ``"repo--modeling_x.XModel"`` from another
  repository): that file runs on load. Reported high, with each file and class.
  Scanning a directory, :func:`review_repository` follows those files and their relative
  imports (``from .utils import X``, ``from . import foo``), with :mod:`ast`, and reports each
  file that would run, and each one that is missing (``from_pretrained`` would download it).
* ``_target_`` anywhere in a YAML or JSON config is what ``hydra.utils.instantiate`` (NeMo,
  and every Hydra project) imports and calls with the node's other keys (CVE-2025-23304's
  class). Each target is judged by the same allowlist as a pickle's globals: ``os.system`` is
  critical, a name nobody reviewed high, a reviewed class passes. A ``.nemo`` archive's
  ``model_config.yaml`` is reviewed whatever the sniffer makes of it
  (:func:`review_nemo_config`), NeMo's own ``target`` class paths included.

Configs are parsed as data (``json``, ``yaml.safe_load``; an alias is a reference, visited
once, as OmegaConf reads it too) and Python as syntax (``ast.parse``): nothing is imported.

    >>> from bastion.scan.pickle import Policy
    >>> [v.reason for v in targets({"_target_": "os.system", "command": "id"}, Policy.default())]
    ['runs code, touches files or the network when called']
"""

from __future__ import annotations

import ast
import json
import os
import posixpath
import re
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Final

import yaml

from bastion.findings import Finding, Location, Severity
from bastion.scan._rules import finding as _located
from bastion.scan.formats._finding import CODE_EXECUTION, finding
from bastion.scan.interface import Format, Member, ScanLimits, Source
from bastion.scan.pickle.policy import Policy, Verdict

__all__ = [
    "ConfigScanner",
    "mentions",
    "probe",
    "remote_code",
    "remote_code_findings",
    "review_nemo_config",
    "review_repository",
    "targets",
]

MAX_CONFIG: Final = 16 * 1024 * 1024
"""Largest config parsed (also bounded by ``ScanLimits.max_member_bytes``)."""
MAX_REMOTE_FILES: Final = 64
"""Most Python files followed from one repository's ``auto_map`` (more is a finding)."""
MAX_IMPORT_DEPTH: Final = 8
"""Longest chain of relative imports followed from an ``auto_map`` module (longer: a finding)."""
MAX_SOURCE: Final = 4 * 1024 * 1024
"""Largest Python file parsed for its imports (a larger one is reported, not followed)."""
TRIGGER: Final = "trust_remote_code=True"
"""The ``from_pretrained`` flag that makes transformers import a repository's own code."""
_MODULE: Final = re.compile(r"[\w\-]+(\.[\w\-]+)*")
"""An ``auto_map`` module transformers can turn into a file name beside the config."""
_DOTTED: Final = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
"""A class path such as NeMo's ``target: nemo.collections.asr.models.EncDecCTCModel``."""


def remote_code(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(Auto class, ``[repo--]module.Class``) for each entry of ``config["auto_map"]``."""
    auto_map = config.get("auto_map")
    if not isinstance(auto_map, Mapping):
        return []
    found = []
    for auto, value in auto_map.items():
        for target in value if isinstance(value, list) else [value]:
            if isinstance(target, str) and target:
                found.append((str(auto), target))
    return found


def remote_code_findings(source: Source, config: Mapping[str, Any]) -> Iterator[Finding]:
    """One high finding per Python file ``auto_map`` would import and run."""
    files: dict[str, list[str]] = {}
    for auto, target in remote_code(config):
        repo, _, local = target.rpartition("--")
        module = local.rpartition(".")[0] or local
        where = f"{repo}:{module}.py" if repo else f"{module}.py"
        files.setdefault(where, []).append(f"{auto} → {target}")
    for where, uses in sorted(files.items()):
        yield finding(
            source, "repo.remote-code", Severity.HIGH,
            f"auto_map makes transformers import and run {where} (trust_remote_code)",
            detail="from_pretrained(..., trust_remote_code=True) executes this Python file "
            f"to build: {', '.join(uses)[:400]}. It is code, not weights.",
            remediation="Review the Python file as code before enabling trust_remote_code, "
            "or use a model whose architecture transformers ships.",
            evidence={"file": where, "auto_map": uses}, techniques=CODE_EXECUTION,
        )


def _target_nodes(config: object, keys: tuple[str, ...] = ("_target_", "_class_")) -> Iterator[str]:
    """Every ``_target_`` (and Hydra's older ``_class_``) string under ``config``."""
    stack, seen = [config], set()
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping | list):
            if id(node) in seen:  # a YAML alias is the same object: each node once, no bombs
                continue
            seen.add(id(node))
        if isinstance(node, Mapping):
            for key in keys:
                value = node.get(key)
                if isinstance(value, str):
                    yield value.strip()
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def targets(config: object, policy: Policy) -> Iterator[Verdict]:
    """The verdict on every ``_target_`` (and ``_class_``) under ``config``."""
    for value in _target_nodes(config):
        yield _verdict(value, policy)


def nemo_targets(config: object, policy: Policy) -> Iterator[Verdict]:
    """The verdict on every ``target`` class path under ``config``: NeMo's
    ``Serialization.from_config_dict`` imports it with ``import_class_by_path`` and calls it
    with the config (the model's top-level ``target``, and each submodule built the same way).
    Only values spelled as a dotted path count: ``target: 0.5`` is data."""
    for value in _target_nodes(config, ("target",)):
        if _DOTTED.fullmatch(value):
            yield _verdict(value, policy)


def _verdict(value: str, policy: Policy) -> Verdict:
    module, _, name = value.rpartition(".")
    return policy.verdict(module or value, name or value)


def _parse(raw: bytes) -> object:
    text = raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    try:
        return json.loads(text)
    except ValueError:
        return yaml.safe_load(text)


@dataclass(frozen=True, slots=True)
class ConfigScanner:
    """Reviews what a model or training config makes its loader import; runs none of it."""

    formats: frozenset[Format] = frozenset({Format.HF_CONFIG, Format.HYDRA_CONFIG})
    policy: Policy = field(default_factory=Policy.default)

    def with_policy(self, policy: Policy) -> ConfigScanner:
        """This scanner judging targets by ``policy``."""
        return replace(self, policy=policy)

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Steps: 1. read within the size limit (over it: a finding, fail closed); 2. parse
        as JSON, else YAML (unparseable: a finding); 3. every ``auto_map`` entry; 4. every
        ``_target_``, judged by the allowlist."""
        config = _read(source, limits)  # 1. 2.
        if isinstance(config, Finding):
            yield config
            return
        if isinstance(config, Mapping):  # 3.
            yield from remote_code_findings(source, config)
        yield from _target_findings(source, targets(config, self.policy))  # 4.


def _read(source: Source, limits: ScanLimits,
          what: str = "The file holds auto_map or _target_ entries") -> object:
    """The parsed config, or the finding saying why it could not be read (fail closed)."""
    limit = min(MAX_CONFIG, limits.max_member_bytes)
    if source.size > limit:
        return _unread(source, f"it holds {source.size} bytes, more than the {limit} read", what)
    with source.open() as stream:
        raw = stream.read(limit)
    try:
        return _parse(raw)
    except (UnicodeDecodeError, ValueError, RecursionError, yaml.YAMLError) as exc:
        return _unread(source, f"it cannot be parsed ({exc.__class__.__name__})", what)


def _target_findings(source: Source, verdicts: Iterable[Verdict], *,
                     how: str = "hydra.utils.instantiate (NeMo and other Hydra projects) "
                     "imports this name and calls it with the node's other keys when the "
                     "config is loaded.") -> Iterator[Finding]:
    for verdict in verdicts:
        if verdict.allowed:
            continue
        yield finding(
            source, "config.target.unsafe", verdict.severity,
            f"the config instantiates {verdict.qualified}: {verdict.reason}",
            detail=how,
            remediation="Do not instantiate the config; if the target is yours and "
            "reviewed, allow it in a policy file.",
            evidence={"target": verdict.qualified}, techniques=CODE_EXECUTION,
        )


def review_nemo_config(source: Source, limits: ScanLimits, policy: Policy, *,
                       sniffed: bool) -> Iterator[Finding]:
    """A ``.nemo`` archive's ``model_config.yaml``, which ``restore_from`` always hands to
    Hydra and NeMo's class loader, wherever in the file its targets sit.

    Steps: 1. read and parse it as :class:`ConfigScanner` does (what cannot be read is a
    finding); 2. unless the sniffer already sent it to :class:`ConfigScanner` (``sniffed``:
    it mentions ``_target_`` in its first 64 KiB), judge every ``_target_``/``_class_``;
    3. judge NeMo's own ``target`` class paths (:func:`nemo_targets`), by the same allowlist.
    """
    config = _read(source, limits, "NeMo's restore_from instantiates this config")  # 1.
    if isinstance(config, Finding):
        yield config
        return
    if not sniffed:  # 2.
        yield from _target_findings(source, targets(config, policy))
    yield from _target_findings(source, nemo_targets(config, policy), how=(  # 3.
        "NeMo's restore_from builds the model from this config: Serialization."
        "from_config_dict imports a node's `target` class with import_class_by_path and "
        "calls it with the node."))


def _unread(source: Source, why: str, what: str) -> Finding:
    return finding(
        source, "config.unreadable", Severity.HIGH, "Config cannot be reviewed",
        detail=f"{what}, but {why}: what it makes a loader import was not checked.",
        remediation="Review the file by hand.",
    )


# -- a model repository's own Python, as trust_remote_code runs it ----------------------------


@dataclass(slots=True)
class _Reached:
    """A Python file the loader would import, and how it gets there (working state)."""

    path: str
    """Relative to the repository directory, ``/``-separated."""
    via: list[str]
    """What brings it in: ``config.json: auto_map AutoModel → modeling_x.XModel`` or
    ``modeling_x.py: from .utils import helper``."""
    depth: int
    origin: str
    """The file that first brought it in (a config, or the importing Python file)."""


def auto_map_modules(path: str) -> list[tuple[str, str]]:
    """(auto_map line, module) for each local ``auto_map`` entry of the JSON config at ``path``
    (``repo--`` entries come from another repository: :func:`remote_code_findings` names
    them). A config that cannot be read here was reported by its own scan."""
    try:
        with open(path, "rb") as f:
            config = json.loads(f.read(MAX_CONFIG).removeprefix(b"\xef\xbb\xbf"))
    except (OSError, ValueError, RecursionError):
        return []
    if not isinstance(config, Mapping):
        return []
    found = []
    for auto, target in remote_code(config):
        if "--" in target:
            continue
        module = target.rpartition(".")[0] or target
        if _MODULE.fullmatch(module) and not module.startswith("."):
            found.append((f"{os.path.basename(path)}: auto_map {auto} → {target}", module))
    return found


def review_repository(configs: Iterable[str], root: str) -> Iterator[Finding]:
    """Every Python file ``from_pretrained(..., trust_remote_code=True)`` would import from
    the directory holding ``configs`` (the ``auto_map`` configs found there), and every such
    file that is missing.

    Steps (Python files are parsed with :mod:`ast`, never imported):

    1. Each local ``auto_map`` module is ``<module>.py`` beside the config (transformers'
       ``get_class_from_dynamic_module``).
    2. Each file's relative imports are followed, as Python resolves them in the package
       transformers copies the files into: ``from .x import y`` is ``x.py`` or
       ``x/__init__.py``, ``from . import foo`` is ``foo.py``; ``from ..`` leaves the
       repository and is only listed. Breadth first, at most :data:`MAX_REMOTE_FILES` files
       and :data:`MAX_IMPORT_DEPTH` levels (past either: a finding, fail closed).
    3. One high finding per reachable file (``repo.remote-code.file``), one per missing file
       (``repo.remote-code.missing``: for a Hub repository, transformers downloads it at load
       time, so the code that runs is not the code scanned). Files nothing reaches are left to
       the other rules.

    ``root`` is the directory the scan was given: a file that is a link out of it (a Hugging
    Face cache snapshot's files all are) is still parsed, and the finding says so.
    """
    configs = sorted(configs)
    if not configs:
        return
    base = os.path.dirname(configs[0])
    real_root = os.path.realpath(root)
    queue: deque[_Reached] = deque()
    seen: dict[str, _Reached] = {}
    for config in configs:  # 1.
        for via, module in auto_map_modules(config):
            _enqueue(queue, seen, f"{module}.py", via, 0, config)
    reached: list[tuple[_Reached, str, ast.Module | None, str]] = []
    while queue:  # 2.
        item = queue.popleft()
        path = os.path.join(base, *item.path.split("/"))
        if not os.path.isfile(path):
            continue
        if len(reached) >= MAX_REMOTE_FILES or item.depth > MAX_IMPORT_DEPTH:
            yield _too_many(item)
            break
        tree, why = _parse_python(path)
        reached.append((item, path, tree, why))
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.ImportFrom) and node.level:
                for candidates, required in _relative(item.path, node) or ():
                    target = _existing(base, candidates)
                    if target is not None or required:
                        _enqueue(queue, seen, target or candidates[0],
                                 f"{item.path}: {_statement(node)}", item.depth + 1, path)
    for item, path, tree, why in reached:  # 3. once every way in is known
        linked = not os.path.realpath(path).startswith(real_root + os.sep)
        yield _runs(path, item, why, tree, linked)
    for item in seen.values():
        if not os.path.isfile(os.path.join(base, *item.path.split("/"))):
            yield _missing(item)


def _enqueue(queue: deque[_Reached], seen: dict[str, _Reached], path: str, via: str,
             depth: int, origin: str) -> None:
    known = seen.get(path)
    if known is not None:  # reached before: one finding, every way in listed
        if via not in known.via and len(known.via) < 20:
            known.via.append(via)
        return
    seen[path] = item = _Reached(path, [via], depth, origin)
    queue.append(item)


def _statement(node: ast.ImportFrom) -> str:
    names = ", ".join(a.name for a in node.names)
    return f"from {'.' * node.level}{node.module or ''} import {names}"[:200]


def _relative(importer: str, node: ast.ImportFrom) -> list[tuple[list[str], bool]] | None:
    """What a relative import loads: for each module, its candidate files (``x.py`` or
    ``x/__init__.py``, relative to the repository) and whether it must exist for the import
    to work; ``None`` when the import climbs out of the repository.

    ``from .x import y`` loads ``x`` (and each package on the way), and ``x/y.py`` too when
    ``y`` is a submodule there; ``from . import foo`` loads ``foo``, which must be a module
    at the top (transformers' package there is its own, empty ``__init__``)."""
    package = posixpath.dirname(importer).split("/") if "/" in importer else []
    if node.level - 1 > len(package):
        return None
    package = package[: len(package) - (node.level - 1)]
    found: list[tuple[list[str], bool]] = []
    if node.module:
        parts = node.module.split(".")
        for i in range(1, len(parts)):  # a package's __init__.py runs before its submodule
            found.append(([posixpath.join(*package, *parts[:i], "__init__.py")], True))
        stem = posixpath.join(*package, *parts)
        found.append(([f"{stem}.py", posixpath.join(stem, "__init__.py")], True))
        package, required = [*package, *parts], False
    else:
        required = not package
    for alias in node.names:
        if alias.name != "*":
            stem = posixpath.join(*package, alias.name)
            found.append(([f"{stem}.py", posixpath.join(stem, "__init__.py")], required))
    return found


def _existing(base: str, candidates: list[str]) -> str | None:
    """The first candidate file that exists."""
    for candidate in candidates:
        if os.path.isfile(os.path.join(base, *candidate.split("/"))):
            return candidate
    return None


def _parse_python(path: str) -> tuple[ast.Module | None, str]:
    """The syntax tree of the file, or ``None`` and why not (its imports are then unknown)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SOURCE + 1)
    except OSError as exc:
        return None, f"it cannot be read ({exc.strerror})"
    if len(data) > MAX_SOURCE:
        return None, f"it is larger than the {MAX_SOURCE} bytes parsed"
    try:
        with warnings.catch_warnings():  # invalid escapes and the like: not our business
            warnings.simplefilter("ignore")
            return ast.parse(data, filename=path), ""
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return None, f"it does not parse as Python ({exc.__class__.__name__})"


def _imports(tree: ast.Module | None, importer: str) -> tuple[list[str], list[str]]:
    """The top-level packages a file imports, and its imports from outside the repository."""
    imports: set[str] = set()
    outside: list[str] = []
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.Import):
            imports.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            imports.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and _relative(importer, node) is None:
            outside.append(_statement(node))
    return sorted(imports), outside


def _runs(path: str, item: _Reached, why: str, tree: ast.Module | None,
          linked: bool) -> Finding:
    imports, outside = _imports(tree, item.path)
    how = "; ".join(item.via)[:600]
    detail = (f"from_pretrained(..., {TRIGGER}) imports this file, which runs it with the "
              f"loading process's privileges: {how}. It is code, not weights: review it as "
              "code.")
    if linked:
        detail += " It is a link to a file outside the scanned directory."
    if why:
        detail += f" Its own imports were not followed: {why}."
    if outside:
        detail += f" It imports from outside the repository: {', '.join(outside)[:200]}."
    return _located(
        "repo.remote-code.file", Severity.HIGH,
        f"{item.path} runs on load with {TRIGGER}", Location(path), detail=detail,
        remediation=f"Review the file as code before loading with {TRIGGER}, or use a model "
        "whose architecture transformers ships.",
        evidence={"file": item.path, "trigger": TRIGGER, "via": list(item.via),
                  "imports": imports[:50], "outside": outside[:20], "parsed": not why,
                  "linked": linked},
        techniques=CODE_EXECUTION,
    )


def _missing(item: _Reached) -> Finding:
    how = "; ".join(item.via)[:600]
    return _located(
        "repo.remote-code.missing", Severity.HIGH,
        f"{item.path} would run on load with {TRIGGER} but is not in the repository",
        Location(item.origin),
        detail=f"{how}. With {TRIGGER}, from_pretrained downloads the file from the model's "
        "repository on the Hub when it is not here (a local directory without it fails to "
        "load), so the code that runs is code this scan did not see.",
        remediation="Obtain the complete repository, with its Python files, and scan it again "
        "before loading it.",
        evidence={"file": item.path, "trigger": TRIGGER, "via": list(item.via)},
        techniques=CODE_EXECUTION,
    )


def _too_many(item: _Reached) -> Finding:
    return _located(
        "repo.remote-code.limit", Severity.HIGH,
        f"the repository's Python imports go past {MAX_REMOTE_FILES} files or "
        f"{MAX_IMPORT_DEPTH} levels; the rest was not followed", Location(item.origin),
        detail=f"Stopped at {item.path}: files it and the rest import also run with "
        f"{TRIGGER}, and were not listed.",
        remediation="Review the repository's Python code by hand.",
        evidence={"file": item.path, "trigger": TRIGGER}, techniques=CODE_EXECUTION,
    )


def mentions(head: bytes) -> Format | None:
    """The cheap test on the opening bytes (64 KiB): a JSON object naming ``auto_map`` (a
    Hugging Face config), or text with a ``_target_`` / ``_class_`` key (a Hydra config)."""
    text = head.removeprefix(b"\xef\xbb\xbf")
    if not text or b"\x00" in text:
        return None
    if b'"auto_map"' in text and text.lstrip(b" \t\r\n").startswith(b"{"):
        return Format.HF_CONFIG
    if re.search(rb'(^|[\s{,"\'])_(target|class)_["\']?\s*:', text, re.M):
        return Format.HYDRA_CONFIG
    return None


def probe(head: bytes, stream: BinaryIO, size: int) -> Format | None:
    """The sniffer's test: :func:`mentions` (over the whole file when the sniffer found a key
    past its head), then the file parses as JSON or YAML and holds what it mentioned. A
    loader cannot read what does not parse, so that is not a config (Python source that
    spells ``"_target_":`` in a dict stays what it is); a file over :data:`MAX_CONFIG` that
    mentions them counts, so its scanner reports the limit."""
    candidate = mentions(head)
    raw = head
    if size > len(head) and (candidate is None or size <= MAX_CONFIG):
        # the sniffer found a key past the head (Hydra reads the whole file)
        if size > MAX_CONFIG:  # too large to parse: its scanner reports it unreviewed
            return Format.HYDRA_CONFIG
        stream.seek(0)
        raw = stream.read(MAX_CONFIG)
        candidate = candidate or mentions(raw)
    if candidate is None:
        return None
    if size > MAX_CONFIG:
        return candidate
    try:
        config = _parse(raw)
    except (UnicodeDecodeError, ValueError, RecursionError, yaml.YAMLError):
        return None
    if candidate is Format.HF_CONFIG:
        return candidate if isinstance(config, Mapping) and remote_code(config) else None
    return candidate if next(_target_nodes(config), None) is not None else None
