"""Staged writes: many workers stage rows, one transaction merges them, once.

Distributed ingest (Spark, Ray Data, Dask) embeds on many workers, and the
framework re-runs tasks (failures, lost workers, speculative copies) and
re-delivers batches after a restart.  This module is the database half of
writing such input exactly once:

* :func:`stage_rows`: a worker COPYs its rows (binary COPY, the same encoder
  as ``bulk_add``) into the shared staging area of migration 0008, under a
  (stage, part) key.  Staging a part again replaces its rows: the part's old
  rows are deleted in the same transaction, and a transaction-level advisory
  lock on the key serialises two attempts staging the same part at once (a
  speculative copy), so a part never holds two attempts' rows.
* :func:`merge_stage`: one transaction moves a stage's rows into the
  collection with ``INSERT ... SELECT ... ON CONFLICT`` (skip or update on
  the external id, which every staged row must have), deletes them from the
  staging area and, given a ledger key (stream, batch), records the merge.  A
  merge whose key the ledger already holds writes nothing and reports the
  recorded counts (``replayed``); two merges of one key at once serialise on
  the ledger's primary key, and the second sees the first's entry.
* :func:`ledger_entries` reads the ledger, :func:`discard_stage` empties a stage.

The staging tables are UNLOGGED: a server crash empties them.  The merge
counts a stage's parts against the number the caller expects, so a stage that
lost parts fails (nothing merged) and the framework re-runs the batch.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from vectorstore._target import Target
from vectorstore.errors import SchemaError, ValidationError, WriteError, db_errors
from vectorstore.results import CollectionInfo, MergeResult

from .batch import Batch
from .copy import CopyInto, copy_sql, encoded_stream, write_copy
from .load import ConflictPolicy, bulk_load, check_policy, embed_missing

__all__ = [
    "LEDGER",
    "STAGE_PARTS",
    "STAGE_ROWS",
    "discard_stage",
    "forget_ledger",
    "ledger_entries",
    "merge_stage",
    "stage_rows",
]

STAGE_PARTS = "vectorstore_stage_parts"
STAGE_ROWS = "vectorstore_stage_rows"
LEDGER = "vectorstore_ingest_ledger"
_STAGE_COLUMNS = ("slot", "content_hash", "embedding", "external_id", "text", "metadata")
_MAX_KEY = 500


def _check_key(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_KEY or "\x00" in value:
        raise ValidationError(
            f"{what} must be a non-empty string of at most {_MAX_KEY} characters, got {value!r}"
        )
    return value


def _check_ledger(ledger: object) -> tuple[str, int] | None:
    if ledger is None:
        return None
    if (
        isinstance(ledger, tuple)
        and len(ledger) == 2
        and isinstance(ledger[1], int)
        and not isinstance(ledger[1], bool)
    ):
        return _check_key(ledger[0], "the ledger's stream"), int(ledger[1])
    raise ValidationError(f"ledger must be a (stream, batch number) pair, got {ledger!r}")


def _require_tables(session: Session) -> None:
    found = session.execute(
        text("SELECT to_regclass(:a) IS NOT NULL AND to_regclass(:b) IS NOT NULL "
             "AND to_regclass(:c) IS NOT NULL"),
        {"a": STAGE_PARTS, "b": STAGE_ROWS, "c": LEDGER},
    ).scalar_one()  # fmt: skip
    if not found:
        raise SchemaError(
            "the staging area (vectorstore_stage_parts, vectorstore_stage_rows, "
            "vectorstore_ingest_ledger) is missing: run `vectorstore migrate` "
            "(vectorstore.migrate(url)) to create it"
        )


def _clear(session: Session, stage: str, part: str | None = None) -> int:
    """Delete the staged rows of ``stage`` (of one part, given ``part``); returns how many."""
    where = "stage = :stage" + (" AND part = :part" if part is not None else "")
    slots = list(
        session.execute(
            text(f"DELETE FROM {STAGE_PARTS} WHERE {where} RETURNING slot"),
            {"stage": stage, "part": part},
        ).scalars()
    )
    if not slots:
        return 0
    deleted = session.execute(
        text(f"DELETE FROM {STAGE_ROWS} WHERE slot = ANY(:slots)"), {"slots": slots}
    )
    return int(deleted.rowcount)  # type: ignore[attr-defined]


def stage_rows(target: Target[Any], batches: Iterable[Batch], stage: str, part: str) -> int:
    """COPY ``batches`` into the staging area under (``stage``, ``part``); returns the rows.

    Texts without a vector are embedded with the target's embedder first.
    Every row needs an external id (the merge's idempotence rests on it).
    One transaction: a part staged again replaces its earlier rows; a bad
    row (the ValidationError names it) leaves the part as it was.
    """
    stage = _check_key(stage, "stage")
    part = _check_key(part, "part")
    action = f"stage rows into stage {stage!r} part {part!r}"
    staged = 0

    def prepare() -> Iterator[Batch]:
        nonlocal staged
        for batch in batches:
            ids = batch.external_ids
            missing = 0 if ids is None else next((i for i, x in enumerate(ids) if x is None), None)
            if missing is not None:
                row = batch.locate(missing)[0]
                raise ValidationError(
                    "staged rows need an external id: the exactly-once merge rests on it",
                    row=row,
                )
            embed_missing(batch, target.embedder)
            staged += len(batch)
            yield batch

    with target.sessions.write(action) as session:
        _require_tables(session)
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"vectorstore-stage\x1f{stage}\x1f{part}"},
        )
        _clear(session, stage, part)
        slot = int(
            session.execute(
                text(f"INSERT INTO {STAGE_PARTS} (stage, part) VALUES (:stage, :part) "
                     "RETURNING slot"),
                {"stage": stage, "part": part},
            ).scalar_one()
        )  # fmt: skip
        dbapi = session.connection().connection.dbapi_connection
        with db_errors(action):
            write_copy(
                dbapi,
                copy_sql(STAGE_ROWS, _STAGE_COLUMNS),
                encoded_stream(prepare(), slot),
                CopyInto(STAGE_ROWS, None, _STAGE_COLUMNS),
            )
        session.execute(
            text(f"UPDATE {STAGE_PARTS} SET rows = :n WHERE slot = :slot"),
            {"n": staged, "slot": slot},
        )
    return staged


def _recorded(session: Session, stream: str, batch: int) -> MergeResult:
    row = session.execute(
        text(f"SELECT inserted, updated, skipped FROM {LEDGER} "
             "WHERE stream = :stream AND batch = :batch"),
        {"stream": stream, "batch": batch},
    ).one()  # fmt: skip
    return MergeResult(
        inserted=int(row[0]), updated=int(row[1]), skipped=int(row[2]),
        replayed=True, stream=stream, batch=batch,
    )  # fmt: skip


def merge_stage(
    target: Target[Any],
    stage: str,
    policy: ConflictPolicy,
    *,
    parts: int | None = None,
    ledger: tuple[str, int] | None = None,
    rebuild_index: bool | None = False,
    index_options: Mapping[str, Any] | None = None,
) -> tuple[MergeResult, CollectionInfo]:
    """Merge the rows staged under ``stage`` into the target's collection, in one transaction.

    Args:
        policy: ``"skip"`` or ``"update"`` (an exactly-once merge cannot
            fail on an id a retried batch already wrote).
        parts: the number of parts the stage must hold; fewer or more is a
            WriteError and nothing is merged.
        ledger: (stream, batch): recorded with the merge; a key already
            recorded merges nothing and returns the recorded counts.
        rebuild_index, index_options: big-load mode, as for ``bulk_add``.
    """
    stage = _check_key(stage, "stage")
    policy = check_policy(policy)
    if policy == "error":
        raise ValidationError(
            'merge_staged takes on_conflict="skip" or "update": a re-run batch '
            "meets the ids it wrote before"
        )
    if parts is not None and (isinstance(parts, bool) or not isinstance(parts, int) or parts < 0):
        raise ValidationError(f"parts must be a count of parts, got {parts!r}")
    key = _check_ledger(ledger)
    started = time.perf_counter()
    with bulk_load(target, policy, action="merge_staged", rebuild_index=rebuild_index,
                   index_options=index_options) as loader:  # fmt: skip
        session = loader.session
        _require_tables(session)
        if key is not None:
            claimed = session.execute(
                text(f"INSERT INTO {LEDGER} (stream, batch, collection_id) "
                     "VALUES (:stream, :batch, :cid) ON CONFLICT DO NOTHING RETURNING 1"),
                {"stream": key[0], "batch": key[1], "cid": loader.collection_id},
            ).first()  # fmt: skip
            if claimed is None:
                _clear(session, stage)
                recorded = _recorded(session, *key)
                return _timed(recorded, started), loader.collection
        found = session.execute(
            text(f"SELECT slot, rows FROM {STAGE_PARTS} WHERE stage = :stage FOR UPDATE"),
            {"stage": stage},
        ).all()
        if parts is not None and len(found) != parts:
            raise WriteError(
                f"stage {stage!r} holds {len(found)} parts, {parts} expected (parts are "
                "missing after a server restart, or still being written); nothing merged",
                unwritten=[],
            )
        slots = [int(r[0]) for r in found]
        sent = sum(int(r[1]) for r in found)
        source = (
            "SELECT CAST(:cid AS integer), content_hash, embedding, external_id, text, "
            f"metadata FROM (SELECT DISTINCT ON (external_id) * FROM {STAGE_ROWS} "
            "WHERE slot = ANY(:slots) ORDER BY external_id, ord DESC) AS keyed"
        )
        done = loader.merge_from(source, {"cid": loader.collection_id, "slots": slots}, sent)
        _clear(session, stage)
        if key is not None:
            session.execute(
                text(f"UPDATE {LEDGER} SET inserted = :i, updated = :u, skipped = :s "
                     "WHERE stream = :stream AND batch = :batch"),
                {"i": done.inserted, "u": done.updated, "s": done.skipped,
                 "stream": key[0], "batch": key[1]},
            )  # fmt: skip
        result = MergeResult(
            inserted=done.inserted, updated=done.updated, skipped=done.skipped,
            parts=len(found), stream=key[0] if key else None, batch=key[1] if key else None,
        )  # fmt: skip
    return _timed(result, started), loader.collection


def _timed(result: MergeResult, started: float) -> MergeResult:
    return MergeResult(
        inserted=result.inserted, updated=result.updated, skipped=result.skipped,
        parts=result.parts, replayed=result.replayed, stream=result.stream,
        batch=result.batch, elapsed_s=time.perf_counter() - started,
    )  # fmt: skip


def ledger_entries(
    target: Target[Any], stream: str, batch: int | None = None
) -> dict[int, MergeResult]:
    """The merges recorded for ``stream`` (one batch, given ``batch``), by batch number."""
    stream = _check_key(stream, "stream")
    with target.sessions.read("read the ingest ledger") as session:
        _require_tables(session)
        rows = session.execute(
            text(f"SELECT batch, inserted, updated, skipped FROM {LEDGER} WHERE stream = :stream "
                 + ("AND batch = :batch " if batch is not None else "") + "ORDER BY batch"),
            {"stream": stream, "batch": batch},
        ).all()  # fmt: skip
    return {
        int(r[0]): MergeResult(
            inserted=int(r[1]),
            updated=int(r[2]),
            skipped=int(r[3]),
            replayed=True,
            stream=stream,
            batch=int(r[0]),
        )
        for r in rows
    }


def forget_ledger(target: Target[Any], stream: str) -> int:
    """Delete the ledger entries of ``stream``; returns how many."""
    stream = _check_key(stream, "stream")
    with target.sessions.write("forget ingest ledger entries") as session:
        _require_tables(session)
        done = session.execute(text(f"DELETE FROM {LEDGER} WHERE stream = :stream"),
                               {"stream": stream})  # fmt: skip
        return int(done.rowcount)  # type: ignore[attr-defined]


def discard_stage(target: Target[Any], stage: str) -> int:
    """Delete what is staged under ``stage`` (every part); returns the rows deleted."""
    stage = _check_key(stage, "stage")
    with target.sessions.write(f"discard stage {stage!r}") as session:
        _require_tables(session)
        return _clear(session, stage)
