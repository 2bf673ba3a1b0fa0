"""joblib dumps through the restricted unpickler: arrays read as joblib reads them, nothing run.

``joblib.dump`` pickles each NumPy array as a ``joblib.numpy_pickle.NumpyArrayWrapper`` and
writes the array's bytes straight into the stream after the wrapper's BUILD (an object array
as a nested pickle instead). ``joblib.load`` swaps each wrapper for the array it reads there.
This does the same on :class:`~bastion.scan.pickle.RestrictedUnpickler`, so every import of
the outer and nested pickles goes through the scanner's policy, and BUILD on imported objects
is refused as in any pickle. Only plain ``ndarray`` wrappers are read (no memory maps, no
subclasses); compressed dumps are not loaded.
"""

from __future__ import annotations

import pickle
from typing import IO, Any, ClassVar

import numpy as np

from bastion.models.interface import ModelFormatError
from bastion.scan.pickle import Policy, RestrictedUnpickler

__all__ = ["loads"]

_WRAPPER = ("joblib.numpy_pickle", "NumpyArrayWrapper")


class _JoblibUnpickler(RestrictedUnpickler):
    """The restricted unpickler, reading joblib's inline arrays after each wrapper's BUILD."""

    dispatch: ClassVar[dict[int, Any]] = dict(RestrictedUnpickler.dispatch)

    def __init__(self, file: IO[bytes], *, policy: Policy | None = None) -> None:
        super().__init__(file, policy=policy)
        self.file_handle = file

    def _load_build_array(self) -> None:
        RestrictedUnpickler.dispatch[pickle.BUILD[0]](self)  # the policy's BUILD, first
        top = self.stack[-1]
        if (type(top).__module__, type(top).__name__) == _WRAPPER:
            self.stack[-1] = self._read_array(top)

    dispatch[pickle.BUILD[0]] = _load_build_array

    def _read_array(self, wrapper: Any) -> np.ndarray[Any, Any]:
        """The array that follows ``wrapper`` in the stream, as joblib's ``read_array``."""
        dtype, shape, order = (getattr(wrapper, "dtype", None), getattr(wrapper, "shape", None),
                               getattr(wrapper, "order", "C"))
        if getattr(wrapper, "subclass", np.ndarray) is not np.ndarray:
            raise ModelFormatError("a joblib array of a NumPy subclass; only plain arrays load")
        if (not isinstance(dtype, np.dtype) or not isinstance(shape, tuple)
                or not all(isinstance(d, int) and d >= 0 for d in shape) or order not in "CF"):
            raise ModelFormatError("a joblib array whose dtype, shape or order cannot be read")
        if dtype.hasobject:  # a nested pickle, under the same policy
            nested = _JoblibUnpickler(self.file_handle, policy=self.policy).load()
            if not isinstance(nested, np.ndarray):
                raise ModelFormatError("a joblib object array that is not an array")
            return nested
        if getattr(wrapper, "numpy_array_alignment_bytes", None) is not None:
            padding = self.file_handle.read(1)
            if len(padding) != 1 or len(self.file_handle.read(padding[0])) != padding[0]:
                raise ModelFormatError("a joblib array is cut short (truncated file)")
        count = 1
        for d in shape:
            count *= d
        size = count * dtype.itemsize
        raw = self.file_handle.read(size)
        if len(raw) != size:
            raise ModelFormatError("a joblib array is cut short (truncated file)")
        array = np.frombuffer(raw, dtype=dtype).copy()  # writable, as joblib's
        array = array.reshape(shape[::-1]).transpose() if order == "F" else array.reshape(shape)
        if dtype.byteorder not in ("=", "|"):
            array = array.astype(dtype.newbyteorder("="))
        return array


def loads(data: bytes, *, policy: Policy | None = None) -> Any:
    """What ``joblib.load`` would return for the (uncompressed) dump ``data``, or a refusal."""
    import io

    return _JoblibUnpickler(io.BytesIO(data), policy=policy).load()
