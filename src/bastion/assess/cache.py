"""Assessments cached by what decides their figures, so an unchanged model is not re-attacked.

    >>> from bastion.assess.cache import AssessmentCache, cache_key   # doctest: +SKIP
    >>> key = cache_key(model_sha256=loaded.sha256, x=x, labels=y, policy=policy)
    >>> cache = AssessmentCache.default()             # the workspace's, else the user's
    >>> done = cache.load(key, policy, source="model.pt", warn=print)
    >>> if done is None:
    ...     done = assess(loaded.predictor, x, y, policy, model_sha256=loaded.sha256)
    ...     cache.store(key, done, warn=print)

The figures are a function of the model's bytes, the inputs and labels exactly as the model
takes them, the policy (seed and budgets included) and the code that attacks: the key is the
SHA-256 over all of them (:func:`cache_key`), so any change is a miss. One JSON file per key,
0600 in a 0700 directory, written atomically. An entry is read back only if it is a regular
file of ours that no one else can write, names the key it is filed under, holds every part of
that key, and rebuilds a whole :class:`~bastion.assess.runner.Assessment` under the policy in
hand; anything else is ignored with one warning and the model is attacked again (an entry is
never trusted on its name alone). Adversarial examples and images are not cached.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.metadata
import inspect
import json
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Self

import numpy as np
import numpy.typing as npt

from bastion._fs import atomic_write
from bastion._time import STAMP_FORMAT, utc_stamp
from bastion.assess.interface import AssessError, OodResult
from bastion.assess.policy import Policy
from bastion.assess.runner import Assessment, _versions
from bastion.config import find_workspace
from bastion.errors import WorkspaceError

__all__ = ["AssessmentCache", "CacheKey", "cache_key", "code_digest", "input_digest"]

FORMAT: Final = 1
"""The entry layout; a new one makes every older entry a miss."""

Warn = Callable[[str], None]

_CODE: Final = ("assess", "models")  # bastion's own code the figures depend on


@dataclass(frozen=True, slots=True)
class CacheKey:
    """What an assessment's figures depend on, and its SHA-256 (the entry's name)."""

    digest: str
    """SHA-256 of ``parts`` as canonical JSON."""
    parts: Mapping[str, Any]
    """The model digest, the input digest (and the member, non-member and thief data's), the
    policy digest and its overrides, the library versions, Bastion's own attack code, and any
    architecture code (``--arch``)."""


def input_digest(x: npt.ArrayLike, labels: npt.ArrayLike | None) -> str:
    """SHA-256 of the inputs and labels as given: dtype, shape and every value (labels held
    as Python objects, such as strings read from a CSV, by type and text)."""
    h = hashlib.sha256()
    for part in (x, labels):
        if part is None:
            h.update(b"none;")
            continue
        array = np.asarray(part)
        if array.dtype.hasobject:
            data = json.dumps([f"{type(v).__name__}:{v}" for v in array.ravel().tolist()],
                              ensure_ascii=False).encode()
        else:
            data = np.ascontiguousarray(array).tobytes()
        h.update(f"{array.dtype.str};{array.shape};{len(data)};".encode())
        h.update(data)
    return h.hexdigest()


def code_digest(factory: Callable[..., Any]) -> str | None:
    """A name and SHA-256 for the source file defining ``factory`` (an ``--arch``: the weights'
    digest says nothing of the network they go into); ``None`` when it cannot be read."""
    try:
        source = inspect.getsourcefile(factory)
        if source is None:
            return None
        body = Path(source).read_bytes()
    except (OSError, TypeError):
        return None
    name = f"{getattr(factory, '__module__', '?')}:{getattr(factory, '__qualname__', '?')}"
    return f"{name}:{hashlib.sha256(body).hexdigest()}"


def _own_code() -> str:
    """SHA-256 of Bastion's attack and model-loading code: a fix there re-attacks."""
    h = hashlib.sha256()
    try:
        h.update(importlib.metadata.version("bastion-ml").encode())
    except importlib.metadata.PackageNotFoundError:
        h.update(b"unknown")
    root = Path(__file__).resolve().parents[1]
    for package in _CODE:
        for path in sorted((root / package).rglob("*")):
            if path.suffix in (".py", ".json") and path.is_file():
                h.update(f"{path.relative_to(root)};".encode())
                h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def cache_key(*, model_sha256: str, x: npt.ArrayLike, labels: npt.ArrayLike | None,
              policy: Policy, architecture: str | None = None,
              libraries: Mapping[str, str] | None = None,
              members: tuple[npt.ArrayLike, npt.ArrayLike | None] | None = None,
              non_members: tuple[npt.ArrayLike, npt.ArrayLike | None] | None = None,
              thief: npt.ArrayLike | None = None, ood: npt.ArrayLike | None = None,
              ) -> CacheKey:
    """The key of an assessment of the model whose bytes hash to ``model_sha256`` on ``x``
    and ``labels`` (exactly what :func:`~bastion.assess.assess` is handed) under ``policy``.

    Args:
        architecture: :func:`code_digest` of the ``--arch`` factory, when there is one.
        libraries: the versions the figures depend on (default: those installed).
        members, non_members: the membership test's data, ``(inputs, labels)``, as handed
            to ``assess`` (``None``: not given).
        thief: the extraction test's query inputs, as handed to ``assess`` (``None``: not
            given; the data's own rows are then the pool).
        ood: the OoD test's out-of-distribution inputs, as handed to ``assess``.
    """
    parts: dict[str, Any] = {
        "format": FORMAT, "model_sha256": model_sha256, "inputs_sha256": input_digest(x, labels),
        "members_sha256": None if members is None else input_digest(*members),
        "non_members_sha256": None if non_members is None else input_digest(*non_members),
        "thief_sha256": None if thief is None else input_digest(thief, None),
        "ood_sha256": None if ood is None else input_digest(ood, None),
        "policy_digest": policy.digest, "overrides": dict(policy.overrides),
        "libraries": dict(_versions() if libraries is None else libraries),
        "bastion_code": _own_code(), "architecture": architecture}
    parts = json.loads(json.dumps(parts, sort_keys=True))  # as it will read back
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return CacheKey(hashlib.sha256(canonical.encode()).hexdigest(), parts)


class AssessmentCache:
    """A folder of cached assessments, one ``<key>.json`` each."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        """Where the entries are."""

    @classmethod
    def default(cls, home: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> Self:
        """The workspace's ``.bastion/cache/assess`` when there is one (``home``,
        ``BASTION_HOME`` or a ``.bastion`` above the current directory; none is made), else
        ``$XDG_CACHE_HOME/bastion/assess`` (default ``~/.cache/bastion/assess``)."""
        env = os.environ if env is None else env
        try:
            return cls(find_workspace(home=home) / "cache" / "assess")
        except WorkspaceError:
            pass
        base = env.get("XDG_CACHE_HOME", "")
        root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
        return cls(root / "bastion" / "assess")

    def path(self, key: CacheKey) -> Path:
        """The entry's file."""
        return self.directory / f"{key.digest}.json"

    def load(self, key: CacheKey, policy: Policy, *, source: str, warn: Warn,
             ) -> Assessment | None:
        """The assessment filed under ``key``, rebuilt under ``policy`` and named ``source``
        (the same bytes may sit at another path now), its ``cached`` the time it was made;
        ``None`` when there is none, or (after one ``warn``) when the entry cannot be used.

        Steps: 1. open without following a link; a regular file of ours that no one else can
        write (else someone else could plant figures that pass); 2. JSON of this format,
        filed under its own key, holding exactly the key's parts; 3. a whole assessment of
        this policy.
        """
        path = self.path(key)
        try:
            entry = _read(path)  # 1
            if (entry.get("format") != FORMAT or entry.get("key") != key.digest  # 2
                    or entry.get("parts") != key.parts):
                raise ValueError("it is not filed under this key")
            stored = str(entry["stored"])
            moment = datetime.strptime(stored, STAMP_FORMAT).replace(tzinfo=UTC)
            done = Assessment.from_dict(entry["assessment"], policy)  # 3
            done = _with_detector(done, entry.get("ood_detector"), key)
        except FileNotFoundError:
            return None
        except AssessError as exc:
            warn(f"warning: ignoring the cache entry {path}: {exc.message}; attacking again")
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            reason = exc.args[-1] if exc.args else type(exc).__name__
            warn(f"warning: ignoring the cache entry {path}: {reason}; attacking again")
            return None
        return _renamed(dataclasses.replace(done, cached=utc_stamp(moment)), source)

    def store(self, key: CacheKey, done: Assessment, *, warn: Warn) -> Path | None:
        """File ``done`` under ``key`` (atomically, 0600); a failure to write is a warning,
        never the end of a run. Returns the file written, if any."""
        path = self.path(key)
        entry = {"format": FORMAT, "key": key.digest, "parts": dict(key.parts),
                 "stored": utc_stamp(), "assessment": done.to_dict()}
        if done.ood_detector is not None:  # fitted state, not figures: kept beside them
            entry["ood_detector"] = base64.b64encode(done.ood_detector.to_bytes()).decode()
        try:
            data = json.dumps(entry, sort_keys=True, ensure_ascii=False).encode()
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write(path, data, mode=0o600)
        except (OSError, TypeError, ValueError) as exc:
            warn(f"warning: cannot write the cache entry {path}: {exc}")
            return None
        return path


