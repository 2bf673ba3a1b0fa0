"""The local OSV index: import advisories once, look them up offline ever after.

``import_database`` reads a directory of OSV records (JSON or YAML, as in the PyPA advisory
database) or an OSV ``all.zip`` export and writes one SQLite file, atomically: it is built beside
the old one and renamed over it, so a failed import leaves the previous index in force. Only
records that concern PyPI packages are kept, filed under PEP 503 normalised names::

    info = import_database(Path("advisory-database/vulns"), Path(".bastion/osv/index.sqlite"))
    index = LocalIndex.open(Path(".bastion/osv/index.sqlite"))
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Self

import yaml
from packaging.version import InvalidVersion, Version

from bastion._fs import fsync_dir
from bastion.deps import _osv
from bastion.deps.interface import DatabaseInfo, DepsError, Package, Record
from bastion.store.workspace import Workspace

__all__ = ["INDEX_FORMAT", "MAX_RECORD_BYTES", "LocalIndex", "import_database", "index_path"]

INDEX_FORMAT: Final = "bastion-osv-index/1"
MAX_RECORD_BYTES: Final = 16 * 1024 * 1024
"""A single OSV record larger than this is refused (real ones are a few kilobytes)."""
_SUFFIXES: Final = (".json", ".yaml", ".yml")
_SCHEMA: Final = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE advisory (id TEXT PRIMARY KEY, modified TEXT NOT NULL, record TEXT NOT NULL);
CREATE TABLE affects (name TEXT NOT NULL, id TEXT NOT NULL REFERENCES advisory(id),
                      PRIMARY KEY (name, id)) WITHOUT ROWID;
"""


class _Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """Safe YAML that keeps timestamps as the strings OSV defines them to be."""


_Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def index_path(home: Path) -> Path:
    """Where a workspace keeps its OSV index."""
    return home / "osv" / "index.sqlite"


def _decode(name: str, data: bytes) -> object:
    try:
        if name.endswith(".json"):
            return json.loads(data)
        return yaml.load(data, Loader=_Loader)  # noqa: S506 - a safe loader subclass
    except (ValueError, yaml.YAMLError) as exc:
        raise DepsError(
            f"{name}: not valid {'JSON' if name.endswith('.json') else 'YAML'} "
            f"({exc.__class__.__name__})",
            hint="fix or remove the file; the previous index stays in force",
        ) from None


