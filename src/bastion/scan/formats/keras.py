"""Keras: the v3 ``.keras`` zip and the legacy ``.h5``, judged by their model config, never loaded.

A Keras model is rebuilt from a JSON config naming a class (``module``, ``class_name``,
``registered_name``) for every layer, initializer, loss and optimizer, nested to any depth
(Functional and Sequential models inside models, ``TimeDistributed``/``Bidirectional`` wrappers).
Loading it runs code in three ways, each a rule here, checked on *every* object of the tree rather
than on a list of layer names: ``Lambda`` layers carry marshalled Python bytecode (executed on
load with ``safe_mode=False``, and by legacy ``.h5`` loading in Keras before 3.11.3 regardless,
CVE-2025-9905); classes and functions from modules outside Keras run whatever those modules do
(CVE-2025-1550); and Keras' own non-modelling APIs such as ``keras.utils.get_file`` or
``keras.config.enable_unsafe_deserialization`` fetch files or turn the safety off
(CVE-2025-8747, CVE-2025-9906). Layers whose config names a file read it when built.

    >>> KerasScanner().formats == frozenset({Format.KERAS, Format.HDF5})
    True
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from bastion.findings import Finding, Severity
from bastion.scan.formats._finding import CODE_EXECUTION, SUPPLY_CHAIN, finding
from bastion.scan.formats.archives import ZipScanner
from bastion.scan.interface import Format, Member, ScanLimits, Source
from bastion.scan.pickle.policy import Policy

__all__ = ["KerasScanner", "review_config"]

_HDF5_MAGIC: Final = b"\x89HDF\r\n\x1a\n"
_MAX_CONFIG: Final = 64 * 1024 * 1024
_MAX_NODES: Final = 2_000_000
_MAX_H5_OBJECTS: Final = 200_000
_CONFIG_ENTRIES: Final = frozenset({"config.json", "metadata.json"})

# Packages Keras itself imports classes from (serialization_lib) plus the legacy tf.keras ones.
_KERAS_PACKAGES: Final = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp", "tf_keras"})
# Keras APIs that are not model building blocks: they read, write or fetch files, or switch
# deserialization safety off. Keras 3.9+ refuses most of them; older versions do not.
_UNSAFE_KERAS_APIS: Final = frozenset({
    "get_file", "load_model", "model_from_json", "model_from_yaml", "save_model",
    "load_weights", "save_weights", "enable_unsafe_deserialization", "load_img", "save_img",
    "image_dataset_from_directory", "text_dataset_from_directory",
    "audio_dataset_from_directory", "deserialize_keras_object", "register_keras_serializable",
    "clear_session", "load_library", "load_op_library",
})
# tf.keras TFOpLambda layers call TensorFlow functions by name; these touch files or run Python.
_UNSAFE_TF_FUNCTIONS: Final = frozenset({
    "write_file", "read_file", "matching_files", "gfile", "py_function", "numpy_function",
    "py_func", "PyFunc", "EagerPyFunc", "WriteFile", "ReadFile", "MatchingFiles",
    "load_library", "load_op_library", "print",
})
# Config keys whose string value is a file the layer opens when it is built.
_FILE_KEYS: Final = frozenset({
    "vocabulary", "vocabulary_path", "vocabulary_file", "filepath", "file_path", "path",
    "handle", "origin", "fname", "url", "proto", "merges",
})
_BASE64: Final = re.compile(r"^[A-Za-z0-9+/=\s]{24,}$")


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One thing found in a Keras config."""

    rule: str
    severity: Severity
    title: str
    detail: str
    where: str
    """JSON path of the object, e.g. ``config.layers[3].config.layer``."""
    evidence: dict[str, Any]


def _is_keras_module(module: str) -> bool:
    return module.split(".", 1)[0] in _KERAS_PACKAGES or module.startswith("tensorflow.keras")


def _marshalled_code(text: str) -> bool:
    """True when ``text`` is base64 of a marshalled code object (how Keras stores lambdas)."""
    if not _BASE64.match(text):
        return False
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    # marshal's TYPE_CODE is 'c' (0x63), with the FLAG_REF bit set 0xe3.
    return len(raw) >= 16 and raw[0] in (0x63, 0xE3)


