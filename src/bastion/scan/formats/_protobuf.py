"""A minimal, bounded reader of the protobuf wire format, for ONNX and TensorFlow SavedModel.

Why our own: parsing with the generated message classes would need TensorFlow for SavedModel, and
reads whole messages into memory (an ONNX file with embedded weights is gigabytes). This reader
walks one message at a time over a seekable stream, yields each field's number, wire type and
value (or the offset and length of a length-delimited payload), and never recurses: callers
descend into sub-messages explicitly, with their own depth bound. Tensor payloads are skipped by
seeking, so the cost is proportional to the number of fields, not to the bytes of weights.

    >>> import io
    >>> [(f.number, f.value) for f in fields(io.BytesIO(b"\\x08\\x07\\x12\\x02hi"), 0, 6)]
    [(1, 7), (2, 2)]
    >>> probe_protobuf(b"\\x08\\x07\\x12\\x07pytorch\\x1a\\x032.0:\\x00") == Format.ONNX
    True
"""

from __future__ import annotations

import codecs
import io
import json
from collections.abc import Iterator
from typing import BinaryIO, Final, NamedTuple

from bastion.scan.interface import Format

__all__ = [
    "LENGTH",
    "VARINT",
    "WireError",
    "WireField",
    "fields",
    "is_keras_metadata",
    "probe_protobuf",
    "read_payload",
    "read_text",
]

VARINT: Final = 0
FIXED64: Final = 1
LENGTH: Final = 2
FIXED32: Final = 5
_MAX_VARINT_BYTES: Final = 10


class WireError(Exception):
    """The bytes are not a well-formed protobuf message (internal: scanners turn it into a finding).

    ``truncated`` tells a stream that simply ended early from one that is malformed.
    """

    def __init__(self, message: str, offset: int, *, truncated: bool = False) -> None:
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset
        self.truncated = truncated


class WireField(NamedTuple):
    """One field of a message.

    For varint and fixed fields ``value`` is the integer and ``offset`` the field's key; for a
    length-delimited field ``value`` is the payload length and ``offset`` where the payload starts.
    """

    number: int
    wire_type: int
    value: int
    offset: int


def _varint(stream: BinaryIO, pos: int, end: int) -> tuple[int, int]:
    """Decode the varint at ``pos``; return it and the position after it."""
    stream.seek(pos)
    data = stream.read(min(_MAX_VARINT_BYTES, end - pos))
    result = 0
    for i, byte in enumerate(data):
        result |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return result, pos + i + 1
    if len(data) == _MAX_VARINT_BYTES:
        raise WireError("varint longer than 10 bytes", pos)
    raise WireError("message ends inside a varint", pos, truncated=True)


