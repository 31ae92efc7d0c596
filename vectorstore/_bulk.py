"""One bulk load inside one transaction: batches -> binary COPY -> conflict policy.

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
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from ._batch import Batch
from ._copy import COPY_COLUMNS, copy_sql, encoded_stream, write_copy
from .errors import ConflictError, DatabaseError, ValidationError, VectorStoreError, db_errors

__all__ = ["ConflictPolicy", "LoadCounts", "Loader"]

ConflictPolicy = Literal["error", "skip", "update"]
POLICIES: tuple[ConflictPolicy, ...] = ("error", "skip", "update")

# SQLSTATE class 22 (data exception) and 23 (integrity constraint violation,
# other than the unique violation that the conflict policy reports) are
# problems of a row's value: they become ValidationError naming the row.
_DATA_CLASSES = ("22", "23")
_UNIQUE_VIOLATION = "23505"
_CONTEXT_LINE = re.compile(r"\bline (\d+)\b")


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


def _driver_error(exc: BaseException) -> BaseException:
    return getattr(exc, "orig", None) or exc


def _sqlstate(exc: BaseException) -> str | None:
    orig = _driver_error(exc)
    for attr in ("sqlstate", "pgcode"):
        code = getattr(orig, attr, None)
        if isinstance(code, str) and code:
            return code
    return None


class Loader:
    """Writes batches into ``table`` for one collection, inside ``session``'s transaction.

    Args:
        session: the Session whose connection (and transaction) is used.
        table: the document table's name, already quoted.
        dimension: the embedding column's dimension (for the staging table).
        collection_id: the collection every row belongs to.
        policy: the conflict policy on the external id.
        action: words for error messages, e.g. ``"bulk_add in collection 'docs'"``.
    """

    def __init__(
        self,
        session: Session,
        table: str,
        dimension: int,
        collection_id: int,
        policy: ConflictPolicy,
        action: str,
    ) -> None:
        if policy not in POLICIES:
            raise ValidationError(f"on_conflict must be one of {POLICIES}, got {policy!r}")
        self.session = session
        self.table = table
        self.dimension = dimension
        self.collection_id = collection_id
        self.policy = policy
        self.action = action
        self.counts = LoadCounts()
        preparer = session.get_bind().dialect.identifier_preparer
        self._columns = [preparer.quote(c) for c in COPY_COLUMNS]
        self._stage: str | None = None

    @property
    def _dbapi(self) -> Any:
        return self.session.connection().connection.dbapi_connection

    def load(
        self, batches: Iterable[Batch], on_batch: Callable[[Batch], None] | None = None
    ) -> LoadCounts:
        """Send ``batches`` as one COPY and apply the conflict policy.

        ``on_batch`` is called with each batch just before it is encoded (in the
        encoder thread).  Returns the counts of this load; ``self.counts`` keeps
        the totals.
        """
        started = time.perf_counter()
        stream = _StreamMap()

        def tracked() -> Iterator[Batch]:
            for batch in batches:
                if on_batch is not None:
                    on_batch(batch)
                stream.add(batch)
                yield batch

        target = self.table if self.policy == "error" else self._staging()
        before = stream.sent
        with db_errors(self.action):
            try:
                write_copy(
                    self._dbapi,
                    copy_sql(target, self._columns),
                    encoded_stream(tracked(), self.collection_id),
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
        """A driver error from the COPY, with the input row it happened on when known."""
        code = _sqlstate(exc)
        diag = getattr(_driver_error(exc), "diag", None)
        context = getattr(diag, "context", None) or ""
        match = _CONTEXT_LINE.search(context)
        where = stream.locate(int(match.group(1))) if match else None
        if where is None or code is None:
            return exc
        row, ext = where
        primary = getattr(diag, "message_primary", None) or str(_driver_error(exc)).strip()
        detail = getattr(diag, "message_detail", None)
        reason = f"PostgreSQL rejected the row: {primary}" + (f"; {detail}" if detail else "")
        if code == _UNIQUE_VIOLATION:
            label = f"row {row}" + (f", external_id {ext!r}" if ext is not None else "")
            return ConflictError(f"{self.action} failed at {label}: {primary} (SQLSTATE {code})")
        if code.startswith(_DATA_CLASSES):
            return ValidationError(f"{reason} (SQLSTATE {code})", row=row, external_id=ext)
        label = f"row {row}" + (f", external_id {ext!r}" if ext is not None else "")
        return DatabaseError(
            f"{self.action} failed at {label}: {primary} (SQLSTATE {code})", sqlstate=code
        )

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

    def _merge(self, sent: int) -> LoadCounts:
        """Move the staged rows with one INSERT ... SELECT ... ON CONFLICT."""
        stage = self._stage
        cols = ", ".join(self._columns)
        # The last occurrence of an external id in the input wins; NULL ids never conflict.
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
        # xmax = 0 on a returned row means it was inserted, not updated.
        row = self.session.execute(
            text(
                f"WITH written AS (INSERT INTO {self.table} ({cols}) {source} "
                f"ON CONFLICT (collection_id, external_id) {action} "
                f"RETURNING (xmax = 0) AS fresh) "
                f"SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) "
                f"FROM written"
            )
        ).one()
        inserted, updated = int(row[0]), int(row[1])
        return LoadCounts(
            inserted=inserted, updated=updated, skipped=sent - inserted - updated, rows=sent
        )

    def close(self) -> None:
        """Drop the staging table now rather than at commit."""
        if self._stage is not None:
            self.session.execute(text(f"DROP TABLE IF EXISTS {self._stage}"))
            self._stage = None


def run_bulk_add(
    repo: Any,
    batches: Iterable[Batch],
    policy: ConflictPolicy,
    *,
    rebuild_index: bool = False,
    index_options: dict[str, Any] | None = None,
) -> Any:
    """The body of ``DocumentRepository.bulk_add``: one COPY in one (sub)transaction.

    With ``rebuild_index`` the table's ANN indexes are dropped before the load
    and rebuilt after it (see :mod:`vectorstore.maintenance`).  A failed rebuild
    does not undo the load: the rows stay in the transaction (committed for a
    standalone repository) and :class:`~vectorstore.IndexBuildError` is raised
    after the write is complete.
    """
    from .maintenance import drop_ann_indexes, rebuild_after_load
    from .results import BulkResult

    started = time.perf_counter()
    info = repo.collection
    embedded = 0

    def prepare() -> Iterator[Batch]:
        nonlocal embedded
        for batch in batches:
            embedded += repo._fill_embeddings(batch)
            yield batch

    table = repo.model.__table__
    failure: BaseException | None = None
    with repo._write("bulk_add") as session:
        preparer = session.get_bind().dialect.identifier_preparer
        target = preparer.format_table(table)
        loader = Loader(
            session, target, repo.dimension, info.id, policy,
            f"bulk_add in collection {info.name!r}",
        )  # fmt: skip
        dropped: list[str] = []
        if rebuild_index:
            plain = f"{table.schema}.{table.name}" if table.schema else table.name
            dropped = drop_ann_indexes(session, plain)
        loader.load(prepare())
        loader.close()
        failure = rebuild_after_load(session, dropped, target, index_options)
    counts = loader.counts
    result = BulkResult(
        inserted=counts.inserted, skipped=counts.skipped, updated=counts.updated,
        embedded=embedded, elapsed_s=time.perf_counter() - started,
    )  # fmt: skip
    if failure is not None:
        raise failure
    return result
