"""Distributed ingest on Apache Spark: batch and Structured Streaming, exactly once.

Install with ``pip install 'vectorstore[spark]'`` (PySpark needs a Java 17
runtime).  Nothing else in vectorstore imports PySpark.

* :func:`write` loads a DataFrame (batch).  The driver resolves the
  collection and (``rebuild_index=True``) drops the table's ANN indexes; each
  partition, on its executor, builds the embedder once per Python worker
  process, embeds in batches of ``batch_rows`` and, in **one transaction**,
  stages the rows through vectorstore's binary COPY and merges them into the
  collection under the conflict policy, recording (run, partition) in the
  ingest ledger.  The driver then rebuilds the indexes and runs ANALYZE.
* :class:`StreamingSink` is a ``foreachBatch`` sink.  Executors stage a
  micro-batch's rows; the driver merges the stage into the collection and
  records (query id, batch id) in the ledger in one transaction.

What "exactly once" rests on:

1. **The id column.**  Every row has an external id (``id_col``), stable
   across re-runs.  A re-run merges with ``ON CONFLICT`` on it: ``"skip"``
   leaves the row written before, ``"update"`` writes the same values again.
2. **One transaction per unit of work.**  A partition (batch) or a
   micro-batch (streaming) is merged and recorded in the ledger in one
   transaction: a task that dies before the commit leaves nothing; one that
   dies after it left its ledger entry, and the attempt Spark runs again
   finds it and writes nothing.  Two attempts at once (speculative execution)
   serialise on the ledger's primary key.
3. **Staging keyed by part.**  A part staged again replaces its rows, so a
   retried task never leaves two copies in the stage.

Counts (inserted, updated, skipped) come from the database (the ledger entries
written in the merges' transactions), never from accumulators, which count a
retried task twice.  The time split (embedding vs writing) comes from the
partition tasks' results (``collect`` keeps one successful attempt per
partition).
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import URL, Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs
from vectorstore._optional import require

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "SparkWriteResult",
    "StreamingSink",
    "foreach_batch_sink",
    "sentence_transformer",
    "write",
]

#: Rows embedded and staged per COPY on an executor.
DEFAULT_BATCH_ROWS = 2048

Bind = str | URL | Callable[[], Engine]
EmbedderFactory = Callable[[], vs.Embedder]

_STATS_SCHEMA = (
    "partition INT, chunks INT, rows LONG, embed_s DOUBLE, write_s DOUBLE, replayed BOOLEAN"
)


# -- what a Python worker process keeps between tasks ---------------------------------
_ENGINES: dict[str, Engine] = {}
_EMBEDDERS: dict[str, vs.Embedder] = {}
#: Called with (partition, attempt) after a partition's transaction committed; the
#: fault tests put a failure here (a task that dies after its commit).
_AFTER_COMMIT: list[Callable[[int, int], None]] = []


def _cached_engine(key: str, bind: Bind) -> Engine:
    engine = _ENGINES.get(key)
    if engine is None:
        engine = bind() if callable(bind) else vs.make_engine(bind)
        _ENGINES[key] = engine
    return engine


def _cached_embedder(key: str, factory: EmbedderFactory) -> vs.Embedder:
    embedder = _EMBEDDERS.get(key)
    if embedder is None:
        embedder = factory()
        _EMBEDDERS[key] = embedder
    return embedder


def _key_of(value: Any) -> str:
    """A stable key for a bind or factory: what Python workers cache their copy under."""
    if isinstance(value, str | URL):
        raw = str(value.render_as_string(hide_password=False) if isinstance(value, URL) else value)
        return "url:" + hashlib.sha256(raw.encode()).hexdigest()
    cloudpickle = require("cloudpickle", extra="spark", feature="the Spark integration")
    return "obj:" + hashlib.sha256(cloudpickle.dumps(value)).hexdigest()


def sentence_transformer(
    model_name: str | None = None, *, device: str | None = None, batch_size: int | None = None
) -> EmbedderFactory:
    """A picklable factory of :class:`~vectorstore.SentenceTransformerEmbedder` for executors.

    ``device`` None picks cuda > mps > cpu on each executor (a GPU where it has
    one).  The model loads once per Python worker process, on its first batch.
    """
    return _SentenceTransformerFactory(model_name, device, batch_size)


@dataclass(frozen=True)
class _SentenceTransformerFactory:
    model_name: str | None
    device: str | None
    batch_size: int | None

    def __call__(self) -> vs.Embedder:
        kwargs: dict[str, Any] = {"device": self.device}
        if self.batch_size is not None:
            kwargs["batch_size"] = self.batch_size
        if self.model_name is not None:
            return vs.SentenceTransformerEmbedder(self.model_name, **kwargs)
        return vs.SentenceTransformerEmbedder(**kwargs)


# -- results ------------------------------------------------------------------------
@dataclass(frozen=True)
class SparkWriteResult:
    """What :func:`write` did.

    Attributes:
        inserted, updated, skipped: rows, counted from the ingest ledger (the
            database), each partition once however often Spark ran it.
        partitions: partitions merged.
        replayed_partitions: partitions a later attempt found already merged
            (a retried or speculative task after a commit): nothing written twice.
        embed_s: seconds the executors spent embedding (summed over partitions).
        write_s: seconds the executors spent staging and merging (summed).
        index_s: seconds the driver spent rebuilding the ANN indexes and ANALYZE.
        elapsed_s: wall time of the whole call on the driver.
    """

    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    partitions: int = 0
    replayed_partitions: int = 0
    embed_s: float = 0.0
    write_s: float = 0.0
    index_s: float = 0.0
    elapsed_s: float = 0.0
    rebuilt: tuple[str, ...] = field(default=())

    @property
    def rows(self) -> int:
        """Rows handled: inserted + updated + skipped."""
        return self.inserted + self.updated + self.skipped


# -- the executor side ----------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    """Everything a partition task needs, pickled once with the closure."""

    bind: Bind
    bind_key: str
    collection: str
    embedding_model: str
    model: Any
    text_col: str
    id_col: str
    metadata_cols: tuple[str, ...]
    embedding_col: str | None
    embedder: EmbedderFactory | None
    embedder_key: str
    batch_rows: int
    on_conflict: vs.ConflictPolicy
    #: batch mode: the run id (each partition merges itself); streaming: None.
    run: str | None
    #: the stage name (streaming) or its prefix (batch: prefix/partition).
    stage: str


def _chunks(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    pa_ = require("pyarrow", extra="spark", feature="the Spark integration")
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa_.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending = rest.to_batches() if rest.num_rows else []
            held = rest.num_rows
    if held:
        yield pa_.Table.from_batches(pending)


def _vectors(column: Any, ids: list[Any], dimension: int) -> np.ndarray[Any, Any]:
    """The embedding column as a float32 matrix; a null or wrong-length vector names its row."""
    chunked = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    nulls = chunked.is_null().to_numpy(zero_copy_only=False)
    if nulls.any():
        i = int(np.flatnonzero(nulls)[0])
        raise vs.ValidationError("the embedding is missing (null)", external_id=_id(ids[i]))
    lengths = chunked.value_lengths().to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(lengths != dimension)
    if bad.size:
        i = int(bad[0])
        raise vs.DimensionMismatchError(
            f"the embedding has {int(lengths[i])} dimensions, the collection {dimension}",
            external_id=_id(ids[i]),
        )
    values = chunked.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32).reshape(len(ids), dimension)


def _id(value: Any) -> str | None:
    return None if value is None else str(value)


def _columns(plan: _Plan, table: pa.Table, dimension: int) -> tuple[Any, ...]:
    ids = table.column(plan.id_col).to_pylist()
    for value in ids:
        if value is None:
            raise vs.ValidationError(
                f"a row has no id (column {plan.id_col!r} is null): exactly-once ingest "
                "rests on a stable id per row"
            )
    external_ids = [str(v) for v in ids]
    texts = table.column(plan.text_col).to_pylist()
    for i, value in enumerate(texts):
        if not isinstance(value, str):
            raise vs.ValidationError(
                f"the text (column {plan.text_col!r}) is missing", external_id=external_ids[i]
            )
    metadata: list[dict[str, Any] | None] | None = None
    if plan.metadata_cols:
        cols = [table.column(c).to_pylist() for c in plan.metadata_cols]
        metadata = [
            {name: col[i] for name, col in zip(plan.metadata_cols, cols, strict=True)}
            for i in range(len(texts))
        ]
    vectors = None
    if plan.embedding_col is not None:
        vectors = _vectors(table.column(plan.embedding_col), external_ids, dimension)
    return external_ids, texts, metadata, vectors


def _stage_partition(plan: _Plan, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """One partition: embed, stage and (batch mode) merge, in one transaction."""
    pa_ = require("pyarrow", extra="spark", feature="the Spark integration")
    from pyspark import TaskContext

    context = TaskContext.get()
    partition = context.partitionId() if context is not None else 0
    engine = _cached_engine(plan.bind_key, plan.bind)
    embedder = (
        _cached_embedder(plan.embedder_key, plan.embedder) if plan.embedder is not None else None
    )
    stage = plan.stage if plan.run is None else f"{plan.stage}/{partition}"
    embed_s = write_s = 0.0
    chunks = rows = 0
    replayed = False
    try:
        with Session(engine) as session:
            repo: vs.DocumentRepository[Any] = vs.DocumentRepository(
                session, collection=plan.collection, model=plan.model,
                embedding_model=plan.embedding_model, create=False,
            )  # fmt: skip
            if plan.run is not None and repo.ledger(plan.run, partition):
                replayed = True
            else:
                dimension = repo.dimension
                for table in _chunks(batches, plan.batch_rows):
                    ids, texts, metadata, vectors = _columns(plan, table, dimension)
                    if vectors is None:
                        if embedder is None:  # pragma: no cover - checked on the driver
                            raise vs.ConfigurationError("no embedding column and no embedder")
                        started = time.perf_counter()
                        vectors = embedder.embed(texts)
                        embed_s += time.perf_counter() - started
                    started = time.perf_counter()
                    repo.stage(texts, embeddings=vectors, metadata=metadata, external_ids=ids,
                               stage=stage, part=f"{partition}:{chunks}")  # fmt: skip
                    write_s += time.perf_counter() - started
                    chunks += 1
                    rows += len(ids)
                if plan.run is not None:
                    started = time.perf_counter()
                    merged = repo.merge_staged(
                        stage, on_conflict=plan.on_conflict, parts=chunks,
                        ledger=(plan.run, partition),
                    )  # fmt: skip
                    replayed = merged.replayed
                    write_s += time.perf_counter() - started
            session.commit()
        for hook in _AFTER_COMMIT:
            hook(partition, context.attemptNumber() if context is not None else 0)
    except vs.ValidationError as exc:
        # Rows are numbered within a chunk here: say the partition instead.
        raise type(exc)(
            f"{exc.reason} (Spark partition {partition}; nothing of it was written)",
            external_id=exc.external_id,
        ) from exc
    yield pa_.RecordBatch.from_pylist(
        [{"partition": partition, "chunks": chunks, "rows": rows, "embed_s": embed_s,
          "write_s": write_s, "replayed": replayed}],
        schema=_stats_arrow(),
    )  # fmt: skip


def _stats_arrow() -> pa.Schema:
    pa_ = require("pyarrow", extra="spark", feature="the Spark integration")
    return pa_.schema(
        [("partition", pa_.int32()), ("chunks", pa_.int32()), ("rows", pa_.int64()),
         ("embed_s", pa_.float64()), ("write_s", pa_.float64()), ("replayed", pa_.bool_())]
    )  # fmt: skip


# -- the driver side ------------------------------------------------------------------
_TYPED = re.compile(r"vectorstore\.errors\.(\w+): (.*)")


def _typed_error(exc: BaseException) -> BaseException | None:
    """The vectorstore error an executor raised, rebuilt from Spark's wrapper (or None)."""
    found = _TYPED.findall(str(exc))
    if not found:
        return None
    name, message = found[-1]
    cls = getattr(vs, name, None)
    if not (isinstance(cls, type) and issubclass(cls, vs.VectorStoreError)):
        return None
    try:
        rebuilt: BaseException = cls(message.strip())
    except TypeError:
        rebuilt = vs.VectorStoreError(message.strip())
    return rebuilt


