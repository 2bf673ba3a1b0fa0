"""Sniffing by content: names never matter; text is not mistaken for a pickle."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.scan import Format
from bastion.scan.sniff import sniff_bytes


def _torch(legacy: bool) -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def _zip(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n in names:
            z.writestr(n, b"x")
    return buf.getvalue()


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("a.txt")
        info.size = 1
        t.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


def _npy() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ones(3))
    return buf.getvalue()


@pytest.mark.parametrize(("data", "expected"), [
    (pickle.dumps([1, 2], protocol=0), Format.PICKLE),
    (pickle.dumps({"a": 1}, protocol=1), Format.PICKLE),
    (pickle.dumps({"a": 1}, protocol=5), Format.PICKLE),
    (_torch(legacy=False), Format.TORCH_ZIP),
    (_torch(legacy=True), Format.TORCH_LEGACY),
    (_npy(), Format.NUMPY),
    (_zip(["a.npy", "b.npy"]), Format.NUMPY_NPZ),
    (_zip(["config.json", "metadata.json", "model.weights.h5"]), Format.KERAS),
    (_zip(["readme.md"]), Format.ZIP),
    (_zip(["a/data.pkl\n", "data.pkl", "/data.pkl", "a/b/data.pkl"]), Format.ZIP),  # no prefix/
    (_zip(["readme.md", "a/data.pkl"]), Format.TORCH_ZIP),
    (_tar(), Format.TAR),
    (gzip.compress(b"x"), Format.GZIP),
    (bz2.compress(b"x"), Format.BZIP2),
    (lzma.compress(b"x"), Format.XZ),
    (zlib.compress(b"some data"), Format.ZLIB),
    (b"GGUF\x03\x00\x00\x00", Format.GGUF),
    (b"\x89HDF\r\n\x1a\n" + bytes(100), Format.HDF5),
    (b"7z\xbc\xaf\x27\x1c" + bytes(30), Format.SEVENZIP),
    (b"hello world\n", Format.UNKNOWN),
    (b"N\n", Format.UNKNOWN),
    (b"(this is a note)\n", Format.UNKNOWN),
    (b"", Format.UNKNOWN),
])
def test_formats_by_content(data: bytes, expected: Format) -> None:
    assert sniff_bytes(data) is expected


def test_truncated_proto_pickle_is_still_a_pickle() -> None:
    # a broken pickle must reach the pickle scanner (which reports the break), not "unknown"
    assert sniff_bytes(pickle.dumps(list(range(100)), protocol=4)[:-20]) is Format.PICKLE


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_sniff_never_raises(data: bytes) -> None:
    assert isinstance(sniff_bytes(data), Format)


def test_safetensors_with_an_absurd_header_length_still_reaches_its_scanner() -> None:
    import struct

    assert sniff_bytes(struct.pack("<Q", 2**63) + b'{"w": {}}') is Format.SAFETENSORS
    assert sniff_bytes(b'        {"indented": "json"}\n') is Format.UNKNOWN


def test_tokenizer_configs_by_content() -> None:
    import json

    assert sniff_bytes(json.dumps({"chat_template": "{{ x }}"}).encode()) \
        is Format.TOKENIZER_CONFIG
    assert sniff_bytes(b'{"model_type": "llama", "vocab_size": 10}') is Format.UNKNOWN
    assert sniff_bytes(b'{"chat_template": "unterminated') is Format.UNKNOWN


def test_tf_keras_metadata_is_part_of_a_savedmodel() -> None:
    from tests.scan.corpus_formats import keras_metadata_bytes, keras_metadata_nodes

    assert sniff_bytes(keras_metadata_bytes(keras_metadata_nodes())) is Format.SAVEDMODEL
    # The same structure with metadata that is not JSON is not claimed.
    assert sniff_bytes(keras_metadata_bytes([("root", "_tf_keras_layer", "x")])) \
        is Format.UNKNOWN


def _opener(canary: Path) -> bytes:
    """Protocol 0, no header: ``open(canary, "w")``, the call a loader makes before anything
    after it is read."""
    return f"c__builtin__\nopen\n(S'{canary}'\nS'w'\ntR".encode()


@pytest.mark.parametrize(("tail", "why"), [
    (b"\xff\xff", "an invalid opcode after the payload"),
    (b"0000000", "stack underflow after the payload"),
    (b"g99\n.", "a memo entry that was never stored"),
])
def test_a_headerless_pickle_that_breaks_after_its_payload_is_a_pickle(
    tail: bytes, why: str, canary: Path
) -> None:
    """nullifAI: pickle.load runs the call, then fails; the scanner must judge the call,
    not call the file unknown (info, exit 0)."""
    from bastion.scan import scan_bytes

    data = _opener(canary) + tail
    assert sniff_bytes(data) is Format.PICKLE, why
    rules = {(f.rule, f.severity.value) for f in scan_bytes(data, "x.pkl").findings}
    assert ("pickle.global.dangerous", "critical") in rules
    assert not canary.exists()


def test_a_long_string_first_does_not_hide_the_pickle(canary: Path) -> None:
    data = b"S'" + b"A" * 10_000 + b"'\np0\n0" + _opener(canary) + b"."
    assert sniff_bytes(data) is Format.PICKLE


@pytest.mark.parametrize("text", [
    b"col1,col2\n1,2\n3,4\n",          # "c" then a line: not a name any import would find
    b"cat dog\nhello world\nmore\n",
    b"(see the notes below)\nplain text\n",
])
def test_text_that_starts_with_an_opcode_byte_stays_unknown(text: bytes) -> None:
    assert sniff_bytes(text) is Format.UNKNOWN


_KEY_PARTS = [b"auto_map", b"_target_", b"_class_", b"auto", b"_map", b"auto_", b"map", b"_",
              b"target_", b"class_", b"_target", b"{%", b"{{", b"{", b"%", b"}", b"x", b"\x00"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_KEY_PARTS) | st.binary(max_size=4), max_size=12))
def test_the_probes_quick_searches_equal_the_substring_tests(parts: list[bytes]) -> None:
    from bastion.scan.sniff import _CONFIG_KEY, _TEMPLATE_MARK

    head = b"".join(parts)
    config = b"auto_map" in head or b"_target_" in head or b"_class_" in head
    template = b"{%" in head or b"{{" in head
    assert (_CONFIG_KEY.search(head) is not None) == config, head
    assert (_TEMPLATE_MARK.search(head) is not None) == template, head


def test_a_matlab_file_is_not_a_pickle_though_its_text_header_reads_as_opcodes() -> None:
    """``MATLAB 5.0 …`` reads as BININT2 then LONG, whose line runs to the end of the file: a
    loader fails there having run nothing (found by the benign zoo: scipy.io.savemat)."""
    import scipy.io

    buf = io.BytesIO()
    scipy.io.savemat(buf, {"a": np.arange(6.0).reshape(2, 3)})
    assert buf.getvalue().startswith(b"MATLAB")
    assert sniff_bytes(buf.getvalue()) is Format.UNKNOWN


def test_a_text_opening_that_ends_the_file_after_an_import_is_still_a_pickle() -> None:
    data = b"cos\nsystem\n(S'touch x'\n"  # imports, then the file ends before STOP
    assert sniff_bytes(data) is Format.PICKLE
