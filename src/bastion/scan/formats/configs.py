"""Configs that make a loader run code: Hugging Face ``auto_map`` and Hydra ``_target_``.

* ``auto_map`` in a ``config.json`` or ``tokenizer_config.json`` names the Python classes
  ``from_pretrained(..., trust_remote_code=True)`` imports from ``.py`` files shipped beside it
  (``"AutoModel": "modeling_x.XModel"``, or ``"repo--modeling_x.XModel"`` from another
  repository): that file runs on load. Reported high, with each file and class.
* ``_target_`` anywhere in a YAML or JSON config is what ``hydra.utils.instantiate`` (NeMo,
  and every Hydra project) imports and calls with the node's other keys (CVE-2025-23304's
  class). Each target is judged by the same allowlist as a pickle's globals: ``os.system`` is
  critical, a name nobody reviewed high, a reviewed class passes.

Both are parsed as data (``json``, ``yaml.safe_load``; an alias is a reference, visited
once, as OmegaConf reads it too): nothing is imported.

    >>> from bastion.scan.pickle import Policy
    >>> [v.reason for v in targets({"_target_": "os.system", "command": "id"}, Policy.default())]
    ['runs code, touches files or the network when called']
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Final

import yaml

from bastion.findings import Finding, Severity
from bastion.scan.formats._finding import CODE_EXECUTION, finding
from bastion.scan.interface import Format, Member, ScanLimits, Source
from bastion.scan.pickle.policy import Policy, Verdict

__all__ = [
    "ConfigScanner",
    "mentions",
    "probe",
    "remote_code",
    "remote_code_findings",
    "targets",
]

MAX_CONFIG: Final = 16 * 1024 * 1024
"""Largest config parsed (also bounded by ``ScanLimits.max_member_bytes``)."""


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


def _target_nodes(config: object) -> Iterator[str]:
    """Every ``_target_`` (and Hydra's older ``_class_``) string under ``config``."""
    stack, seen = [config], set()
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping | list):
            if id(node) in seen:  # a YAML alias is the same object: each node once, no bombs
                continue
            seen.add(id(node))
        if isinstance(node, Mapping):
            for key in ("_target_", "_class_"):
                value = node.get(key)
                if isinstance(value, str):
                    yield value.strip()
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def targets(config: object, policy: Policy) -> Iterator[Verdict]:
    """The verdict on every ``_target_`` (and ``_class_``) under ``config``."""
    for value in _target_nodes(config):
        module, _, name = value.rpartition(".")
        yield policy.verdict(module or value, name or value)


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
        limit = min(MAX_CONFIG, limits.max_member_bytes)
        if source.size > limit:  # 1.
            yield _unread(source, f"it holds {source.size} bytes, more than the {limit} read")
            return
        with source.open() as stream:
            raw = stream.read(limit)
        try:  # 2.
            config = _parse(raw)
        except (UnicodeDecodeError, ValueError, RecursionError, yaml.YAMLError) as exc:
            yield _unread(source, f"it cannot be parsed ({exc.__class__.__name__})")
            return
        if isinstance(config, Mapping):  # 3.
            yield from remote_code_findings(source, config)
        for verdict in targets(config, self.policy):  # 4.
            if verdict.allowed:
                continue
            yield finding(
                source, "config.target.unsafe", verdict.severity,
                f"the config instantiates {verdict.qualified}: {verdict.reason}",
                detail="hydra.utils.instantiate (NeMo and other Hydra projects) imports this "
                "name and calls it with the node's other keys when the config is loaded.",
                remediation="Do not instantiate the config; if the target is yours and "
                "reviewed, allow it in a policy file.",
                evidence={"target": verdict.qualified}, techniques=CODE_EXECUTION,
            )


def _unread(source: Source, why: str) -> Finding:
    return finding(
        source, "config.unreadable", Severity.HIGH, "Config cannot be reviewed",
        detail=f"The file holds auto_map or _target_ entries, but {why}: what it makes a "
        "loader import was not checked.", remediation="Review the file by hand.",
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
    """The sniffer's test: :func:`mentions`, then the file parses as JSON or YAML and holds
    what it mentioned. A loader cannot read what does not parse, so that is not a config
    (Python source that spells ``"_target_":`` in a dict stays what it is); a file over
    :data:`MAX_CONFIG` that mentions them counts, so its scanner reports the limit."""
    candidate = mentions(head)
    if candidate is None:
        return None
    if size > MAX_CONFIG:
        return candidate
    stream.seek(0)
    raw = head if size <= len(head) else stream.read(MAX_CONFIG)
    try:
        config = _parse(raw)
    except (UnicodeDecodeError, ValueError, RecursionError, yaml.YAMLError):
        return None
    if candidate is Format.HF_CONFIG:
        return candidate if isinstance(config, Mapping) and remote_code(config) else None
    return candidate if next(_target_nodes(config), None) is not None else None