def _run_spark(action: Callable[[], list[Any]]) -> list[Any]:
    """Run a Spark action; an executor's vectorstore error surfaces as itself."""
    try:
        return action()
    except vs.VectorStoreError:
        raise
    except Exception as exc:
        typed = _typed_error(exc)
        if typed is not None:
            raise typed from exc
        raise


def _check_columns(
    df: Any,
    text_col: str,
    id_col: str | None,
    metadata_cols: Sequence[str],
    embedding_col: str | None,
    embedder: EmbedderFactory | None,
) -> tuple[str, ...]:
    names = set(df.columns)
    if id_col is None:
        raise vs.ConfigurationError(
            "Spark ingest needs an id column (id_col=...): exactly once under task retries "
            "rests on a stable id per row, which a re-run writes with ON CONFLICT. Without "
            "one, derive it from the content, e.g. "
            "df.withColumn('id', pyspark.sql.functions.sha2('text', 256))"
        )
    wanted = [text_col, id_col, *metadata_cols] + ([embedding_col] if embedding_col else [])
    missing = [c for c in wanted if c not in names]
    if missing:
        raise vs.ConfigurationError(
            f"the DataFrame has no column {missing[0]!r} (it has {sorted(names)})"
        )
    if embedding_col is None and embedder is None:
        raise vs.ConfigurationError(
            "no embedding column and no embedder: pass embedder=<a factory> (e.g. "
            "vectorstore.integrations.spark.sentence_transformer()) or embedding_col=..."
        )
    if embedder is not None and not callable(embedder):
        raise vs.ConfigurationError(
            "embedder must be a picklable factory (a callable returning an Embedder), "
            "built once per executor process; got an object of type "
            f"{type(embedder).__name__}"
        )
    return tuple(metadata_cols)