def _object_issues(node: dict[str, Any], where: str, policy: Policy) -> Iterator[ConfigIssue]:
    """The rules for one JSON object of the config (called on every object of the tree).

    Steps: 1. serialized lambdas (Keras 3 ``__lambda__``, legacy ``function_type``); 2. the
    class or function's module is outside Keras; 3. a custom registered name; 4. a Keras API that
    is not a building block; 5. a TFOpLambda calling a file or Python TensorFlow function;
    6. a file path the layer will open.
    """
    class_name = node.get("class_name")
    module = node.get("module")
    # 1.
    legacy_lambda = any(node.get(k) == "lambda" for k in ("function_type", "output_shape_type"))
    if class_name == "__lambda__" or legacy_lambda:
        yield ConfigIssue(
            "keras.lambda.bytecode", Severity.CRITICAL, "Keras Lambda layer carries bytecode",
            "Loading the model unmarshals and runs this bytecode (with safe_mode=False, and by "
            "legacy .h5 loading in Keras before 3.11.3 even with it).", where,
            {"class_name": class_name},
        )
    # 2. Legacy Lambda layers name their function's module in sibling keys. The pickle policy
    # judges the import: os.system is critical, an allowlisted (--allow) class is fine.
    for key, name_key in (("module", None), ("function_module", "function"),
                          ("output_shape_module", "output_shape")):
        mod = node.get(key)
        if not isinstance(mod, str) or not mod or mod == "builtins" or _is_keras_module(mod):
            continue
        name = node.get(name_key) if name_key else (
            node.get("config") if class_name == "function" else class_name)
        verdict = policy.verdict(mod, name) if isinstance(name, str) and name else None
        if verdict is not None and verdict.allowed:
            continue
        yield ConfigIssue(
            "keras.module.external", verdict.severity if verdict else Severity.HIGH,
            "Keras config refers to code outside Keras",
            f"{class_name!r} comes from module {mod!r}: loading imports and runs code "
            f"that is not part of Keras ({verdict.reason if verdict else 'unnamed'}).", where,
            {"module": mod, "class_name": class_name,
             "global": verdict.qualified if verdict else mod},
        )
    # 3. Keras' own objects have no registered name or their class name; "package>Name" is custom.
    # An outside module was judged in step 2 (where --allow applies); this catches the rest.
    registered = node.get("registered_name")
    judged = isinstance(module, str) and module and not _is_keras_module(module)
    if isinstance(registered, str) and registered not in ("", class_name) and isinstance(
        class_name, str
    ) and class_name != "function" and not judged:
        yield ConfigIssue(
            "keras.module.external", Severity.HIGH, "Keras config refers to a custom object",
            f"{class_name!r} is registered as {registered!r}: a custom class whose code is not "
            "in the file and must come from somewhere the loader imports.", where,
            {"registered_name": registered, "class_name": class_name},
        )
    # 4.
    if isinstance(module, str) and _is_keras_module(module):
        name = node.get("config") if class_name == "function" else class_name
        if isinstance(name, str) and name in _UNSAFE_KERAS_APIS:
            yield ConfigIssue(
                "keras.api.unsafe", Severity.CRITICAL,
                "Keras config calls a non-modelling Keras API",
                f"{module}.{name} reads, writes or downloads files, or turns deserialization "
                "safety off, when the model is loaded.", where,
                {"module": module, "name": name},
            )
    # 5.
    inner = node.get("config")
    if class_name in ("TFOpLambda", "SlicingOpLambda") and isinstance(inner, dict):
        function = str(inner.get("function", ""))
        if set(re.split(r"[.>]", function)) & _UNSAFE_TF_FUNCTIONS:
            yield ConfigIssue(
                "keras.layer.unsafe-op", Severity.CRITICAL,
                "Keras layer calls a TensorFlow function that touches files or runs Python",
                f"TFOpLambda calls tf.{function} when the model runs.", where,
                {"function": function},
            )
    # 6.
    for key in sorted(_FILE_KEYS & node.keys()):  # in one order, whatever the hash seed
        value = node[key]
        if isinstance(value, str) and value.strip():
            yield ConfigIssue(
                "keras.layer.external-file", Severity.HIGH, "Keras layer loads an external file",
                f"{class_name or 'A layer'}'s {key!r} names {value[:200]!r}, which is opened "
                "when the model is built: a path outside the model reads any file the loader "
                "can, a URL fetches one.", where,
                {"key": key, "value": value[:1000]},
            )


