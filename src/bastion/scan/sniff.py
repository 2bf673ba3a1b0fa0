"""Format by content: magic bytes and structure, never the file name.

    >>> import io, pickle
    >>> sniff_bytes(pickle.dumps([1, 2]))
    <Format.PICKLE: 'pickle'>
    >>> sniff_bytes(b"just text")
    <Format.UNKNOWN: 'unknown'>

Why: modelscan picks a scanner by extension, so ``model.bin`` holding a pickle, or a pickle
renamed ``.txt``, is skipped as "not a model" and reported clean. Loaders do not look at names
either (``torch.load`` checks for a zip header, ``numpy.load`` for its magic, ``pickle`` reads
whatever it is given), so neither does the scanner.
"""

from __future__ import annotations

import io
import lzma
import re
import struct
import zlib
from collections.abc import Callable
from typing import BinaryIO, Final

from bastion.scan._zipdir import torch_pickle, zip_directory
from bastion.scan.interface import Format, Source
from bastion.scan.pickle._machine import OPCODES, analyse
from bastion.scan.pickle._values import Analysis

__all__ = ["TORCH_LEGACY_MAGIC", "sniff", "sniff_bytes", "sniff_stream"]

HEAD: Final = 1 << 16
"""Bytes read from the start of a file to decide its format."""
TORCH_LEGACY_MAGIC: Final = 0x1950A86A20F9469CFC6C
"""The integer PyTorch's legacy format pickles first (``torch.serialization.MAGIC_NUMBER``)."""
_MAGIC_LONG1: Final = b"\x8a\x0a" + TORCH_LEGACY_MAGIC.to_bytes(10, "little")
"""LONG1 of the magic number, as every protocol writes it."""
_TRIAL: Final = 4096
_LONG_TRIAL: Final = 16 << 20
"""How far a protocol 0/1 pickle's opening is read when its first value is longer than
:data:`_TRIAL` (the scanner itself reads all of it)."""
"""Bytes of a header-less (protocol 0/1) pickle interpreted to tell it from text."""


def sniff(source: Source) -> Format:
    """The format of ``source``, decided by its content."""
    with source.open() as stream:
        return sniff_stream(stream, source.size)


def sniff_bytes(data: bytes) -> Format:
    """The format of an in-memory blob."""
    return sniff_stream(io.BytesIO(data), len(data))


def sniff_stream(stream: BinaryIO, size: int) -> Format:
    """The format of a seekable stream of ``size`` bytes (read from its start)."""
    stream.seek(0)
    head = stream.read(HEAD)
    for probe in _PROBES:
        fmt = probe(head, stream, size)
        if fmt is not None:
            return fmt
    return Format.UNKNOWN


def _zip(head: bytes, stream: BinaryIO, size: int) -> Format | None:
    if head[:4] not in (b"PK\x03\x04", b"PK\x05\x06"):
        return None
    try:
        names = [info.filename for info in zip_directory(stream)]
    except Exception:  # zipfile raises many types (NotImplementedError too)
        return Format.ZIP  # the zip scanner reports why it cannot be read
    if any(torch_pickle(n) for n in names):
        return Format.TORCH_ZIP
    if "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names):
        return Format.KERAS
    if names and all(n.endswith(".npy") for n in names):
        return Format.NUMPY_NPZ
    return Format.ZIP


def _magic(head: bytes, stream: BinaryIO, size: int) -> Format | None:
    del stream, size
    if head.startswith(b"\x93NUMPY"):
        return Format.NUMPY
    if any(head[o:o + 8] == b"\x89HDF\r\n\x1a\n" for o in (0, 512, 1024, 2048)):
        return Format.HDF5
    if head.startswith(b"GGUF"):
        return Format.GGUF
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return Format.SEVENZIP
    if head.startswith(b"\x1f\x8b"):
        return Format.GZIP
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return Format.BZIP2
    if head.startswith(b"\xfd7zXZ\x00"):
        return Format.XZ
    if head.startswith(b"\x04\x22\x4d\x18"):
        return Format.LZ4
    return None


def _tar(head: bytes, stream: BinaryIO, size: int) -> Format | None:
    del stream, size
    if len(head) < 512 or not _tar_checksum_ok(head[:512]):
        return None
    return Format.TAR


