"""tf.keras ``keras_metadata.pb``: the layer configs a SavedModel directory carries for Keras.

``model.save(dir)`` in tf.keras (Keras 2, ``tf_keras``) writes, beside ``saved_model.pb``, a
``SavedMetadata`` protobuf (``tf_keras/protobuf/saved_metadata.proto``): one ``SavedObject`` per
layer, model and metric, whose ``metadata`` string is the JSON that
``tf.keras.models.load_model`` revives the object from (``class_name``, ``config``, and for a
Lambda layer the marshalled bytecode of its function). So it is reviewed with the same rules as a
``.keras`` config (:func:`bastion.scan.formats.keras.review_config`); it is read with the bounded
wire reader, never with TensorFlow.

    >>> import io
    >>> from bastion.findings import Location
    >>> meta = b'{"class_name": "Dense", "config": {"units": 2}}'
    >>> node = b"\\x22\\x0f_tf_keras_layer\\x2a" + bytes([len(meta)]) + meta
    >>> data = b"\\x0a" + bytes([len(node)]) + node
    >>> source = Source(Location("keras_metadata.pb"), len(data), lambda: io.BytesIO(data))
    >>> list(scan_keras_metadata(source, Policy.default()))
    []
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import BinaryIO, Final, NamedTuple

from bastion.findings import Finding, Severity
from bastion.scan.formats._finding import CODE_EXECUTION, SUPPLY_CHAIN, finding
from bastion.scan.formats._protobuf import LENGTH, WireError, fields, read_text
from bastion.scan.formats.keras import review_config
from bastion.scan.interface import Source
from bastion.scan.pickle.policy import Policy

__all__ = ["config_findings", "scan_keras_metadata"]

MAX_METADATA: Final = 16 * 1024 * 1024
"""Largest metadata string read from one object (a whole model's config is one string)."""
_MAX_NODES: Final = 1_000_000
_MAX_TEXT: Final = 1 << 16
_REMEDIATION: Final = "Do not load this model with Keras unless you trust its author."


class _Node(NamedTuple):
    """One ``SavedObject``: where it is, what it is, and its metadata (offset and text)."""

    offset: int
    path: str
    identifier: str
    metadata: str


def config_findings(source: Source, config: object, *, what: str, offset: int,
                    policy: Policy, evidence: dict[str, str] | None = None) -> Iterator[Finding]:
    """The Keras review of one parsed config (``what`` says where it was found)."""
    for issue in review_config(config, policy):
        yield finding(
            source, issue.rule, issue.severity, issue.title,
            detail=f"{what} at {issue.where}: {issue.detail}", remediation=_REMEDIATION,
            offset=offset, evidence={**(evidence or {}), "where": issue.where, **issue.evidence},
            techniques=CODE_EXECUTION if issue.severity >= Severity.HIGH else SUPPLY_CHAIN,
        )


def scan_keras_metadata(source: Source, policy: Policy) -> Iterator[Finding]:
    """Steps: 1. read every ``SavedObject`` within bounds (a broken or oversized file is a
    finding, and nothing is vouched for); 2. each object's metadata must be a JSON object, as
    tf.keras writes and reads it; 3. review it with the Keras config rules."""
    with source.open() as stream:
        try:
            # 1.
            nodes = list(_nodes(stream, source.size))
        except WireError as exc:
            yield finding(
                source, "tf.malformed", Severity.HIGH,
                "Keras metadata of a SavedModel is malformed",
                detail=f"keras_metadata.pb cannot be read ({exc}); its layer configs were not "
                "checked, and tf.keras may read it differently.",
                remediation="Obtain the model again from its publisher.", offset=exc.offset,
            )
            return
        except _LimitError as exc:
            yield finding(
                source, "tf.limit", Severity.HIGH, "Keras metadata exceeds the scanner's limits",
                detail=f"{exc}; the rest was not checked.", remediation="Review the model by hand.",
            )
            return
    for node in nodes:
        label = f"keras_metadata.pb object {node.path or '?'} ({node.identifier or '-'})"
        # 2.
        try:
            config = json.loads(node.metadata)
        except (ValueError, RecursionError) as exc:
            config = exc
        if not isinstance(config, dict):
            yield finding(
                source, "keras.config.invalid", Severity.HIGH,
                "Keras metadata is not a JSON object",
                detail=f"{label}: its metadata is not the JSON object tf.keras writes, so it "
                "was not vouched for; tf.keras may still revive something from it.",
                remediation="Obtain the model again from its publisher.", offset=node.offset,
                evidence={"node_path": node.path, "identifier": node.identifier},
            )
            continue
        # 3.
        yield from config_findings(
            source, config, what=label, offset=node.offset, policy=policy,
            evidence={"node_path": node.path, "identifier": node.identifier})


class _LimitError(Exception):
    pass


def _nodes(stream: BinaryIO, size: int) -> Iterator[_Node]:
    """Each ``SavedObject`` of ``SavedMetadata.nodes`` (field 1); other top-level fields are
    malformed (tf.keras' file has no others)."""
    for count, top in enumerate(fields(stream, 0, size)):
        if top.number != 1 or top.wire_type != LENGTH:
            raise WireError(f"unexpected top-level field {top.number}", top.offset)
        if count >= _MAX_NODES:
            raise _LimitError(f"more than {_MAX_NODES} objects")
        path = identifier = metadata = ""
        for f in fields(stream, top.offset, top.offset + top.value):
            if f.wire_type != LENGTH:
                continue
            if f.number == 3:
                path = read_text(stream, f, _MAX_TEXT)
            elif f.number == 4:
                identifier = read_text(stream, f, _MAX_TEXT)
            elif f.number == 5:
                if f.value > MAX_METADATA:
                    raise _LimitError(f"an object's metadata holds {f.value} bytes (limit "
                                      f"{MAX_METADATA})")
                metadata = read_text(stream, f, MAX_METADATA)
        yield _Node(top.offset, path, identifier, metadata)