def review_config(config: object, policy: Policy | None = None) -> list[ConfigIssue]:
    """Every issue in a parsed Keras config, walking the whole tree without recursion.

    ``policy`` (default: the built-in allowlist) judges classes and functions from outside
    Keras, as it judges pickle imports. Also used for Keras metadata in TensorFlow SavedModels.
    """
    policy = policy or Policy.default()
    issues: list[ConfigIssue] = []
    stack: list[tuple[object, str]] = [(config, "$")]
    seen = 0
    while stack:
        node, where = stack.pop()
        seen += 1
        if seen > _MAX_NODES:
            issues.append(ConfigIssue(
                "keras.limit", Severity.HIGH, "Keras config exceeds the scanner's limits",
                f"More than {_MAX_NODES} values; the rest was not checked.", where, {}))
            break
        if isinstance(node, dict):
            issues.extend(_object_issues(node, where, policy))
            stack.extend((v, f"{where}.{k}") for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node))
        elif isinstance(node, str) and _marshalled_code(node):
            issues.append(ConfigIssue(
                "keras.lambda.bytecode", Severity.CRITICAL, "Keras config carries Python bytecode",
                "A string in the config is a marshalled Python code object, which Keras turns "
                "back into a function and runs.", where, {}))
    # A lambda object already reported covers the bytecode string inside it.
    lambdas = [i.where for i in issues if i.rule == "keras.lambda.bytecode" and i.evidence]
    kept = [i for i in issues if i.evidence or i.rule != "keras.lambda.bytecode"
            or not any(i.where.startswith(w + ".") or i.where.startswith(w + "[")
                       for w in lambdas)]
    # One report per rule and object (a custom Dense names both a module and a registered name).
    unique = {(i.rule, i.where): i for i in reversed(kept)}
    return sorted(unique.values(), key=lambda i: (-i.severity.rank, i.where))


def _parse_json(raw: bytes | str) -> object:
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    return json.loads(text)


