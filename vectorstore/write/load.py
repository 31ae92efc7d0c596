"""The one bulk load: batches -> (embed the missing vectors) -> binary COPY -> conflict policy.

``bulk_add``, the buffered writer's flushes and ``ingest`` all write through
:func:`bulk_load`: one transaction (a SAVEPOINT of the host's, or our own),
in big-load mode with the table's secondary indexes and foreign key dropped
first and rebuilt after the load (pgvector's loading recipe: COPY, then
CREATE INDEX, then ANALYZE; which, and when, see
:mod:`vectorstore.schema.big_load`).

The decision here is that every bulk write, whatever the conflict policy, goes
through binary ``COPY ... FROM STDIN``:

* ``on_conflict="error"`` copies straight into the document table; a duplicate
  external id fails the statement and so the whole call.
* ``"skip"`` and ``"update"`` copy into a temporary staging table (no indexes,
  no constraints, so COPY runs at full speed) and then move the rows with one
  ``INSERT ... SELECT ... ON CONFLICT``.  The staging table is created once per
  :class:`Loader` and truncated between loads.

A :class:`Loader` can run several loads in the same transaction (the ingest
pipeline sends one COPY per batch so that it can look up known texts between
them on the same connection); ``bulk_add`` sends the whole input as one COPY.

Errors PostgreSQL raises during a COPY carry a ``CONTEXT`` line with the
1-based line (row) of the stream; the loader keeps a compact map from stream
lines back to input rows so that the error names the input row and its
external id, like the client-side validation errors do.
"""

from __future__ import annotations

import bisect
import itertools
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from vectorstore._target import Target
from vectorstore.embedders import Embedder
from vectorstore.errors import (
    ConfigurationError,
    ValidationError,
    VectorStoreError,
    db_errors,
    driver_error,
    translate_db_error,
)
from vectorstore.results import BulkResult, CollectionInfo
from vectorstore.schema.big_load import BigLoad, check_index_options, check_mode
from vectorstore.schema.catalog import forget, qualified_table
from vectorstore.schema.collections import create_or_find
from vectorstore.schema.partitions import is_partitioned

from .batch import Batch
from .copy import COPY_COLUMNS, CopyInto, copy_sql, encoded_stream, write_copy

__all__ = [
    "POLICIES",
    "ConflictPolicy",
    "LoadCounts",
    "Loader",
    "bulk_add",
    "bulk_load",
    "check_policy",
    "embed_missing",
    "primed",
]

#: What to do with an external id the collection already holds.
ConflictPolicy = Literal["error", "skip", "update"]
POLICIES: tuple[ConflictPolicy, ...] = ("error", "skip", "update")
_CONTEXT_LINE = re.compile(r"\bline (\d+)\b")


def primed(embedder: Embedder | None, batches: Iterable[Batch]) -> Iterator[Batch]:
    """``batches``, after the embedder has seen the first one's texts (when it wants to).

    An embedder that chooses its backend on the user's own texts
    (``SentenceTransformerEmbedder(backend="auto")``, or any gated backend)
    has ``prepare(sample)``: it is called here, before the load opens its
    transaction and the collection records the backend, with the texts of
    the first batch.
    """
    prepare = getattr(embedder, "prepare", None)
    it = iter(batches)
    if prepare is None:
        return it
    first = next(it, None)
    if first is None:
        return it
    if first.needs_embedding:
        prepare(list(first.texts))
    return itertools.chain([first], it)


def check_policy(policy: object) -> ConflictPolicy:
    """``policy`` if it is a conflict policy, else a ValidationError (before any I/O)."""
    for known in POLICIES:
        if policy == known:
            return known
    raise ValidationError(f"on_conflict must be one of {POLICIES}, got {policy!r}")


def embed_missing(batch: Batch, embedder: Embedder | None) -> int:
    """Embed the texts of ``batch`` that came without a vector; returns how many.

    The one embedding fill of the write path (``add``, ``bulk_add``, the
    writer and ``ingest``).  With no embedder, a row without a vector is a
    ConfigurationError naming the row.
    """
    if not batch.needs_embedding:
        return 0
    rows = np.flatnonzero(batch.missing)
    if embedder is None:
        row = batch.locate(int(rows[0]))[0]
        raise ConfigurationError(
            f"row {row}: no embedding given, and no embedder to compute it; "
            "pass embedder=... or give vectors"
        )
    vectors = embedder.embed([batch.texts[i] for i in rows.tolist()])
    batch.set_embeddings(rows, vectors)
    return len(rows)


