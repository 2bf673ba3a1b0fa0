"""Loading a user's model file for poisoning analysis, under the scanner's allowlist.

A model file is code: a plain ``pickle.load`` or ``torch.load(weights_only=False)`` runs
whatever it names. This loader never does: every global the file imports goes through
:class:`bastion.scan.pickle.RestrictedUnpickler` (the same policy ``bastion scan`` applies), so a
file that would run anything outside the allowlist is refused before it runs.

Accepted: a whole PyTorch module saved with ``torch.save(model, path)`` (built from
``torch.nn`` layers; a custom class is not on the allowlist and is refused), or a
scikit-learn estimator saved with ``pickle.dump``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bastion.data.interface import DataFormatError
from bastion.errors import BastionError

__all__ = ["load_model"]

_ZIP_MAGIC = b"PK\x03\x04"


def load_model(path: Path) -> Any:
    """The model in ``path``, loaded through the restricted unpickler (fails closed)."""
    from bastion.scan.pickle import restricted

    try:
        with path.open("rb") as fh:
            head = fh.read(4)
            fh.seek(0)
            if head == _ZIP_MAGIC:
                import torch

                return torch.load(fh, pickle_module=restricted, weights_only=False,
                                  map_location="cpu")
            return restricted.load(fh)
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read the model ({exc.strerror})") from exc
    except BastionError:
        raise  # the policy refused something: the message says what and why
    except Exception as exc:  # malformed bytes raise anything (KeyError on bad opcodes)
        raise DataFormatError(
            f"{path}: not a model file Bastion can load safely ({exc})",
            hint="save the whole module with torch.save(model, path), or a scikit-learn "
                 "estimator with pickle.dump; scan it first with 'bastion scan'",
        ) from exc