@dataclass(frozen=True, slots=True)
class KerasScanner:
    """Reviews the model config of ``.keras`` zips and ``.h5`` files; hands weights back."""

    policy: Policy = field(default_factory=Policy.default)
    """Judges classes and functions from outside Keras (``--allow``, ``--policy``)."""
    formats: frozenset[Format] = frozenset({Format.KERAS, Format.HDF5})

    def with_policy(self, policy: Policy) -> KerasScanner:
        """The same scanner judging outside code by ``policy``."""
        return KerasScanner(policy)

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Dispatch on the content: HDF5 magic or a zip."""
        with source.open() as stream:
            is_hdf5 = stream.read(8) == _HDF5_MAGIC
        if is_hdf5:
            yield from _scan_hdf5(source, self.policy)
        else:
            yield from _scan_zip(source, limits, self.policy)


def _config_findings(source: Source, what: str, raw: bytes | str,
                     policy: Policy) -> Iterator[Finding]:
    try:
        config = _parse_json(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        yield finding(
            source, "keras.config.invalid", Severity.HIGH, "Keras model config is not valid JSON",
            detail=f"{what} cannot be parsed ({exc}); Keras may still read it differently, "
            "so it was not vouched for.",
            remediation="Obtain the model again from its publisher.",
        )
        return
    for issue in review_config(config, policy):
        yield finding(
            source, issue.rule, issue.severity, issue.title,
            detail=f"{what} at {issue.where}: {issue.detail}",
            remediation="Do not load this model unless you trust its author; never with "
            "safe_mode=False. Rebuild it from code you control and load only the weights.",
            evidence={"where": issue.where, **issue.evidence},
            techniques=CODE_EXECUTION if issue.severity >= Severity.HIGH else SUPPLY_CHAIN,
        )


def _scan_zip(source: Source, limits: ScanLimits, policy: Policy) -> Iterator[Finding | Member]:
    """Steps: 1. the zip itself is checked and unpacked by the zip scanner (names, CRCs, bombs);
    2. ``config.json`` is read within a bound and reviewed; 3. every other member (the weights
    file is HDF5) goes back to the engine."""
    reviewed = False
    # 1.
    for item in ZipScanner().scan(source, limits):
        if not isinstance(item, Member) or item.name not in _CONFIG_ENTRIES:
            yield item  # 3.
        elif item.name == "config.json":
            # 2.
            reviewed = True
            if item.source.size > _MAX_CONFIG:
                yield _no_config(item.source, f"config.json holds {item.source.size} bytes, "
                                 f"more than the {_MAX_CONFIG} read")
                continue
            with item.source.open() as stream:
                raw = stream.read(_MAX_CONFIG)
            yield from _config_findings(item.source, "config.json", raw, policy)
    if not reviewed:
        yield _no_config(source, "the archive has no config.json")


def _no_config(source: Source, why: str) -> Finding:
    return finding(
        source, "keras.config.invalid", Severity.HIGH, "Keras archive has no readable config",
        detail=f"{why.capitalize()}; the model cannot be vouched for.",
        remediation="Obtain the model again from its publisher.",
    )


def _scan_hdf5(source: Source, policy: Policy) -> Iterator[Finding]:
    """Steps: 1. open read-only without loading anything; 2. review ``model_config`` and
    ``training_config``; 3. walk every link: external links, external storage and virtual
    datasets make a reader open other files."""
    import h5py

    with source.open() as stream:
        try:
            handle = h5py.File(stream, "r")
        except (OSError, ValueError) as exc:
            yield finding(
                source, "hdf5.malformed", Severity.HIGH, "HDF5 file cannot be read",
                detail=f"The HDF5 structure is broken ({exc}); nothing inside was checked.",
                remediation="Obtain the file again from its publisher.",
            )
            return
        with handle:
            # 2.
            for attr in ("model_config", "training_config"):
                raw = handle.attrs.get(attr)
                if raw is not None:
                    value = raw if isinstance(raw, bytes | str) else bytes(raw)
                    yield from _config_findings(source, f"HDF5 attribute {attr}", value, policy)
            # 3.
            yield from _links(source, handle, h5py)


def _links(source: Source, root: Any, h5py: Any) -> Iterator[Finding]:
    stack: list[Any] = [root]
    count = 0
    while stack:
        group = stack.pop()
        for name in group:
            count += 1
            if count > _MAX_H5_OBJECTS:
                yield finding(
                    source, "hdf5.limit", Severity.HIGH, "HDF5 file exceeds the scanner's limits",
                    detail=f"More than {_MAX_H5_OBJECTS} objects; the rest was not checked.",
                    remediation="Review the file by hand.",
                )
                return
            link = group.get(name, getlink=True)
            path = f"{group.name.rstrip('/')}/{name}"
            if isinstance(link, h5py.ExternalLink):
                yield _external(source, path, link.filename, "an external link")
                continue
            if isinstance(link, h5py.SoftLink):
                continue  # resolves inside this file, to an object walked on its own
            obj = group.get(name)
            if isinstance(obj, h5py.Group):
                stack.append(obj)
            elif isinstance(obj, h5py.Dataset):
                if obj.external:
                    yield _external(source, path, str(obj.external[0][0]), "external storage")
                if obj.is_virtual:
                    for vs in obj.virtual_sources():
                        if vs.file_name != ".":
                            yield _external(source, path, vs.file_name, "a virtual dataset")


def _external(source: Source, path: str, target: str, how: str) -> Finding:
    return finding(
        source, "hdf5.external-file", Severity.HIGH, "HDF5 object reads another file",
        detail=f"{path} is {how} to {target!r}: reading it opens that file, which can be any "
        "file the loader can read.",
        remediation="Do not load this file; weights must be stored inside it.",
        evidence={"object": path, "target": target}, techniques=CODE_EXECUTION,
    )