@dataclass
class LoadCounts:
    """Running totals of a :class:`Loader`."""

    inserted: int = 0
    skipped: int = 0
    updated: int = 0
    rows: int = 0
    write_s: float = 0.0


# External ids are kept for the last few batches only: the server reports an
# error on the row it is processing, which trails the encoder by at most the
# encoder's queue and the socket buffers; older batches keep just their row
# numbers, so the map stays small for endless inputs.
_IDS_KEPT = 4


@dataclass
class _StreamMap:
    """Stream line -> (input row, external id), one entry per batch sent."""

    starts: list[int] = field(default_factory=list)
    batches: list[tuple[int, Any, list[str | None] | None]] = field(default_factory=list)
    sent: int = 0

    def add(self, batch: Batch) -> None:
        self.starts.append(self.sent)
        self.batches.append((batch.start_row, batch.row_numbers, batch.external_ids))
        if len(self.batches) > _IDS_KEPT:
            start_row, row_numbers, _ = self.batches[-_IDS_KEPT - 1]
            self.batches[-_IDS_KEPT - 1] = (start_row, row_numbers, None)
        self.sent += len(batch)

    def locate(self, line: int) -> tuple[int, str | None] | None:
        index = line - 1
        if index < 0 or index >= self.sent:
            return None
        k = bisect.bisect_right(self.starts, index) - 1
        start_row, row_numbers, ids = self.batches[k]
        offset = index - self.starts[k]
        row = int(row_numbers[offset]) if row_numbers is not None else start_row + offset
        return row, (ids[offset] if ids is not None else None)