def fields(stream: BinaryIO, start: int, end: int) -> Iterator[WireField]:
    """Yield the fields of the message stored in ``stream[start:end]``, in order.

    The caller may read or descend into a payload between two steps: each step seeks back to where
    it left off. Raises :class:`WireError` on a malformed key, an unsupported wire type (groups are
    deprecated and unused by ONNX and TensorFlow) or a field that runs past ``end``.
    """
    pos = start
    while pos < end:
        key_at = pos
        key, pos = _varint(stream, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0", key_at)
        if wire_type == VARINT:
            value, pos = _varint(stream, pos, end)
            yield WireField(number, wire_type, value, key_at)
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            stream.seek(pos)
            data = stream.read(size)
            if len(data) < size or pos + size > end:
                raise WireError("message ends inside a fixed-width field", key_at, truncated=True)
            pos += size
            yield WireField(number, wire_type, int.from_bytes(data, "little"), key_at)
        elif wire_type == LENGTH:
            length, pos = _varint(stream, pos, end)
            if pos + length > end:
                raise WireError(
                    f"field {number} declares {length} bytes, more than its message holds",
                    key_at,
                )
            yield WireField(number, wire_type, length, pos)
            pos += length
        else:
            raise WireError(f"unsupported wire type {wire_type} (field {number})", key_at)


def read_payload(stream: BinaryIO, field: WireField, limit: int) -> bytes:
    """The payload of a length-delimited field, refusing more than ``limit`` bytes."""
    if field.wire_type != LENGTH:
        raise WireError(f"field {field.number} should be length-delimited", field.offset)
    if field.value > limit:
        raise WireError(f"field {field.number} holds {field.value} bytes (limit {limit})",
                        field.offset)
    stream.seek(field.offset)
    data = stream.read(field.value)
    if len(data) < field.value:
        raise WireError("stream ends inside a field", field.offset, truncated=True)
    return data


def read_text(stream: BinaryIO, field: WireField, limit: int = 1 << 20) -> str:
    """A string field as text; invalid UTF-8 is a :class:`WireError` (protobuf requires UTF-8)."""
    try:
        return read_payload(stream, field, limit).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError(f"field {field.number} is not valid UTF-8", field.offset) from None


# -- telling ONNX from SavedModel by structure ------------------------------------------------

# ModelProto (onnx.proto): top-level field numbers and their wire types.
_ONNX_TOP: Final = {1: VARINT, 2: LENGTH, 3: LENGTH, 4: LENGTH, 5: VARINT, 6: LENGTH,
                    7: LENGTH, 8: LENGTH, 14: LENGTH, 20: LENGTH, 25: LENGTH, 26: LENGTH}
# MetaGraphDef (meta_graph.proto): every field is a sub-message or map entry.
_META_GRAPH_FIELDS: Final = frozenset(range(1, 8))
# SavedObject (tf_keras/protobuf/saved_metadata.proto): node_id, node_path, identifier,
# metadata (JSON), version. SavedMetadata itself is only ``repeated SavedObject nodes = 1``.
_KERAS_OBJECT: Final = {2: VARINT, 3: LENGTH, 4: LENGTH, 5: LENGTH, 6: LENGTH}
_KERAS_IDENTIFIER: Final = "_tf_keras_"


def _prefix_fields(head: bytes, start: int, end: int) -> list[WireField]:
    """The fields of ``head[start:end]`` that begin before ``head`` runs out (``end`` may lie past
    it: the head is only the start of the file)."""
    found: list[WireField] = []
    try:
        for field in fields(io.BytesIO(head), start, end):
            found.append(field)
    except WireError as exc:
        if not exc.truncated:
            raise
    return found


def _is_text(data: bytes, *, final: bool = True) -> bool:
    """Printable UTF-8 (``final=False``: ``data`` may stop inside a character)."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=final)
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\t\n\r" for ch in text)


def _looks_like_meta_graph(head: bytes, field: WireField) -> bool:
    try:
        inner = _prefix_fields(head, field.offset, field.offset + field.value)
    except WireError:
        return False
    return bool(inner) and all(
        f.number in _META_GRAPH_FIELDS and f.wire_type == LENGTH for f in inner
    )


def _json_start(data: bytes, complete: bool) -> bool:
    """``data`` opens a JSON object (and, when all of it is there, is one)."""
    if not data.lstrip().startswith(b"{"):
        return False
    if not complete:
        return True
    try:
        return isinstance(json.loads(data), dict)
    except (ValueError, RecursionError):
        return False


def is_keras_metadata(head: bytes) -> bool:
    """True when ``head`` starts a tf.keras ``keras_metadata.pb`` (``SavedMetadata``).

    Evidence, from the bytes only: every top-level field is field 1, length-delimited (the
    ``nodes``); the first node's fields carry ``SavedObject``'s numbers and wire types; and it
    has a Keras identifier (``_tf_keras_layer``, ``_tf_keras_model``, ...) or metadata that is a
    JSON object, as tf.keras writes it (a node's metadata is checked whole when the head holds it).
    """
    try:
        top = _prefix_fields(head, 0, 1 << 62)
    except WireError:
        return False
    return _keras_metadata(head, top)


def _keras_metadata(head: bytes, top: list[WireField]) -> bool:
    """:func:`is_keras_metadata` on the top-level fields already read from ``head``."""
    if not top or any(f.number != 1 or f.wire_type != LENGTH for f in top):
        return False
    first = top[0]
    try:
        inner = _prefix_fields(head, first.offset, first.offset + first.value)
    except WireError:
        return False
    keras = False
    for f in inner:
        if _KERAS_OBJECT.get(f.number) != f.wire_type:
            return False
        if f.wire_type != LENGTH or f.number == 6:
            continue
        complete = f.offset + f.value <= len(head)
        payload = head[f.offset : f.offset + f.value]
        if f.number == 5:
            if not _json_start(payload, complete):
                return False
            keras = True
        elif not _is_text(payload, final=complete):
            return False
        elif f.number == 4 and payload.startswith(_KERAS_IDENTIFIER.encode()):
            keras = True
    return keras


_FIRST_KEYS: Final = (1 << 3, (2 << 3) | 7)
"""The keys of fields 1 and 2, whatever their wire type."""


def _first_key(head: bytes) -> int:
    """The varint ``head`` opens with (-1 when it does not hold a whole one): the first field's
    key, as :func:`fields` decodes it, non-minimal encodings included."""
    result = 0
    for i, byte in enumerate(head[:_MAX_VARINT_BYTES]):
        result |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return result
    return -1


def probe_protobuf(head: bytes) -> Format | None:
    """Tell an ONNX ``ModelProto`` from a TensorFlow ``SavedModel`` by its first bytes, or ``None``.

    Both start with field 1 as a varint (``ir_version`` / ``saved_model_schema_version``), so the
    decision rests on structure: a SavedModel has only fields 1 and 2, and field 2 is a
    ``MetaGraphDef`` whose own fields are all sub-messages numbered 1-7; an ONNX model has an
    ``ir_version`` and its other fields carry ONNX's numbers and wire types, with field 2 a
    printable producer name. tf.keras' ``keras_metadata.pb`` (:func:`is_keras_metadata`), a
    part of the SavedModel directory that tf.keras loads, counts as a SavedModel.
    """
    # Every answer but None needs a first field numbered 1 or 2 (keys 8-23): most files that
    # reach this probe (text, images, tables) are turned away by their first bytes, before the
    # head is read as fields.
    if not _FIRST_KEYS[0] <= _first_key(head) <= _FIRST_KEYS[1]:
        return None
    try:
        top = _prefix_fields(head, 0, 1 << 62)
    except WireError:
        return None
    if _keras_metadata(head, top):
        return Format.SAVEDMODEL
    if not top:
        return None
    numbers = [f.number for f in top]
    if set(numbers) <= {1, 2} and numbers.count(1) <= 1 and 2 in numbers:
        first_meta = next(f for f in top if f.number == 2)
        one_ok = all(f.wire_type == VARINT and f.value < 16 for f in top if f.number == 1)
        if one_ok and first_meta.wire_type == LENGTH and _looks_like_meta_graph(head, first_meta):
            return Format.SAVEDMODEL
    if top[0].number != 1 or top[0].wire_type != VARINT or not 1 <= top[0].value <= 64:
        return None
    if any(_ONNX_TOP.get(f.number) != f.wire_type for f in top):
        return None
    for f in top:
        inside = f.offset + f.value <= len(head)
        if f.number in (2, 3, 4) and inside and not _is_text(head[f.offset : f.offset + f.value]):
            return None
    if len(top) < 2:
        return None
    return Format.ONNX
