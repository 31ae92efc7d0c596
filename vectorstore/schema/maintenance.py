"""ANN indexes around big loads: drop, load, rebuild with maintenance settings, ANALYZE.

Inserting into a table that already has an HNSW index updates the graph row by
row and is many times slower than building the index once after the load
(pgvector's own loading recipe: COPY, then CREATE INDEX, then ANALYZE).  This
module owns that fast path.

Design decisions:

* The index definitions come from the catalog reader
  (:mod:`vectorstore.schema.catalog`: the server's own ``CREATE INDEX`` text),
  so whatever ANN indexes a table has (HNSW, IVFFlat, partial, expression, any
  operator class) are recreated exactly, without depending on the module that
  declared them.
* The rebuild runs with ``SET LOCAL maintenance_work_mem`` and
  ``max_parallel_maintenance_workers`` (restored afterwards), so the build
  uses the memory and cores it needs only for this transaction.
* Progress is read from ``pg_stat_progress_create_index`` on a second
  connection while the build runs.
* A failed rebuild raises :class:`~vectorstore.IndexBuildError` carrying the
  statements that did not complete; :func:`rebuild_ann_indexes` runs them again
  in one call, and without them recreates any ANN index the model declares
  that the table lacks.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, text
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex

from vectorstore.errors import IndexBuildError, ValidationError, db_errors

from .catalog import forget, list_ann_indexes
from .indexes import check_definition_memory, surfaced_notices

__all__ = [
    "DEFAULT_MAINTENANCE_WORK_MEM",
    "IndexBuildProgress",
    "ann_index_definitions",
    "build_indexes",
    "build_settings",
    "drop_ann_indexes",
    "rebuild_ann_indexes",
    "run_with_progress",
]

DEFAULT_MAINTENANCE_WORK_MEM = "512MB"
# How often the progress of a running build is read (seconds).
_PROGRESS_INTERVAL_S = 1.0

Bind = Session | Connection


@dataclass(frozen=True)
class IndexBuildProgress:
    """One reading of ``pg_stat_progress_create_index`` for the running build.

    ``number`` / ``total``: the index's position among the indexes being built
    by this call (1-based; 0 when not known).  After each build one reading
    with phase ``"done"`` is sent.
    """

    index: str
    phase: str
    blocks_done: int
    blocks_total: int
    tuples_done: int
    tuples_total: int
    number: int = 0
    total: int = 0

    @property
    def fraction(self) -> float | None:
        """Share of the current phase done, when the server reports totals."""
        if self.tuples_total > 0:
            return self.tuples_done / self.tuples_total
        if self.blocks_total > 0:
            return self.blocks_done / self.blocks_total
        return None


def _engine(bind: Bind) -> Engine:
    if isinstance(bind, Connection):
        return bind.engine
    engine = bind.get_bind()
    assert isinstance(engine, Engine)
    return engine


def ann_index_definitions(bind: Bind, table: Table) -> list[tuple[str, str]]:
    """``(index name, CREATE INDEX statement)`` of every ANN index on ``table``."""
    return [(ix.name, ix.definition) for ix in list_ann_indexes(bind, table)]


def drop_ann_indexes(bind: Bind, table: Table) -> list[str]:
    """Drop the ANN indexes of ``table``; returns their ``CREATE INDEX`` statements."""
    found = ann_index_definitions(bind, table)
    preparer = _engine(bind).dialect.identifier_preparer
    for index_name, _definition in found:
        qualified = preparer.quote(index_name)
        if table.schema:
            qualified = f"{preparer.quote_schema(table.schema)}.{qualified}"
        bind.execute(text(f"DROP INDEX {qualified}"))
    if found:
        forget(table)
    return [definition for _name, definition in found]


@contextlib.contextmanager
def _settings(bind: Bind, values: dict[str, str]) -> Iterator[None]:
    """SET LOCAL ``values`` for the block, then put the previous values back."""
    previous = {
        key: str(bind.execute(text("SELECT current_setting(:k)"), {"k": key}).scalar_one())
        for key in values
    }
    for key, value in values.items():
        bind.execute(text("SELECT set_config(:k, :v, true)"), {"k": key, "v": value})
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # the transaction may be aborted
            for key, value in previous.items():
                bind.execute(text("SELECT set_config(:k, :v, true)"), {"k": key, "v": value})


class _ProgressReader:
    """Polls pg_stat_progress_create_index for one backend on its own connection."""

    def __init__(
        self,
        engine: Engine,
        pid: int,
        callback: Callable[[IndexBuildProgress], None],
        index: str = "",
        number: int = 0,
        total: int = 0,
    ) -> None:
        self._engine = engine
        self._pid = pid
        self._callback = callback
        self._stop = threading.Event()
        self.index = index
        self.number = number
        self.total = total
        self._thread = threading.Thread(target=self._run, name="vectorstore-index-progress")
        self._thread.daemon = True

    def __enter__(self) -> _ProgressReader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            with self._engine.connect() as conn:
                while not self._stop.wait(_PROGRESS_INTERVAL_S):
                    row = conn.execute(
                        text(
                            "SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total "
                            "FROM pg_stat_progress_create_index WHERE pid = :pid"
                        ),
                        {"pid": self._pid},
                    ).one_or_none()
                    conn.rollback()
                    if row is not None:
                        done, blocks, tuples_done, tuples = map(int, row[1:])
                        self._callback(IndexBuildProgress(
                            self.index, str(row[0]), done, blocks, tuples_done, tuples,
                            number=self.number, total=self.total,
                        ))  # fmt: skip
        except Exception:  # noqa: S110 - progress is best effort; the build reports errors
            pass


def _default_workers() -> int:
    return max(0, min(7, (os.cpu_count() or 1) - 1))


def build_settings(maintenance_work_mem: str, parallel_workers: int | None) -> dict[str, str]:
    """The settings of an index build (``SET LOCAL`` for its duration)."""
    workers = _default_workers() if parallel_workers is None else parallel_workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValidationError(f"parallel_workers must be >= 0, got {workers}")
    return {
        "maintenance_work_mem": maintenance_work_mem,
        "max_parallel_maintenance_workers": str(workers),
    }


def _name_of(definition: str) -> str:
    """The index name of a ``CREATE [UNIQUE] INDEX [IF NOT EXISTS] name ON ...`` statement."""
    words = definition.split(" ON ", 1)[0].split()
    return words[-1] if words else definition


def run_with_progress(
    bind: Bind,
    definition: str,
    settings: dict[str, str],
    progress: Callable[[IndexBuildProgress], None] | None,
    *,
    index: str | None = None,
    number: int = 0,
    total: int = 0,
) -> None:
    """Run one ``CREATE INDEX`` with ``settings``, reporting progress to ``progress``."""
    name = index or _name_of(definition)
    connection = bind.connection() if isinstance(bind, Session) else bind
    hnsw = " using hnsw " in definition.lower()
    with _settings(bind, settings):
        if hnsw and "maintenance_work_mem" in settings:
            check_definition_memory(connection, definition, settings["maintenance_work_mem"])
        with surfaced_notices(connection, name):
            if progress is None:
                bind.execute(text(definition))
                return
            pid = int(bind.execute(text("SELECT pg_backend_pid()")).scalar_one())
            with _ProgressReader(_engine(bind), pid, progress, name, number, total):
                bind.execute(text(definition))
    progress(IndexBuildProgress(name, "done", 0, 0, 0, 0, number, total))


def build_indexes(
    bind: Bind,
    definitions: Sequence[str],
    *,
    table: str | None = None,
    maintenance_work_mem: str = DEFAULT_MAINTENANCE_WORK_MEM,
    parallel_workers: int | None = None,
    progress: Callable[[IndexBuildProgress], None] | None = None,
) -> None:
    """Run ``CREATE INDEX`` statements with build settings, then ANALYZE ``table``.

    Args:
        bind: a Session or Connection; the statements run in its transaction.
        definitions: ``CREATE INDEX`` statements (as from :func:`drop_ann_indexes`).
        table: the table to ANALYZE afterwards (quoted as needed); None skips it.
        maintenance_work_mem: memory for the build; an HNSW build is much faster
            while its graph fits.
        parallel_workers: ``max_parallel_maintenance_workers``; default: the
            machine's cores minus one (at most 7).
        progress: called about once a second with the build's progress.

    Raises:
        IndexBuildError: a statement failed; ``definitions`` lists those not built.
    """
    settings = build_settings(maintenance_work_mem, parallel_workers)
    done = 0
    try:
        with db_errors("rebuild the ANN index"):
            for number, definition in enumerate(definitions, start=1):
                run_with_progress(bind, definition, settings, progress, number=number,
                                  total=len(definitions))  # fmt: skip
                done += 1
            if table is not None:
                bind.execute(text(f"ANALYZE {table}"))
    except Exception as exc:
        remaining = list(definitions[done:])
        raise IndexBuildError(
            f"the ANN index rebuild failed ({exc}); the rows are loaded and kept. "
            f"Rebuild with vectorstore.rebuild_ann_indexes(session, model) or pass "
            f"the statements in this error's .definitions",
            definitions=remaining,
        ) from exc


def rebuild_ann_indexes(
    bind: Bind,
    model: Any,
    definitions: Sequence[str] | None = None,
    **options: Any,
) -> list[str]:
    """Recreate missing indexes of ``model``'s table in one call; returns what ran.

    With ``definitions`` (e.g. ``IndexBuildError.definitions``) those statements
    run; without, every index ``model`` declares that the table lacks is
    created (HNSW/IVFFlat, and since big loads drop them too, the GIN and
    btree ones).  ``options`` are those of :func:`build_indexes`.  The
    statements run in ``bind``'s transaction: commit it afterwards.
    """
    table = model.__table__
    preparer = _engine(bind).dialect.identifier_preparer
    qualified = preparer.format_table(table)
    if definitions is None:
        existing = {
            str(name)
            for name in bind.execute(
                text("SELECT indexrelid::regclass::text FROM pg_index "
                     "WHERE indrelid = CAST(:t AS regclass)"),
                {"t": qualified},
            ).scalars()
        }  # fmt: skip
        existing |= {name.rsplit(".", 1)[-1].strip('"') for name in existing}
        dialect = _engine(bind).dialect
        definitions = [
            str(CreateIndex(index).compile(dialect=dialect))
            for index in sorted(table.indexes, key=lambda i: str(i.name))
            if index.name not in existing
        ]
    build_indexes(bind, list(definitions), table=qualified, **options)
    return list(definitions)