class Loader:
    """Writes batches into the target's table, inside ``session``'s transaction.

    Args:
        session: the Session whose connection (and transaction) is used.
        target: the table the rows go to.
        collection: the collection every row belongs to.
        policy: the conflict policy on the external id.
        action: words for error messages, e.g. ``"bulk_add in collection 'docs'"``.
    """

    def __init__(
        self,
        session: Session,
        target: Target[Any],
        collection: CollectionInfo,
        policy: ConflictPolicy,
        action: str,
    ) -> None:
        self.session = session
        self._table = target.table
        self.table = qualified_table(session, target.table)
        self.dimension = target.dimension
        self.collection = collection
        self.collection_id = collection.id
        self.policy = check_policy(policy)
        self.action = action
        self.counts = LoadCounts()
        preparer = session.get_bind().dialect.identifier_preparer
        self._columns = [preparer.quote(c) for c in COPY_COLUMNS]
        self._stage: str | None = None
        #: The load's big-load mode (set by :func:`bulk_load`).
        self.big: BigLoad | None = None

    @property
    def _dbapi(self) -> Any:
        return self.session.connection().connection.dbapi_connection

    def load(self, batches: Iterable[Batch]) -> LoadCounts:
        """Send ``batches`` as one COPY and apply the conflict policy.

        Returns the counts of this load; ``self.counts`` keeps the totals.
        """
        started = time.perf_counter()
        stream = _StreamMap()
        if self.big is not None and isinstance(batches, list | tuple):
            # A load sent in several COPYs (ingest) switches to big-load mode
            # once the rows written so far cross the bar.
            self.big.consider(self.counts.rows + sum(len(b) for b in batches))

        def tracked() -> Iterator[Batch]:
            for batch in batches:
                stream.add(batch)
                yield batch

        if self.policy == "error":
            target = self.table
            into = CopyInto(self._table.name, self._table.schema, COPY_COLUMNS)
        else:
            target = self._staging()
            into = CopyInto(target, None, COPY_COLUMNS)
        before = stream.sent
        with db_errors(self.action):
            try:
                write_copy(
                    self._dbapi,
                    copy_sql(target, self._columns),
                    encoded_stream(tracked(), self.collection_id),
                    into,
                )
            except VectorStoreError:
                raise
            except Exception as exc:
                wrapped = self._row_error(exc, stream)
                if wrapped is exc:
                    raise  # db_errors translates it
                raise wrapped from exc
            sent = stream.sent - before
            if self.policy == "error":
                done = LoadCounts(inserted=sent, rows=sent)
            else:
                done = self._merge(sent)
        done.write_s = time.perf_counter() - started
        self.counts.inserted += done.inserted
        self.counts.skipped += done.skipped
        self.counts.updated += done.updated
        self.counts.rows += done.rows
        self.counts.write_s += done.write_s
        return done

    def _row_error(self, exc: BaseException, stream: _StreamMap) -> BaseException:
        """A driver error from the COPY, classified with the input row it happened on."""
        orig = driver_error(exc)
        # psycopg keeps the server's CONTEXT in diag, asyncpg on the exception itself.
        context = getattr(getattr(orig, "diag", None), "context", None) or ""
        if not context:
            found = getattr(orig, "context", None)
            context = found if isinstance(found, str) else ""
        match = _CONTEXT_LINE.search(context)
        where = stream.locate(int(match.group(1))) if match else None
        if where is None:
            return exc
        row, ext = where
        return translate_db_error(exc, self.action, row=row, external_id=ext)

    def _staging(self) -> str:
        if self._stage is None:
            name = f"vectorstore_stage_{id(self):x}_{time.monotonic_ns():x}"
            self.session.execute(
                text(
                    f"CREATE TEMP TABLE {name} (ord bigserial, collection_id integer, "
                    f"external_id text, text text, content_hash bytea, metadata jsonb, "
                    f"embedding vector({int(self.dimension)})) ON COMMIT DROP"
                )
            )
            self._stage = name
        else:
            self.session.execute(text(f"TRUNCATE {self._stage}"))
        return self._stage

    def _merge(
        self, sent: int, source: str | None = None, params: Mapping[str, Any] | None = None
    ) -> LoadCounts:
        """Move the staged rows with one INSERT ... SELECT ... ON CONFLICT.

        ``source``: a SELECT of the COPY columns to move instead of this
        loader's own staging table (the shared staging area of
        :mod:`vectorstore.write.stage`), with its ``params``.
        """
        stage = self._stage
        cols = ", ".join(self._columns)
        # The last occurrence of an external id in the input wins; NULL ids never conflict.
        if source is None:
            source = (
                f"SELECT {cols} FROM (SELECT DISTINCT ON (external_id) * FROM {stage} "
                f"WHERE external_id IS NOT NULL ORDER BY external_id, ord DESC) AS keyed "
                f"UNION ALL SELECT {cols} FROM {stage} WHERE external_id IS NULL"
            )
        if self.policy == "skip":
            action = "DO NOTHING"
        else:
            action = (
                "DO UPDATE SET text = EXCLUDED.text, content_hash = EXCLUDED.content_hash, "
                "metadata = EXCLUDED.metadata, embedding = EXCLUDED.embedding"
            )
        # xmax = 0 on a returned row means it was inserted, not updated.  A
        # partitioned table cannot return system columns: the rows an update
        # will overwrite are counted before (the conflict lock is taken by the
        # INSERT; the counts are of this transaction's view).
        fresh = "(xmax = 0)"
        if is_partitioned(self.session, self._table):
            fresh = "true"
            if self.policy != "skip":
                fresh = "false"
                known = self.session.execute(
                    text(
                        f"SELECT count(DISTINCT s.external_id) FROM {stage} s JOIN {self.table} d "
                        f"ON d.collection_id = s.collection_id AND d.external_id = s.external_id"
                    )
                ).scalar_one()
        row = self.session.execute(
            text(
                f"WITH written AS (INSERT INTO {self.table} ({cols}) {source} "
                f"ON CONFLICT (collection_id, external_id) {action} "
                f"RETURNING {fresh} AS fresh) "
                f"SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) "
                f"FROM written"
            ),
            dict(params or {}),
        ).one()
        inserted, updated = int(row[0]), int(row[1])
        if fresh == "false":  # partitioned, on_conflict="update": see above
            updated = int(known)
            inserted = int(row[1]) - updated
        return LoadCounts(
            inserted=inserted, updated=updated, skipped=sent - inserted - updated, rows=sent
        )

    def merge_from(self, source: str, params: Mapping[str, Any], sent: int) -> LoadCounts:
        """Move the rows of ``source`` (a SELECT of the COPY columns) under the conflict policy.

        The merge of :mod:`vectorstore.write.stage`: rows staged elsewhere (the
        shared staging area), moved in this loader's transaction.  ``sent``:
        the rows ``source`` holds, for the skipped count.
        """
        started = time.perf_counter()
        with db_errors(self.action):
            done = self._merge(sent, source, params)
        done.write_s = time.perf_counter() - started
        self.counts.inserted += done.inserted
        self.counts.skipped += done.skipped
        self.counts.updated += done.updated
        self.counts.rows += done.rows
        self.counts.write_s += done.write_s
        return done

    def close(self) -> None:
        """Drop the staging table now rather than at commit."""
        if self._stage is not None:
            self.session.execute(text(f"DROP TABLE IF EXISTS {self._stage}"))
            self._stage = None


