"""The bounded protobuf reader and the ONNX / SavedModel probe, against real serialized messages."""

from __future__ import annotations

import contextlib
import io

import hypothesis.strategies as st
import onnx
import pytest
from hypothesis import given, settings
from tests.scan.corpus_formats import onnx_model, saved_model_bytes

from bastion.scan.formats._protobuf import (
    LENGTH,
    VARINT,
    WireError,
    fields,
    probe_protobuf,
    read_payload,
    read_text,
)
from bastion.scan.interface import Format


def _all(data: bytes) -> list[tuple[int, int, int]]:
    return [(f.number, f.wire_type, f.value) for f in fields(io.BytesIO(data), 0, len(data))]


def test_fields_reads_what_protobuf_wrote() -> None:
    opset = onnx.helper.make_opsetid("ai.onnx.ml", 300)  # domain=1 (string), version=2 (varint)
    data = opset.SerializeToString()
    assert _all(data) == [(1, LENGTH, 10), (2, VARINT, 300)]
    field = next(fields(io.BytesIO(data), 0, len(data)))
    assert read_text(io.BytesIO(data), field) == "ai.onnx.ml"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x08", "ends inside a varint"),
        (b"\x08" + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
        (b"\x12\x05ab", "more than its message holds"),
        (b"\x0b", "unsupported wire type 3"),
        (b"\x00\x01", "field number 0"),
        (b"\x09\x00\x00", "fixed-width"),
    ],
)
def test_malformed_messages_raise_wire_error(data: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        _all(data)


def test_read_payload_refuses_more_than_its_limit() -> None:
    data = b"\x12\x05hello"
    field = next(fields(io.BytesIO(data), 0, len(data)))
    with pytest.raises(WireError, match="limit 4"):
        read_payload(io.BytesIO(data), field, 4)


def test_read_text_rejects_invalid_utf8() -> None:
    data = b"\x12\x02\xff\xfe"
    field = next(fields(io.BytesIO(data), 0, len(data)))
    with pytest.raises(WireError, match="UTF-8"):
        read_text(io.BytesIO(data), field)


def test_probe_tells_onnx_from_savedmodel_by_structure() -> None:
    onnx_bytes = onnx_model().SerializeToString()
    saved = saved_model_bytes()
    assert onnx_bytes[0] == saved[0] == 0x08  # both open with field 1 as a varint
    assert probe_protobuf(onnx_bytes) is Format.ONNX
    assert probe_protobuf(saved) is Format.SAVEDMODEL
    # Only the head of a large file is given to the probe.
    assert probe_protobuf(onnx_bytes[:40]) is Format.ONNX
    assert probe_protobuf(saved[:40]) is Format.SAVEDMODEL


def test_probe_accepts_onnx_without_producer_name() -> None:
    model = onnx_model()
    model.ClearField("producer_name")
    assert probe_protobuf(model.SerializeToString()) is Format.ONNX


@pytest.mark.parametrize(
    "head",
    [b"", b"\x80\x04\x95", b"PK\x03\x04", b"GGUF\x03\x00\x00\x00", b"hello world", b"\x08\x01",
     b"{\"a\": 1}", b"\x08\x07\x12\x03\xff\xfe\xfd"],
)
def test_probe_rejects_other_content(head: bytes) -> None:
    assert probe_protobuf(head) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_fuzz_no_exception_escapes(data: bytes) -> None:
    result = probe_protobuf(data)
    assert result in (None, Format.ONNX, Format.SAVEDMODEL)
    with contextlib.suppress(WireError):
        _all(data)