def _read_records(source: Path) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every OSV record file in a directory tree or a zip export."""
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.suffix in _SUFFIXES and path.is_file():
                if path.stat().st_size > MAX_RECORD_BYTES:
                    raise DepsError(f"{path}: larger than {MAX_RECORD_BYTES} bytes")
                yield str(path), path.read_bytes()
        return
    if not zipfile.is_zipfile(source):
        raise DepsError(
            f"{source} is neither a directory of OSV records nor a zip export",
            hint="pass the advisory database's folder (e.g. vulns/) or OSV's all.zip",
        )
    with zipfile.ZipFile(source) as archive:
        for member in archive.infolist():
            if member.is_dir() or not member.filename.endswith(_SUFFIXES):
                continue
            # Check the declared size, then read at most one byte more than allowed: a zip bomb
            # that lies about its size is still cut off.
            if member.file_size > MAX_RECORD_BYTES:
                raise DepsError(f"{source}!{member.filename}: larger than {MAX_RECORD_BYTES} bytes")
            with archive.open(member) as handle:
                data = handle.read(MAX_RECORD_BYTES + 1)
            if len(data) > MAX_RECORD_BYTES:
                raise DepsError(f"{source}!{member.filename}: larger than {MAX_RECORD_BYTES} bytes")
            yield f"{source}!{member.filename}", data


def import_database(
    source: Path, index: Path, *, now: datetime | None = None, workspace: Workspace | None = None
) -> DatabaseInfo:
    """Build the index at ``index`` from ``source``; replace any previous index atomically.
    With a ``workspace``, the import is recorded in its audit log (``deps.db.import``).

    Steps: 1. read and check every record (any malformed record aborts the import: a database
    Bastion cannot fully read must not be trusted); 2. keep PyPI records, the newest ``modified``
    per id winning; 3. write a new SQLite file beside ``index`` and rename it over the old one.
    """
    if not source.exists():
        raise DepsError(
            f"{source} does not exist", hint="pass a directory of OSV records or all.zip"
        )
    # 1-2. read, check, keep PyPI records.
    records: dict[str, Record] = {}
    digest = hashlib.sha256()  # identity of what was imported: every record's name and bytes
    for name, data in _read_records(source):
        relative = name.removeprefix(str(source)).encode()  # the same wherever the copy lives
        digest.update(hashlib.sha256(relative).digest() + hashlib.sha256(data).digest())
        record = _osv.parse_record(_decode(name, data), name)
        if not _osv.pypi_names(record):
            continue
        kept = records.get(record.id)
        if kept is None or record.modified > kept.modified:
            records[record.id] = record
    if not records:
        raise DepsError(
            f"{source} holds no OSV records for PyPI packages",
            hint="point at the folder of *.json/*.yaml records or the PyPI all.zip",
        )
    imported_at = now or datetime.now(UTC)
    newest = max(r.modified for r in records.values())
    meta = {
        "format": INDEX_FORMAT,
        "source": str(source.resolve()),
        "imported_at": imported_at.isoformat(),
        "newest_modified": newest.isoformat(),
        "records": str(len(records)),
        "sha256": digest.hexdigest(),
    }
    # 3. build beside the old index, then rename over it.
    index.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=".index.", suffix=".tmp", dir=index.parent)
    os.close(fd)
    temp = Path(temp_name)
    try:
        conn = sqlite3.connect(temp)
        try:
            conn.executescript(_SCHEMA)
            conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            conn.executemany(
                "INSERT INTO advisory VALUES (?, ?, ?)",
                (
                    (r.id, r.modified.isoformat(), json.dumps(r.data, separators=(",", ":")))
                    for r in records.values()
                ),
            )
            conn.executemany(
                "INSERT INTO affects VALUES (?, ?)",
                ((name, r.id) for r in records.values() for name in _osv.pypi_names(r)),
            )
            conn.commit()
        finally:
            conn.close()
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, index)
        fsync_dir(index.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    info = LocalIndex.open(index).info()
    if workspace is not None:
        workspace.record("deps.db.import", info.location,
                         **info.to_dict(info.imported_at or datetime.now(UTC)))
    return info


class LocalIndex:
    """An imported OSV index, opened read-only."""

    def __init__(self, path: Path, conn: sqlite3.Connection, meta: Mapping[str, str]) -> None:
        self._path = path
        self._conn = conn
        self._meta = meta

    @classmethod
    def open(cls, path: Path) -> Self:
        """Open ``path``; a missing or foreign file is a :class:`DepsError` saying how to import."""
        if not path.is_file():
            raise DepsError(
                f"no OSV database at {path}",
                hint="run 'bastion deps db import PATH' with a directory of OSV records or "
                "an all.zip export, or pass --osv-url",
            )
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise DepsError(
                f"{path} is not a Bastion OSV index ({exc})",
                hint="re-run 'bastion deps db import PATH'",
            ) from None
        if meta.get("format") != INDEX_FORMAT:
            conn.close()
            raise DepsError(
                f"{path} has index format {meta.get('format')!r}, expected {INDEX_FORMAT!r}",
                hint="re-run 'bastion deps db import PATH'",
            )
        return cls(path, conn, meta)

    def close(self) -> None:
        """Release the file."""
        self._conn.close()

    def info(self) -> DatabaseInfo:
        """The index's source, import time, newest record and size."""
        return DatabaseInfo(
            location=str(self._path),
            source=self._meta["source"],
            imported_at=_osv.parse_time(self._meta["imported_at"], "imported_at"),
            newest_modified=_osv.parse_time(self._meta["newest_modified"], "newest_modified"),
            records=int(self._meta["records"]),
            sha256=self._meta["sha256"],
        )

    def records_for(self, names: Sequence[str]) -> dict[str, list[Record]]:
        """Every record filed under each normalised name (one query per 500 names)."""
        found: dict[str, list[Record]] = {}
        unique = sorted(set(names))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            placeholders = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                "SELECT affects.name, advisory.id, advisory.modified, advisory.record "  # noqa: S608
                "FROM affects JOIN advisory ON advisory.id = affects.id "
                f"WHERE affects.name IN ({placeholders})",
                chunk,
            )
            for name, ident, modified, text in rows:
                data: dict[str, Any] = json.loads(text)
                record = Record(ident, _osv.parse_time(modified, ident), data)
                found.setdefault(name, []).append(record)
        return found

    def affecting(self, packages: Sequence[Package]) -> dict[Package, list[Record]]:
        """The non-withdrawn records that affect each resolved package."""
        by_name = self.records_for([p.key for p in packages if p.version])
        result: dict[Package, list[Record]] = {}
        for package in packages:
            if package.version is None or not _valid(package.version):
                continue
            hits = [
                r
                for r in by_name.get(package.key, [])
                if "withdrawn" not in r.data and _osv.affects(r, package.key, package.version)
            ]
            if hits:
                result[package] = sorted(hits, key=lambda r: r.id)
        return result


def _valid(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True
