"""The zoo's recipes: one function per kind of artifact, registered under its library.

A recipe takes a :class:`Zoo` bound to one library and writes its files through the library's own
save path (``joblib.dump``, ``torch.save``, ``model.save_pretrained``, ...), naming the saver as it
goes so the manifest can say how each file was made. Library imports live inside the recipes, so
importing this package costs nothing and a missing library only skips its own recipes.
"""

from __future__ import annotations

import importlib
import pickle
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Recipe = Callable[["Zoo"], None]
RECIPES: dict[str, list[Recipe]] = {}

MODULES = (
    "numeric",
    "frames",
    "sklearn_",
    "estimators",
    "torch_",
    "torch_ecosystem",
    "huggingface",
    "boosting",
    "text",
    "stats",
    "science",
    "stdlib",
)


class Skip(Exception):  # noqa: N818 - it reads as ``raise Skip("why")``
    """A recipe that cannot run here, for the reason given (printed, never fatal)."""


def recipe(library: str) -> Callable[[Recipe], Recipe]:
    """Register ``fn`` as one of ``library``'s recipes; its name after the first ``_`` is the
    recipe's name in the manifest (``np_ufuncs`` -> ``ufuncs``)."""

    def register(fn: Recipe) -> Recipe:
        RECIPES.setdefault(library, []).append(fn)
        return fn

    return register


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``TimeoutError`` in the block after ``seconds``; nests inside an outer limit, which
    keeps counting and fires after the inner one is done if its own time is up."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"took over {seconds:g}s")

    outer_left, _ = signal.getitimer(signal.ITIMER_REAL)
    previous = signal.signal(signal.SIGALRM, expire)
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer_left) if outer_left else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - start), 1e-3))


def recipe_name(fn: Recipe) -> str:
    return fn.__name__.split("_", 1)[1]


def load_all() -> dict[str, list[Recipe]]:
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
    return RECIPES


@dataclass
class Zoo:
    """Where one library's files go, and the record of each file written."""

    library: str
    dir: Path
    scratch: Path
    recipe: str = ""
    records: list[dict[str, str]] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)

    def skip(self, what: str, exc: BaseException) -> None:
        """Record and print a skip: ``what`` is the recipe, or ``recipe/part`` inside one."""
        line = f"{self.library}/{what}: {reason(exc)}"
        self.skips.append(line)
        print(f"SKIP {line}", flush=True)

    def path(self, name: str) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add(self, path: Path, saver: str) -> None:
        self.records.append({"path": str(path), "recipe": self.recipe, "saver": saver})

    def save(self, name: str, saver: str, write: Callable[[Path], object]) -> Path:
        """``write(path)`` makes one file, ``name`` under the library's folder."""
        path = self.path(name)
        write(path)
        self.add(path, saver)
        return path

    def save_dir(self, name: str, saver: str, write: Callable[[Path], object]) -> Path:
        """``write(folder)`` fills a folder (``save_pretrained``, ``to_disk``): every file in it
        is recorded under ``saver``."""
        folder = self.path(name)
        folder.mkdir(exist_ok=True)
        write(folder)
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.add(path, saver)
        return folder

    def pickle(self, name: str, obj: Any, protocols: Iterable[int] = (4,)) -> None:
        """``pickle.dump(obj, f, protocol=p)`` for each protocol, as ``name.p<p>.pkl``."""
        for protocol in protocols:
            self.save(f"{name}.p{protocol}.pkl", "pickle.dump", _pickler(obj, protocol))

    def joblib(self, name: str, obj: Any, **kwargs: Any) -> None:
        import joblib

        suffix = ".joblib" if not kwargs.get("compress") else ".joblib.z"
        self.save(f"{name}{suffix}", "joblib.dump", lambda p: joblib.dump(obj, p, **kwargs))

    def torch(self, name: str, obj: Any, **kwargs: Any) -> None:
        import torch

        self.save(name, "torch.save", lambda p: torch.save(obj, p, **kwargs))

    def both(self, name: str, obj: Any) -> None:
        """The two ways users save a fitted estimator: ``joblib.dump`` and ``pickle.dump``."""
        self.joblib(name, obj)
        self.pickle(name, obj)


def reason(exc: BaseException) -> str:
    text = str(exc).strip()
    text = text.splitlines()[0] if text else ""
    return text[:300] if isinstance(exc, Skip) else f"{type(exc).__name__}: {text}"[:300]


def _pickler(obj: Any, protocol: int) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with path.open("wb") as f:
            pickle.dump(obj, f, protocol=protocol)

    return write