def _check_batch_rows(batch_rows: object) -> int:
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows <= 0:
        raise vs.ValidationError(f"batch_rows must be positive, got {batch_rows!r}")
    return batch_rows


def _driver_engine(bind: Bind) -> tuple[Engine, bool]:
    if callable(bind):
        return bind(), False
    return vs.make_engine(bind), True


def _model_identity(
    embedder: EmbedderFactory | None, embedding_model: str | None
) -> tuple[str | None, int | None]:
    """The embedding model name (and dimension) to record on the collection."""
    if embedding_model is not None or embedder is None:
        return embedding_model, None
    if isinstance(embedder, _SentenceTransformerFactory):
        return embedder.model_name or vs.DEFAULT_MODEL_NAME, None
    # Any other factory is built once on the driver for its model name (a
    # SentenceTransformerEmbedder loads no weights for that); pass
    # embedding_model=... to avoid it.
    probe = embedder()
    return probe.model_name, None


def write(
    df: Any,
    url_or_engine_factory: Bind,
    *,
    collection: str,
    text_col: str = "text",
    id_col: str | None = None,
    metadata_cols: Sequence[str] = (),
    embedding_col: str | None = None,
    embedder: EmbedderFactory | None = None,
    embedding_model: str | None = None,
    model: Any = None,
    on_conflict: vs.ConflictPolicy = "skip",
    rebuild_index: bool = True,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> SparkWriteResult:
    """Embed and load a Spark DataFrame into ``collection``, each row exactly once.

    Args:
        df: the input; one row per document.
        url_or_engine_factory: a database URL, or a picklable callable that
            returns an Engine (called once per executor Python process).
        collection: the collection (created when missing).
        text_col: the text column.
        id_col: the stable external id column (required: idempotence rests on it).
        metadata_cols: the columns folded into the metadata.
        embedding_col: precomputed vectors (an array<float> column); the rows
            are then not embedded.
        embedder: a picklable factory of the Embedder, built once per Python
            worker process on the executors (see :func:`sentence_transformer`).
        embedding_model: the model name to record on a new collection
            (default: the embedder's).
        model: the document class (default :class:`~vectorstore.Document`).
        on_conflict: ``"skip"`` (keep the stored row) or ``"update"`` (overwrite:
            a retried partition writes the same values again).
        rebuild_index: drop the table's ANN indexes on the driver before the load
            and rebuild them (then ANALYZE) after it: a load into an HNSW index
            is many times slower than a build.  Searches of every collection in
            the table run without the index meanwhile.
        batch_rows: rows embedded and staged per COPY on an executor.

    Raises:
        ConfigurationError: no id column, a missing column, neither vectors nor embedder.
        ValidationError: a bad row (missing text, wrong dimension, NaN), named
            by its id; nothing of its partition is written.
    """
    started = time.perf_counter()
    require("pyspark", extra="spark", feature="the Spark integration")
    metadata = _check_columns(df, text_col, id_col, metadata_cols, embedding_col, embedder)
    assert id_col is not None
    batch_rows = _check_batch_rows(batch_rows)
    if on_conflict not in ("skip", "update"):
        raise vs.ValidationError(
            f'Spark ingest takes on_conflict="skip" or "update" (a retried task meets the ids '
            f"it wrote before), got {on_conflict!r}"
        )
    document = model if model is not None else vs.Document
    name, _ = _model_identity(embedder, embedding_model)
    engine, owned = _driver_engine(url_or_engine_factory)
    run = f"spark-write/{uuid.uuid4().hex}"
    try:
        repo: vs.DocumentRepository[Any] = vs.DocumentRepository.standalone(
            engine, collection=collection, model=document, embedding_model=name
        )
        info = repo.collection
        dropped: list[str] = []
        if rebuild_index:
            for index in repo.list_indexes():
                dropped.append(index.definition)
                repo.drop_index(index.name, concurrently=False)
        plan = _Plan(
            bind=url_or_engine_factory, bind_key=_key_of(url_or_engine_factory),
            collection=collection, embedding_model=info.embedding_model, model=document,
            text_col=text_col, id_col=id_col, metadata_cols=metadata,
            embedding_col=embedding_col, embedder=embedder,
            embedder_key=_key_of(embedder) if embedder is not None else "",
            batch_rows=batch_rows, on_conflict=on_conflict, run=run, stage=run,
        )  # fmt: skip
        index_s = 0.0
        try:
            stats = _run_spark(
                lambda: df.mapInArrow(
                    lambda it: _stage_partition(plan, it), _STATS_SCHEMA
                ).collect()
            )
        finally:
            if dropped:
                index_s = _rebuild(engine, document, dropped)
        recorded = repo.ledger(run)
        repo.forget_ledger(run)
        return SparkWriteResult(
            inserted=sum(r.inserted for r in recorded.values()),
            updated=sum(r.updated for r in recorded.values()),
            skipped=sum(r.skipped for r in recorded.values()),
            partitions=len(recorded),
            replayed_partitions=sum(1 for s in stats if s["replayed"]),
            embed_s=sum(float(s["embed_s"]) for s in stats),
            write_s=sum(float(s["write_s"]) for s in stats),
            index_s=index_s, elapsed_s=time.perf_counter() - started, rebuilt=tuple(dropped),
        )  # fmt: skip
    finally:
        _forget_quietly(engine, run)
        if owned:
            engine.dispose()


def _forget_quietly(engine: Engine, run: str) -> None:
    """Remove a run's ledger entries and stages (after a failure: the partitions that did merge)."""
    with Session(engine) as session, session.begin():
        session.execute(
            text("DELETE FROM vectorstore_ingest_ledger WHERE stream = :run"), {"run": run}
        )


def _rebuild(engine: Engine, document: Any, definitions: list[str]) -> float:
    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        vs.rebuild_ann_indexes(session, document, definitions)
    table = document.__table__
    quoted = engine.dialect.identifier_preparer.format_table(table)
    with engine.connect() as conn:
        conn.execute(text(f"ANALYZE {quoted}"))
        conn.commit()
    return time.perf_counter() - started


# -- streaming ------------------------------------------------------------------------
class StreamingSink:
    """A ``foreachBatch`` sink for Structured Streaming that writes each micro-batch once.

    Executors stage the micro-batch's rows (embedding them first when there is
    no vector column); the driver then merges the stage into the collection
    and records (stream, batch id) in the ingest ledger, in one transaction.
    A micro-batch delivered again (after a failure or a restart from the
    checkpoint) finds its ledger entry and is skipped.

    ``stream`` names the query in the ledger; default: the query's id, which
    Spark keeps in the checkpoint (stable across restarts, new for a new
    checkpoint).  Arguments otherwise as for :func:`write`.

    Use::

        query = (df.writeStream.foreachBatch(sink)
                 .option("checkpointLocation", "s3://.../ckpt")
                 .trigger(processingTime="10 seconds").start())
    """

    def __init__(
        self,
        url_or_engine_factory: Bind,
        *,
        collection: str,
        text_col: str = "text",
        id_col: str | None = None,
        metadata_cols: Sequence[str] = (),
        embedding_col: str | None = None,
        embedder: EmbedderFactory | None = None,
        embedding_model: str | None = None,
        model: Any = None,
        on_conflict: vs.ConflictPolicy = "skip",
        batch_rows: int = DEFAULT_BATCH_ROWS,
        stream: str | None = None,
    ) -> None:
        if id_col is None:
            _check_columns(_NoColumns(), text_col, None, (), embedding_col, embedder)
        if on_conflict not in ("skip", "update"):
            raise vs.ValidationError(
                f'the streaming sink takes on_conflict="skip" or "update", got {on_conflict!r}'
            )
        self.bind = url_or_engine_factory
        self.collection = collection
        self.text_col = text_col
        self.id_col: str = id_col  # type: ignore[assignment]
        self.metadata_cols = tuple(metadata_cols)
        self.embedding_col = embedding_col
        self.embedder = embedder
        self.embedding_model = embedding_model
        self.model = model if model is not None else vs.Document
        self.on_conflict: vs.ConflictPolicy = on_conflict
        self.batch_rows = _check_batch_rows(batch_rows)
        self.stream = stream
        #: The last micro-batch's merge (replayed=True when it had been merged before).
        self.last_result: vs.MergeResult | None = None
        self._engine: Engine | None = None

    def __getstate__(self) -> dict[str, Any]:  # the engine stays on the driver
        state = dict(self.__dict__)
        state["_engine"] = None
        return state

    def _driver_engine(self) -> Engine:
        if self._engine is None:
            self._engine = _driver_engine(self.bind)[0]
        return self._engine

    def stream_id(self, batch_df: Any) -> str:
        """The ledger's name for this query: ``stream``, else the query's checkpointed id."""
        if self.stream is not None:
            return self.stream
        found = batch_df.sparkSession.sparkContext.getLocalProperty("sql.streaming.queryId")
        if not found:
            raise vs.ConfigurationError(
                "the streaming sink cannot see the query's id here; pass stream='<a stable name>'"
            )
        return f"spark-stream/{found}"

    def __call__(self, batch_df: Any, batch_id: int) -> None:
        """Write one micro-batch (the ``foreachBatch`` callback)."""
        metadata = _check_columns(batch_df, self.text_col, self.id_col, self.metadata_cols,
                                  self.embedding_col, self.embedder)  # fmt: skip
        stream = self.stream_id(batch_df)
        engine = self._driver_engine()
        name, _ = _model_identity(self.embedder, self.embedding_model)
        repo: vs.DocumentRepository[Any] = vs.DocumentRepository.standalone(
            engine, collection=self.collection, model=self.model, embedding_model=name
        )
        batch = int(batch_id)
        done = repo.ledger(stream, batch)
        if done:
            self.last_result = done[batch]
            return
        info = repo.collection
        stage = f"{stream}/{batch}"
        repo.discard_staged(stage)  # what an earlier, failed delivery left
        plan = _Plan(
            bind=self.bind, bind_key=_key_of(self.bind), collection=self.collection,
            embedding_model=info.embedding_model, model=self.model, text_col=self.text_col,
            id_col=self.id_col, metadata_cols=metadata, embedding_col=self.embedding_col,
            embedder=self.embedder,
            embedder_key=_key_of(self.embedder) if self.embedder is not None else "",
            batch_rows=self.batch_rows, on_conflict=self.on_conflict, run=None, stage=stage,
        )  # fmt: skip
        stats = _run_spark(
            lambda: batch_df.mapInArrow(
                lambda it: _stage_partition(plan, it), _STATS_SCHEMA
            ).collect()
        )
        parts = sum(int(s["chunks"]) for s in stats)
        self.last_result = self._merge(repo, stage, parts, (stream, batch))

    def _merge(
        self, repo: vs.DocumentRepository[Any], stage: str, parts: int, key: tuple[str, int]
    ) -> vs.MergeResult:
        """The driver's transaction: merge the stage and record the batch in the ledger."""
        return repo.merge_staged(stage, on_conflict=self.on_conflict, parts=parts, ledger=key)


class _NoColumns:
    columns: tuple[str, ...] = ()


def foreach_batch_sink(url_or_engine_factory: Bind, **options: Any) -> StreamingSink:
    """A :class:`StreamingSink` (``df.writeStream.foreachBatch(sink)``); options as for it."""
    return StreamingSink(url_or_engine_factory, **options)
