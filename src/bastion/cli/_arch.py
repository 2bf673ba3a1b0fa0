"""``--arch package.module:factory``: the user's own code that builds the empty network.

A ``state_dict`` or safetensors file holds weights only; the network they fill is code the
user wrote. It is imported only when ``--arch`` names it (never guessed, never by default),
from the Python path, with the current directory searched last (``python -m`` searches it
first), so a file in the current directory cannot stand in for an installed package.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable
from typing import Any, Final

from bastion.errors import UsageError

__all__ = ["import_factory"]

_FORM: Final = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):"
                          r"(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")


def import_factory(text: str) -> Callable[[], Any]:
    """The callable ``text`` (``package.module:factory``) names, imported now.

    Raises:
        UsageError: ``text`` is not of that form, the module cannot be imported (missing, or
            its own code failed), the attribute is missing, or it is not callable.
    """
    match = _FORM.match(text)
    if match is None:
        raise UsageError(f"--arch {text!r} is not package.module:factory",
                         hint="e.g. --arch mynets.digits:SmallCNN (a class or a function that "
                              "returns the empty torch.nn.Module)")
    name, attr = match["module"], match["attr"]
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise UsageError(
            f"--arch {text}: no module named {exc.name or name!r}",
            hint="install the package that defines the network, or run from the directory "
                 "that holds it (or add it to PYTHONPATH)") from None
    except Exception as exc:  # the user's module's own code failed while importing
        raise UsageError(
            f"--arch {text}: importing {name} failed: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}",
            hint=f"fix the module (`python -c 'import {name}'` shows the error)") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            public = sorted(n for n in dir(module) if not n.startswith("_"))
            raise UsageError(f"--arch {text}: {name} has no attribute {attr!r}",
                             hint=f"names in {name}: {', '.join(public)[:300]}")
        target = getattr(target, part)
    if not callable(target):
        raise UsageError(f"--arch {text}: {name}.{attr} is a {type(target).__name__}, not "
                         "callable", hint="name the network's class, or a function that "
                                          "builds it without arguments")
    return target  # type: ignore[no-any-return]