def _tar_checksum_ok(block: bytes) -> bool:
    field = block[148:156].split(b"\x00", 1)[0].strip()
    try:
        declared = int(field or b"-1", 8)
    except ValueError:
        return False
    actual = sum(block[:148]) + 8 * 32 + sum(block[156:])
    return declared == actual and block[:100].strip(b"\x00") != b""


def _safetensors(head: bytes, stream: BinaryIO, size: int) -> Format | None:
    del stream
    if len(head) < 10:
        return None
    (n,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or n < 2:
        return None
    # A length that does not fit is still safetensors (its scanner reports the length), unless
    # the eight bytes are plain text: indented JSON must not be mistaken for a bad header.
    if n <= size - 8 or not all(0x20 <= b < 0x7F for b in head[:8]):
        return Format.SAFETENSORS
    return None


def _pickle(head: bytes, stream: BinaryIO, size: int) -> Format | None:
    if not head or head[0] not in OPCODES:
        return None
    if head[0] == 0x80:  # PROTO: a pickle; only PyTorch's magic-number pickle needs a look
        if len(head) < 2 or head[1] > 5:
            return None
        if _MAGIC_LONG1 in head[:32]:
            first = analyse(io.BytesIO(head[:64]), 0, min(len(head), 64), max_ops=8)
            if first.complete and first.result == TORCH_LEGACY_MAGIC:
                return Format.TORCH_LEGACY
    else:  # protocol 0/1 has no header: the opening opcodes must make sense
        trial, read = _trial(head, stream, size)
        broke = not trial.complete and any(
            not p.rule.endswith(("truncated", "limit.ops")) for p in trial.problems
        )
        # the whole file read, and it ends inside the opening opcodes: a loader fails there
        ended = not trial.complete and read >= size and not any(
            p.rule.endswith("limit.ops") for p in trial.problems)
        # A loader runs everything before a break (nullifAI: a payload, then garbage): a
        # stream that imported a real name or made a call before breaking is a pickle.
        acted = trial.calls or any(_importable(g.module, g.name) for g in trial.globals)
        if ((broke or ended) and not acted) or trial.ops < 2:
            return None  # text that happens to start with an opcode byte
    if b"joblib.numpy_pickle" in head or b"NumpyArrayWrapper" in head:
        return Format.JOBLIB
    return Format.PICKLE


def _trial(head: bytes, stream: BinaryIO, size: int) -> tuple[Analysis, int]:
    """The opening of a header-less (protocol 0/1) pickle, interpreted, and how many bytes
    it was given: the first :data:`_TRIAL` bytes, or up to :data:`_LONG_TRIAL` when its first
    values run past them (a long string first must not hide what follows it)."""
    window = head[:_TRIAL]
    trial = analyse(io.BytesIO(window), 0, len(window), max_ops=2_000)
    if trial.ops < 2 and not trial.complete and size > len(window) and any(
        p.rule.endswith("truncated") for p in trial.problems
    ):
        read = min(size, _LONG_TRIAL)
        return analyse(stream, 0, read, max_ops=2_000), read
    return trial, len(window)


def _importable(module: str, name: str) -> bool:
    """Whether ``module``/``name`` are names an import could find (not text that happened
    to follow a ``c``: ``col1,col2``)."""
    return all(part.isidentifier() for part in (*module.split("."), *name.split(".")))


def _zlib(head: bytes, stream: BinaryIO, size: int) -> Format | None:
    del stream, size
    if len(head) < 2 or head[0] & 0x0F != 8 or (head[0] << 8 | head[1]) % 31:
        return None
    try:
        zlib.decompressobj().decompress(head[:4096], 1)
    except zlib.error:
        return None
    return Format.ZLIB


_LZMA_DICTS: Final = frozenset(
    {1 << n for n in range(12, 31)} | {3 << n for n in range(11, 30)}
)
"""Dictionary sizes LZMA encoders write: 2^n or 3·2^(n-1), 4 KiB to 1.5 GiB (liblzma, 7-Zip)."""


def is_lzma_alone(head: bytes) -> bool:
    """An LZMA-alone stream: a props byte (lc, lp, pb) under 225, a dictionary size encoders
    write, a plausible length (unknown, or under 2^48), the range coder's leading zero byte,
    and the first bytes decoding without error. Joblib's ``compress="lzma"`` writes one; the
    format has no magic number, so every check counts."""
    if len(head) < 14 or head[0] >= 225 or head[13] != 0:
        return False
    if int.from_bytes(head[1:5], "little") not in _LZMA_DICTS:
        return False
    length = int.from_bytes(head[5:13], "little")
    if length != (1 << 64) - 1 and length >= 1 << 48:
        return False
    try:
        lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(head[:65536], 1)
    except lzma.LZMAError:
        return False
    return True


def _lzma(head: bytes, stream: BinaryIO, size: int) -> Format | None:
    del stream, size
    return Format.LZMA if is_lzma_alone(head) else None


def _protobuf(head: bytes, stream: BinaryIO, size: int) -> Format | None:
    """ONNX vs SavedModel: both are protobuf; the formats helper owns the probe."""
    del stream, size
    from bastion.scan.formats._protobuf import probe_protobuf

    return probe_protobuf(head)


def _tokenizer(head: bytes, stream: BinaryIO, size: int) -> Format | None:
    """A JSON object holding ``chat_template``: the formats helper owns the probe."""
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return None  # most files: no import, no read
    from bastion.scan.formats.tokenizer import probe_tokenizer_config

    return Format.TOKENIZER_CONFIG if probe_tokenizer_config(head, stream, size) else None


# The two cheap tests every unrecognised file meets (text, images, tables: most of a directory).
# One compiled search each: ``b"{%" in head`` with a two-byte needle, and three ``in`` tests one
# after another, take about 4x as long over a 64 KiB head. A test holds each equal to the
# ``in`` tests it replaces.
_CONFIG_KEY: Final = re.compile(rb"_(?:(?<=auto_)map|target_|class_)")
"""Finds ``auto_map``, ``_target_`` or ``_class_`` (every search starts at the ``_``)."""
_TEMPLATE_MARK: Final = re.compile(rb"\{[%{]")
"""Finds ``{%`` or ``{{``."""


_SEARCH_LIMIT: Final = 1 << 30
"""How much of a text file past its head is searched for a config key. A larger text file is
sent to the config scanner whole, which reports that it cannot review it (fail closed)."""
_SEARCH_CHUNK: Final = 1 << 20


def _config(head: bytes, stream: BinaryIO, size: int) -> Format | None:
    """A config that makes its loader import code (``auto_map``, ``_target_``): the formats
    helper owns the probe. Hydra reads a whole YAML file, so a text file longer than the head
    is searched to its end (:func:`_key_past_head`), not only its first 64 KiB."""
    if not _CONFIG_KEY.search(head) and not (
            size > len(head) and _is_text(head) and _key_past_head(stream, len(head), size)):
        return None  # most files: no import
    from bastion.scan.formats.configs import probe

    return probe(head, stream, size)


def _is_text(head: bytes) -> bool:
    """UTF-8 text with no NUL (a head cut inside a character still counts)."""
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3
    return True


def _key_past_head(stream: BinaryIO, start: int, size: int) -> bool:
    """A config key in ``[start, size)`` of a text file, read in 1 MiB pieces that overlap
    by a key's length; a file past :data:`_SEARCH_LIMIT` counts as holding one, so the
    config scanner reports it unreviewed rather than nothing being said."""
    if size > _SEARCH_LIMIT:
        return True
    overlap = 16
    pos = start - overlap
    while pos < size:
        stream.seek(pos)
        piece = stream.read(_SEARCH_CHUNK + overlap)
        if not piece:
            return False
        if b"\x00" in piece:
            return False  # not text after all: no loader parses it as a config
        if _CONFIG_KEY.search(piece):
            return True
        pos += _SEARCH_CHUNK
    return False


def _template(head: bytes, stream: BinaryIO, size: int) -> Format | None:
    """A standalone Jinja chat template: the formats helper owns the probe."""
    del stream, size
    if not _TEMPLATE_MARK.search(head):
        return None  # most files: no import
    from bastion.scan.formats.tokenizer import is_chat_template

    return Format.CHAT_TEMPLATE if is_chat_template(head) else None


_PROBES: Final[tuple[Callable[[bytes, BinaryIO, int], Format | None], ...]] = (
    _zip, _magic, _tar, _safetensors, _zlib, _lzma, _pickle, _protobuf, _tokenizer, _config,
    _template,
)
