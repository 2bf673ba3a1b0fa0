"""The format → scanner registry: one line per format; the engine knows nothing else.

A format with no entry here is reported (``scan.format.unscanned``), never skipped quietly.
"""

from __future__ import annotations

from typing import Final

from bastion.scan.formats.archives import (
    CompressedScanner,
    SevenZipScanner,
    TarScanner,
    ZipScanner,
)
from bastion.scan.formats.gguf import GGUFScanner
from bastion.scan.formats.keras import KerasScanner
from bastion.scan.formats.numpy import NumpyScanner
from bastion.scan.formats.onnx import OnnxScanner
from bastion.scan.formats.pickle import PickleScanner
from bastion.scan.formats.safetensors import SafetensorsScanner
from bastion.scan.formats.savedmodel import SavedModelScanner
from bastion.scan.formats.torch import TorchLegacyScanner
from bastion.scan.interface import Format, FormatScanner

__all__ = ["CONTAINERS", "SCANNERS"]

SCANNERS: Final[dict[Format, FormatScanner]] = {
    Format.PICKLE: PickleScanner(),
    Format.JOBLIB: PickleScanner(),
    Format.TORCH_LEGACY: TorchLegacyScanner(),
    Format.NUMPY: NumpyScanner(),
    Format.TORCH_ZIP: ZipScanner(),
    Format.NUMPY_NPZ: ZipScanner(),
    Format.ZIP: ZipScanner(),
    Format.TAR: TarScanner(),
    Format.TORCH_TAR: TarScanner(),
    Format.SEVENZIP: SevenZipScanner(),
    Format.GZIP: CompressedScanner(),
    Format.BZIP2: CompressedScanner(),
    Format.XZ: CompressedScanner(),
    Format.ZLIB: CompressedScanner(),
    Format.KERAS: KerasScanner(),
    Format.HDF5: KerasScanner(),
    Format.ONNX: OnnxScanner(),
    Format.SAVEDMODEL: SavedModelScanner(),
    Format.SAFETENSORS: SafetensorsScanner(),
    Format.GGUF: GGUFScanner(),
}

CONTAINERS: Final = frozenset({
    Format.TORCH_ZIP, Format.NUMPY_NPZ, Format.ZIP, Format.TAR, Format.TORCH_TAR,
    Format.SEVENZIP, Format.GZIP, Format.BZIP2, Format.XZ, Format.ZLIB, Format.KERAS,
})
"""Formats whose members are scanned in turn; not opened beyond ``ScanLimits.max_depth``."""
