"""Append-only, hash-chained audit log with signed checkpoints (NCSC 2.3, 2.4, 3.2).

Each entry's hash covers its sequence number, time, actor, action, subject, details and the
previous entry's hash, so changing, removing, inserting or reordering any entry breaks the chain
at a place :meth:`AuditLog.verify` names. Checkpoints sign the head of the chain with the
workspace key; they catch a truncated tail, which a chain alone cannot::

    log = AuditLog(engine, signer)
    log.append(actor="alice", action="model.add", subject="digits@1", details={"files": 3})
    log.checkpoint()
    assert log.verify().ok
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, Engine, RowMapping, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from bastion._fs import atomic_write
from bastion._time import utc_stamp
from bastion.errors import AuditError, IntegrityError, StorageError
from bastion.findings import Finding, Location, Principle, Severity
from bastion.store.db import is_postgres
from bastion.store.keys import SigningKey, VerifyingKey
from bastion.store.schema import audit_checkpoints, audit_entries

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditLog",
    "AuditProblem",
    "AuditVerification",
    "ProblemKind",
]

GENESIS_HASH: Final = "0" * 64
_CHAIN_LOCK: Final = 1651078516  # PostgreSQL advisory lock id for the audit chain
_MAX_SHIFT: Final = 64  # how far verify looks for a renumbered entry's original position
_CHECKPOINT_DOMAIN: Final = b"bastion-audit-checkpoint/v1\n"


def canonical_json(value: Any) -> str:
    """The one JSON text hashed for a value: sorted keys, no spaces, UTF-8 as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    seq: int, at: str, actor: str, action: str, subject: str, details: str, prev_hash: str
) -> str:
    """SHA-256 over the entry's fields, length-prefixed so no two field splits collide."""
    digest = hashlib.sha256()
    for part in (str(seq), at, actor, action, subject, details, prev_hash):
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()