def _read(path: Path) -> dict[str, Any]:
    """An entry's JSON, if it is a regular file of this user's that only this user can write."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("it is not a regular file")
        if hasattr(os, "getuid") and info.st_uid != os.getuid():
            raise ValueError("another user owns it")
        if info.st_mode & 0o022:
            raise ValueError("others can write it")
        entry = json.loads(handle.read().decode("utf-8"))
    if not isinstance(entry, dict):
        raise ValueError("it is not a JSON object")
    return entry


def _with_detector(done: Assessment, encoded: Any, key: CacheKey) -> Assessment:
    """``done`` with its OoD test's fitted detector read back from the entry (checked as a
    detector file is, and bound to the key's model)."""
    from bastion.assess.ood import detector_from_bytes

    if encoded is None:
        return done
    if not isinstance(encoded, str):
        raise ValueError("its OoD detector is not base64 text")
    detector = detector_from_bytes(base64.b64decode(encoded, validate=True),
                                   name="the cached OoD detector",
                                   model_sha256=str(key.parts["model_sha256"]))
    results = tuple(dataclasses.replace(r, detector=detector) if isinstance(r, OodResult)
                    else r for r in done.results)
    return dataclasses.replace(done, results=results)


def _renamed(done: Assessment, source: str) -> Assessment:
    """``done`` as an assessment of ``source``: the findings' locations follow the name."""
    if done.source == source:
        return done
    findings = tuple(dataclasses.replace(f, location=dataclasses.replace(f.location, path=source))
                     if f.location is not None and f.location.path == done.source else f
                     for f in done.findings)
    return dataclasses.replace(done, source=source, findings=findings)
