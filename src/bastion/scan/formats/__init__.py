"""The format → scanner registry: one line per format; the engine knows nothing else.

Entries name a module of this package and a scanner class, imported on first use.

A format with no entry here is reported (``scan.format.unscanned``), never skipped quietly.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from functools import cached_property
from typing import Final

from bastion.findings import Finding
from bastion.scan.interface import Format, FormatScanner, Member, ScanLimits, Source


class _Lazy:
    """A registry entry imported on first use: a one-file scan pays only for its formats."""

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name

    @cached_property
    def _scanner(self) -> FormatScanner:
        module = importlib.import_module(f"bastion.scan.formats.{self._module}")
        scanner: FormatScanner = getattr(module, self._name)()
        return scanner

    @property
    def formats(self) -> frozenset[Format]:
        """The wrapped scanner's formats."""
        return self._scanner.formats

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Delegate to the wrapped scanner."""
        return self._scanner.scan(source, limits)

    def __getattr__(self, name: str) -> object:  # with_policy, for policy-aware scanners
        return getattr(self._scanner, name)


__all__ = ["CONTAINERS", "SCANNERS"]

SCANNERS: Final[dict[Format, FormatScanner]] = {
    Format.PICKLE: _Lazy("pickle", "PickleScanner"),
    Format.JOBLIB: _Lazy("pickle", "PickleScanner"),
    Format.TORCH_LEGACY: _Lazy("torch", "TorchLegacyScanner"),
    Format.NUMPY: _Lazy("numpy", "NumpyScanner"),
    Format.TORCH_ZIP: _Lazy("archives", "ZipScanner"),
    Format.NUMPY_NPZ: _Lazy("archives", "ZipScanner"),
    Format.ZIP: _Lazy("archives", "ZipScanner"),
    Format.TAR: _Lazy("archives", "TarScanner"),
    Format.TORCH_TAR: _Lazy("archives", "TarScanner"),
    Format.SEVENZIP: _Lazy("archives", "SevenZipScanner"),
    Format.GZIP: _Lazy("archives", "CompressedScanner"),
    Format.BZIP2: _Lazy("archives", "CompressedScanner"),
    Format.XZ: _Lazy("archives", "CompressedScanner"),
    Format.LZMA: _Lazy("archives", "CompressedScanner"),
    Format.LZ4: _Lazy("archives", "CompressedScanner"),
    Format.ZLIB: _Lazy("archives", "CompressedScanner"),
    Format.KERAS: _Lazy("keras", "KerasScanner"),
    Format.HDF5: _Lazy("keras", "KerasScanner"),
    Format.ONNX: _Lazy("onnx", "OnnxScanner"),
    Format.SAVEDMODEL: _Lazy("savedmodel", "SavedModelScanner"),
    Format.SAFETENSORS: _Lazy("safetensors", "SafetensorsScanner"),
    Format.GGUF: _Lazy("gguf", "GGUFScanner"),
    Format.TOKENIZER_CONFIG: _Lazy("tokenizer", "TokenizerConfigScanner"),
    Format.CHAT_TEMPLATE: _Lazy("tokenizer", "ChatTemplateScanner"),
    Format.HF_CONFIG: _Lazy("configs", "ConfigScanner"),
    Format.HYDRA_CONFIG: _Lazy("configs", "ConfigScanner"),
}

CONTAINERS: Final = frozenset({
    Format.TORCH_ZIP, Format.NUMPY_NPZ, Format.ZIP, Format.TAR, Format.TORCH_TAR,
    Format.SEVENZIP, Format.GZIP, Format.BZIP2, Format.XZ, Format.LZMA, Format.LZ4, Format.ZLIB,
    Format.KERAS,
})
"""Formats whose members are scanned in turn; not opened beyond ``ScanLimits.max_depth``."""