@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded action."""

    seq: int
    """Position in the chain, from 1, without gaps."""
    at: str
    """UTC time, ISO 8601 with microseconds."""
    actor: str
    """Who acted."""
    action: str
    """What was done, dotted (``model.add``, ``blob.read``)."""
    subject: str
    """What it was done to (``digits@3``)."""
    details: Mapping[str, Any]
    """Facts about the action (digests, reasons)."""
    prev_hash: str
    """The previous entry's hash (zeros for the first)."""
    hash: str
    """This entry's hash."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


class ProblemKind(enum.StrEnum):
    """The ways a chain can be found broken."""

    MODIFIED = "modified"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    TRUNCATED = "truncated"
    BAD_CHECKPOINT = "bad-checkpoint"


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """One place where the log does not match what was recorded."""

    kind: ProblemKind
    """What kind of tampering or damage."""
    seq: int
    """The entry (or checkpoint sequence) where it shows."""
    message: str
    """What exactly does not match."""


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """The outcome of :meth:`AuditLog.verify`."""

    entries: int
    """How many entries were read."""
    checkpoints: int
    """How many signed checkpoints were checked."""
    sealed_through: int
    """The highest sequence number covered by a valid checkpoint (0 if none)."""
    problems: Sequence[AuditProblem] = field(default_factory=tuple)
    """Every mismatch found, in chain order."""

    @property
    def ok(self) -> bool:
        """True when the chain and every checkpoint verify."""
        return not self.problems

    @property
    def unsealed(self) -> int:
        """Entries after the newest valid checkpoint: intact links, but no signature yet."""
        return max(0, self.entries - self.sealed_through)

    def findings(self, where: str) -> list[Finding]:
        """Each problem as a critical finding (NCSC 2.4: assets and records intact) about the
        workspace ``where``."""
        return [
            Finding(
                rule=f"audit.chain.{p.kind.value}",
                severity=Severity.CRITICAL,
                title=p.message,
                principle=Principle.P2_4,
                location=Location(path=where, member=f"audit#{p.seq}"),
                remediation="Treat the workspace as compromised: restore the database from a "
                "backup and investigate who had write access.",
                evidence={"seq": p.seq, "kind": p.kind.value},
            )
            for p in self.problems
        ]


class AuditLog:
    """The audit log of one workspace database."""

    def __init__(
        self,
        engine: Engine,
        signer: SigningKey,
        *,
        checkpoint_every: int = 256,
        checkpoint_file: Path | None = None,
    ) -> None:
        self._engine = engine
        self._signer = signer
        self._verifier = signer.verifying_key
        self._checkpoint_every = checkpoint_every
        self._checkpoint_file = checkpoint_file

    # -- writing ---------------------------------------------------------------------------

    def append(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        details: Mapping[str, Any] | None = None,
        connection: Connection | None = None,
    ) -> AuditEntry:
        """Append one entry; with ``connection``, inside the caller's transaction.

        Passing the caller's connection makes the audit entry commit or roll back together with
        the change it records (invariant 6: one transaction).
        """
        if connection is not None:
            return self._append(connection, actor, action, subject, details or {})
        try:
            with self._engine.begin() as own:
                return self._append(own, actor, action, subject, details or {})
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot write the audit log: {exc.__class__.__name__}",
                hint="check that the database is reachable and writable",
            ) from exc

    def _append(
        self, conn: Connection, actor: str, action: str, subject: str, details: Mapping[str, Any]
    ) -> AuditEntry:
        head = self._locked_head(conn)
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
        at = utc_stamp()
        details_text = canonical_json(dict(details))
        digest = entry_hash(seq, at, actor, action, subject, details_text, prev)
        conn.execute(
            insert(audit_entries).values(
                seq=seq,
                at=at,
                actor=actor,
                action=action,
                subject=subject,
                details=details_text,
                prev_hash=prev,
                hash=digest,
            )
        )
        if seq % self._checkpoint_every == 0:
            self._write_checkpoint(conn, seq, digest)
        return AuditEntry(seq, at, actor, action, subject, dict(details), prev, digest)

    @staticmethod
    def _locked_head(conn: Connection) -> tuple[int, str] | None:
        """Take the chain's writer lock, then read its head (seq, hash); ``None`` if empty."""
        # SQLite already holds the database write lock (BEGIN IMMEDIATE, see db.py).
        if is_postgres(conn):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CHAIN_LOCK})")
        head = conn.execute(
            select(audit_entries.c.seq, audit_entries.c.hash)
            .order_by(audit_entries.c.seq.desc())
            .limit(1)
        ).first()
        return (int(head.seq), str(head.hash)) if head else None

    def checkpoint(self) -> int:
        """Sign the current head unless it is already signed; return the sealed sequence."""
        with self._engine.begin() as conn:
            head = self._locked_head(conn)
            if head is None:
                return 0
            seq, head_hash = head
            sealed = conn.execute(select(func.max(audit_checkpoints.c.seq))).scalar()
            if sealed != seq:
                self._write_checkpoint(conn, seq, head_hash)
            return seq

    def _write_checkpoint(self, conn: Connection, seq: int, head_hash: str) -> None:
        at = utc_stamp()
        signature = self._signer.sign(_checkpoint_message(seq, head_hash, at))
        record = {
            "seq": seq,
            "head_hash": head_hash,
            "at": at,
            "key_id": self._verifier.key_id,
            "signature": base64.b64encode(signature).decode("ascii"),
        }
        conn.execute(insert(audit_checkpoints).values(**record))
        if self._checkpoint_file is not None:
            # A copy outside the database: deleting checkpoint rows cannot hide a truncation.
            atomic_write(self._checkpoint_file, canonical_json(record).encode(), mode=0o644)

    # -- reading ---------------------------------------------------------------------------

    def entries(
        self,
        *,
        subject: str | None = None,
        action: str | None = None,
        actor: str | None = None,
        since: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Entries matching every given filter, oldest first.

        ``action`` ending in ``.*`` matches a prefix (``model.*``); ``since`` is an ISO date or
        time, compared in UTC.
        """
        query = select(audit_entries).order_by(audit_entries.c.seq)
        if subject is not None:
            query = query.where(audit_entries.c.subject == subject)
        if action is not None:
            if action.endswith(".*"):
                query = query.where(audit_entries.c.action.startswith(action[:-1]))
            else:
                query = query.where(audit_entries.c.action == action)
        if actor is not None:
            query = query.where(audit_entries.c.actor == actor)
        if since is not None:
            query = query.where(audit_entries.c.at >= since)
        if limit is not None:
            query = query.order_by(None).order_by(audit_entries.c.seq.desc()).limit(limit)
        with self._engine.connect() as conn:
            rows = [_entry(row) for row in conn.execute(query).mappings()]
        return sorted(rows, key=lambda e: e.seq)

    def head(self) -> int:
        """The newest sequence number (0 for an empty log)."""
        with self._engine.connect() as conn:
            return int(
                conn.execute(select(func.coalesce(func.max(audit_entries.c.seq), 0))).scalar_one()
            )

    # -- verifying -------------------------------------------------------------------------

    def verify(self, *, verifier: VerifyingKey | None = None) -> AuditVerification:
        """Check the whole chain and every checkpoint; name each entry that does not match.

        Checks, in order:
        1. every entry's hash matches its content (else *modified*, or *reordered* when it
           matches the position its own back-link points to);
        2. sequence numbers run 1, 2, 3… (a gap means *deleted*);
        3. every entry's back-link is the previous entry's hash (else an entry was *inserted*
           or removed before it);
        4. every checkpoint's signature verifies and its hash is the entry's at that sequence;
        5. the log reaches the newest checkpoint, in the database and in the copy beside it
           (else the tail was *truncated*).
        """
        verifier = verifier or self._verifier
        problems: list[AuditProblem] = []
        with self._engine.connect() as conn:
            rows = list(
                conn.execute(select(audit_entries).order_by(audit_entries.c.seq)).mappings()
            )
            checkpoints = list(
                conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.id)).mappings()
            )
        by_seq = {int(row["seq"]): row for row in rows}
        problems.extend(_chain_problems(rows))

        last_seq = int(rows[-1]["seq"]) if rows else 0
        sealed = 0
        records = [dict(c) for c in checkpoints]
        outside = self._read_checkpoint_file()
        if outside is not None and not any(
            r["signature"] == outside.get("signature") for r in records
        ):
            records.append(outside)
        for record in records:  # 4. and 5.
            problem = _checkpoint_problem(record, verifier, by_seq, last_seq)
            if problem is not None:
                problems.append(problem)
            else:
                sealed = max(sealed, int(record["seq"]))
        return AuditVerification(len(rows), len(records), sealed, tuple(problems))

    def _read_checkpoint_file(self) -> dict[str, Any] | None:
        if self._checkpoint_file is None or not self._checkpoint_file.exists():
            return None
        try:
            data = json.loads(self._checkpoint_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AuditError(
                f"cannot read the checkpoint copy {self._checkpoint_file}",
                hint="it was damaged; restore it from a backup or remove it to skip that check",
            ) from exc
        return data if isinstance(data, dict) else None


def _entry(row: RowMapping) -> AuditEntry:
    try:
        details = json.loads(row["details"])
    except ValueError:
        details = {"unreadable": row["details"]}
    return AuditEntry(
        int(row["seq"]),
        row["at"],
        row["actor"],
        row["action"],
        row["subject"],
        details,
        row["prev_hash"],
        row["hash"],
    )


def _rehash(row: RowMapping, seq: int) -> str:
    return entry_hash(
        seq,
        row["at"],
        row["actor"],
        row["action"],
        row["subject"],
        row["details"],
        row["prev_hash"],
    )


def _original_seqs(rows: Sequence[RowMapping]) -> dict[int, int]:
    """Where each entry sat when written, following its back-links to the genesis."""
    by_hash = {str(row["hash"]): row for row in rows}
    original: dict[int, int] = {}
    for row in rows:
        path, current = [], row
        while int(current["seq"]) not in original:
            path.append(current)
            if current["prev_hash"] == GENESIS_HASH:
                base = 0
                break
            pred = by_hash.get(str(current["prev_hash"]))
            if pred is None or pred in path:  # link to a deleted entry, or a loop
                base = -1
                break
            current = pred
        else:
            base = original[int(current["seq"])]
        for entry in reversed(path):
            base = base + 1 if base >= 0 else -1
            original[int(entry["seq"])] = base
    return original


def _written_at(row: RowMapping, seq: int, linked: int) -> int | None:
    """The sequence number an entry was written with, if it merely moved: the one its back-link
    implies, else one within a short distance (a renumbering after a deletion)."""
    candidates = [linked] if linked > 0 else []
    candidates += [seq + d for k in range(1, _MAX_SHIFT + 1) for d in (k, -k) if seq + d > 0]
    for was in candidates:
        if was != seq and _rehash(row, was) == row["hash"]:
            return was
    return None


def _chain_problems(rows: Sequence[RowMapping]) -> list[AuditProblem]:
    """Steps 1-3 of :meth:`AuditLog.verify`: content, sequence and links."""
    problems: list[AuditProblem] = []
    original = _original_seqs(rows)
    displaced: dict[int, int] = {}  # seq → how far the entry moved from where it was written
    expected_prev, expected_seq = GENESIS_HASH, 1
    for row in rows:
        seq = int(row["seq"])
        if seq > expected_seq:  # 2.
            problems.append(
                AuditProblem(
                    ProblemKind.DELETED,
                    expected_seq,
                    f"entry {_span(expected_seq, seq - 1)} was deleted",
                )
            )
        if _rehash(row, seq) != row["hash"]:  # 1.
            was = _written_at(row, seq, original.get(seq, -1))
            if was is not None:
                displaced[seq] = seq - was
            else:
                problems.append(
                    AuditProblem(
                        ProblemKind.MODIFIED,
                        seq,
                        f"entry #{seq} ({row['action']} {row['subject']}) does not match its hash: "
                        "it was modified after it was written",
                    )
                )
        elif row["prev_hash"] != expected_prev and seq == expected_seq and seq - 1 not in displaced:
            problems.append(_link_problem(row, seq, {str(r["hash"]): int(r["seq"]) for r in rows}))
        expected_prev, expected_seq = str(row["hash"]), seq + 1
    problems.extend(_displacement_problems(displaced, set(original.values())))
    return sorted(problems, key=lambda p: p.seq)


def _displacement_problems(displaced: Mapping[int, int], originals: set[int]) -> list[AuditProblem]:
    """Name runs of entries that moved: renumbered to make room (inserted), to close a gap
    (deleted), or swapped (reordered)."""
    problems: list[AuditProblem] = []
    seqs = sorted(displaced)
    i = 0
    while i < len(seqs):
        j = i
        while (
            j + 1 < len(seqs)
            and seqs[j + 1] == seqs[j] + 1
            and (displaced[seqs[j + 1]] == displaced[seqs[i]])
        ):
            j += 1
        first, last, shift = seqs[i], seqs[j], displaced[seqs[i]]
        room = range(first - shift, first)
        if shift > 0 and not any(s in displaced for s in room):
            problems.append(
                AuditProblem(
                    ProblemKind.INSERTED,
                    first - shift,
                    f"entry {_span(first - shift, first - 1)} was inserted: "
                    f"{_span(first, last)} were renumbered by +{shift} to make room",
                )
            )
        elif shift < 0 and not any(s in originals for s in range(first, first - shift)):
            problems.append(
                AuditProblem(
                    ProblemKind.DELETED,
                    first,
                    f"entries written as {_span(first, first - shift - 1)} were deleted and "
                    f"{_span(first, last)} renumbered by {shift} to close the gap",
                )
            )
        else:
            problems.extend(
                AuditProblem(
                    ProblemKind.REORDERED,
                    s,
                    f"entry #{s} holds the entry written as #{s - displaced[s]}: "
                    "entries were reordered",
                )
                for s in seqs[i : j + 1]
            )
        i = j + 1
    return problems


def _link_problem(row: RowMapping, seq: int, seq_of_hash: Mapping[str, int]) -> AuditProblem:
    origin = seq_of_hash.get(str(row["prev_hash"]))
    if origin is not None and origin < seq - 1:
        return AuditProblem(
            ProblemKind.INSERTED,
            origin + 1,
            f"entry {_span(origin + 1, seq - 1)} was inserted: "
            f"#{seq} follows #{origin} in the chain",
        )
    return AuditProblem(
        ProblemKind.INSERTED,
        seq - 1,
        f"entry #{seq} does not follow #{seq - 1}: the entry before it was replaced or inserted",
    )


def _span(first: int, last: int) -> str:
    return f"#{first}" if first == last else f"#{first}..#{last}"


def _checkpoint_problem(
    record: Mapping[str, Any],
    verifier: VerifyingKey,
    by_seq: Mapping[int, RowMapping],
    last_seq: int,
) -> AuditProblem | None:
    seq = int(record["seq"])
    try:
        verifier.verify(
            base64.b64decode(record["signature"]),
            _checkpoint_message(seq, str(record["head_hash"]), str(record["at"])),
        )
    except (IntegrityError, ValueError):
        return AuditProblem(
            ProblemKind.BAD_CHECKPOINT, seq, f"checkpoint at #{seq} has an invalid signature"
        )
    if seq > last_seq:
        return AuditProblem(
            ProblemKind.TRUNCATED,
            last_seq + 1,
            f"the log ends at #{last_seq} but a signed checkpoint covers #{seq}: "
            f"entries #{last_seq + 1}..#{seq} were removed",
        )
    entry = by_seq.get(seq)
    if entry is not None and entry["hash"] != record["head_hash"]:
        return AuditProblem(
            ProblemKind.MODIFIED,
            seq,
            f"entry #{seq} is not the entry the checkpoint signed: "
            "the chain up to it was rewritten",
        )
    return None


def _checkpoint_message(seq: int, head_hash: str, at: str) -> bytes:
    return _CHECKPOINT_DOMAIN + f"{seq}\n{head_hash}\n{at}\n".encode()