@contextmanager
def bulk_load(
    target: Target[Any],
    policy: ConflictPolicy,
    *,
    action: str,
    rebuild_index: bool | None = False,
    index_options: Mapping[str, Any] | None = None,
    expected_rows: int | None = None,
    reads_hashes: bool = False,
) -> Iterator[Loader]:
    """One bulk load in one (sub)transaction: a :class:`Loader` for the block.

    A collection that does not exist yet is created inside the same
    transaction, so a load that fails leaves no collection behind.

    Big-load mode (:mod:`vectorstore.schema.big_load`): ``rebuild_index=True``
    drops the table's secondary indexes and foreign key before the block and
    rebuilds them after it; ``None`` does so when ``expected_rows`` (or, for
    a load sent in several COPYs, the rows written so far) is large relative
    to the table; ``False`` never.  ``reads_hashes``: the load looks up
    content hashes between its COPYs, so that index stays.  The drop happens
    in the load's transaction: a failed load restores everything.  A failed
    index build does not undo the load: the rows stay in the transaction
    (committed when we own it) and :class:`~vectorstore.IndexBuildError` is
    raised once the write is complete.
    """
    mode = check_mode(rebuild_index)
    options = check_index_options(index_options)
    failure: BaseException | None = None
    label = f"{action} in collection {target.spec.name!r}"
    with target.sessions.write(action) as session:
        collection = target.collection or create_or_find(session, target.spec, target.embedder)
        loader = Loader(session, target, collection, policy, label)
        keep = ("collection_id", "content_hash") if reads_hashes else ()
        loader.big = BigLoad(session, target.model, collection.id, mode, keep, options)
        try:
            loader.big.consider(expected_rows)
            yield loader
            loader.close()
            failure = loader.big.finish()
        finally:
            if loader.big.started:
                forget(target.table)  # rolled back or rebuilt: read the catalog again
    if failure is not None:
        raise failure


def bulk_add(
    target: Target[Any],
    batches: Iterable[Batch],
    policy: ConflictPolicy,
    *,
    rebuild_index: bool | None = False,
    index_options: Mapping[str, Any] | None = None,
    expected_rows: int | None = None,
) -> tuple[BulkResult, CollectionInfo]:
    """Embed what is missing and load ``batches`` as one COPY, all or nothing.

    ``expected_rows``: the input's size when known, for the automatic
    big-load choice (``rebuild_index=None``).  Returns the counts and the
    collection written to (created by this load when the target had none yet).
    """
    started = time.perf_counter()
    embedded = 0

    def prepare() -> Iterator[Batch]:
        nonlocal embedded
        for batch in batches:
            embedded += embed_missing(batch, target.embedder)
            yield batch

    batches = primed(target.embedder, batches)
    with bulk_load(target, policy, action="bulk_add", rebuild_index=rebuild_index,
                   index_options=index_options, expected_rows=expected_rows) as loader:  # fmt: skip
        loader.load(prepare())
    counts = loader.counts
    big = loader.big
    assert big is not None
    result = BulkResult(
        inserted=counts.inserted, skipped=counts.skipped, updated=counts.updated,
        embedded=embedded, elapsed_s=time.perf_counter() - started, write_s=counts.write_s,
        index_s=big.index_s, big_load=big.started, rebuilt=big.describe(),
        big_load_reason=big.reason,
    )  # fmt: skip
    return result, loader.collection
