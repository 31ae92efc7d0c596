"""Spark ingest against a real PySpark (local mode, task retries on) and the real database.

Each fault leaves the collection with every input row exactly once and nothing
else: a partition failing after part of its rows were sent (first attempt
only, found through ``TaskContext.attemptNumber()``), a Python worker killed
with rows of the open transaction already COPYed, a task dying after its
commit (the retry finds the ledger entry), two attempts of one partition at
once (what speculative execution does on a cluster), and a streaming query
failing mid-batch and restarted from its checkpoint.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import URL, text

import vectorstore as vs
from tests.conftest import url_for

pyspark = pytest.importorskip("pyspark")

from pyspark import TaskContext  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402, N812

from vectorstore.integrations import spark as vs_spark  # noqa: E402

pytestmark = pytest.mark.spark

DIM = vs.DEFAULT_DIMENSION
COLLECTION = "spark"


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2,3]")  # 2 cores, a task may fail 3 times
        .appName("vectorstore-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.python.worker.reuse", "true")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "64")
        .config("spark.speculation", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(start)
    out = []
    for i in range(start, start + n):
        vec = rng.standard_normal(DIM).astype(np.float32)
        out.append(
            {"id": f"doc-{i}", "text": f"document {i} about topic {i % 7}", "tenant": i % 3,
             "embedding": (vec / np.linalg.norm(vec)).tolist()}
        )  # fmt: skip
    return out


def frame(spark: SparkSession, data: list[dict[str, Any]], partitions: int = 2) -> Any:
    schema = "id STRING, text STRING, tenant INT, embedding ARRAY<FLOAT>"
    return spark.createDataFrame(data, schema).repartition(partitions, "id")


def stored(url: URL) -> dict[str, tuple[str, Any]]:
    engine = vs.make_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT d.external_id, d.text, d.metadata FROM vectorstore_documents d "
                     "JOIN vectorstore_collections c ON c.id = d.collection_id WHERE c.name = :c"),
                {"c": COLLECTION},
            ).all()  # fmt: skip
            staged = conn.execute(text("SELECT count(*) FROM vectorstore_stage_rows")).scalar()
            ledger = conn.execute(text("SELECT count(*) FROM vectorstore_ingest_ledger")).scalar()
    finally:
        engine.dispose()
    ids = [r[0] for r in found]
    assert len(ids) == len(set(ids)), "a row was written twice"
    assert staged == 0, "staged rows were left behind"
    assert ledger == 0, "a batch write left ledger entries"
    return {r[0]: (r[1], r[2]) for r in found}


def hashing() -> vs.Embedder:
    return vs.HashingTestEmbedder()


# -- batch ----------------------------------------------------------------------------
@pytest.mark.parametrize("driver", ["psycopg2", "psycopg"])
def test_batch_write_of_precomputed_vectors_then_again(
    spark: SparkSession, postgresql: Any, driver: str
) -> None:
    url = url_for(postgresql.info.dbname, driver)
    data = rows(300)
    df = frame(spark, data)
    first = vs_spark.write(df, url, collection=COLLECTION, id_col="id", embedding_col="embedding",
                           metadata_cols=["tenant"], embedding_model="precomputed",
                           batch_rows=40)  # fmt: skip
    assert (first.inserted, first.skipped, first.updated) == (300, 0, 0)
    assert first.partitions == 2
    found = stored(url)
    assert set(found) == {r["id"] for r in data}
    assert found["doc-7"] == ("document 7 about topic 0", {"tenant": 1})
    # The same rows again: skipped, counted by the database.
    again = vs_spark.write(df, url, collection=COLLECTION, id_col="id", embedding_col="embedding",
                           embedding_model="precomputed")  # fmt: skip
    assert (again.inserted, again.skipped, again.updated) == (0, 300, 0)
    updated = vs_spark.write(df.withColumn("text", F.upper("text")), url, collection=COLLECTION,
                             id_col="id", embedding_col="embedding", on_conflict="update",
                             embedding_model="precomputed")  # fmt: skip
    assert (updated.inserted, updated.updated) == (0, 300)
    assert stored(url)["doc-7"][0] == "DOCUMENT 7 ABOUT TOPIC 0"
    repo = vs.DocumentRepository.standalone(url, collection=COLLECTION,
                                            embedding_model="precomputed")  # fmt: skip
    hit = repo.nearest(np.asarray(data[5]["embedding"], dtype=np.float32), k=1)
    assert hit[0].document.external_id == "doc-5"
    repo.close()


def test_batch_write_embeds_on_the_executors_and_rebuilds_the_index(
    spark: SparkSession, db_url: URL
) -> None:
    repo = vs.DocumentRepository.standalone(db_url, collection=COLLECTION, embedder=hashing())
    repo.create_index()
    before = [ix.definition for ix in repo.list_indexes()]
    data = rows(200)
    df = frame(spark, data).drop("embedding")
    result = vs_spark.write(df, db_url, collection=COLLECTION, id_col="id", embedder=hashing,
                            metadata_cols=["tenant"], batch_rows=32)  # fmt: skip
    assert result.inserted == 200
    assert result.rebuilt == tuple(before)
    assert [ix.definition for ix in repo.list_indexes()] == before
    assert result.embed_s > 0
    assert result.write_s > 0
    top = repo.nearest("document 11 about topic 4", k=1)
    assert top[0].document.external_id == "doc-11"
    repo.close()
    assert len(stored(db_url)) == 200


def test_an_id_column_is_required_and_the_error_says_why(spark: SparkSession, db_url: URL) -> None:
    df = frame(spark, rows(5))
    with pytest.raises(vs.ConfigurationError, match=r"id column.*sha2"):
        vs_spark.write(df, db_url, collection=COLLECTION, embedding_col="embedding")
    with pytest.raises(vs.ConfigurationError, match="no column 'nope'"):
        vs_spark.write(df, db_url, collection=COLLECTION, id_col="nope", embedding_col="embedding")
    with pytest.raises(vs.ValidationError, match=r"skip.*update"):
        vs_spark.write(df, db_url, collection=COLLECTION, id_col="id", embedding_col="embedding",
                       on_conflict="error")  # fmt: skip


# -- faults: every row exactly once ---------------------------------------------------
class FailingFirstAttempt:
    """An embedder whose second batch fails on the first attempt of partition 1."""

    def __init__(self, kill: bool, fired: Path) -> None:
        self.kill = kill
        self.fired = fired
        self.inner = vs.HashingTestEmbedder()
        self.model_name = self.inner.model_name
        self.dimension = self.inner.dimension
        self.calls = 0

    def embed(self, texts: list[str]) -> Any:
        context = TaskContext.get()
        self.calls += 1
        first = context is not None and context.partitionId() == 1 and context.attemptNumber() == 0
        if first and self.calls >= 2:  # one batch of this partition is already COPYed
            self.calls = 0
            self.fired.touch()
            if self.kill:
                os._exit(1)  # the Python worker dies mid-transaction
            raise RuntimeError("injected failure after part of the partition was sent")
        return self.inner.embed(texts)


@pytest.mark.parametrize("kill", [False, True], ids=["raise", "kill-worker"])
def test_a_partition_failing_midway_on_its_first_attempt(
    spark: SparkSession, db_url: URL, kill: bool, tmp_path: Path
) -> None:
    fired = tmp_path / "fired"
    write_through_a_failure(spark, db_url, lambda: FailingFirstAttempt(kill, fired), fired)


def write_through_a_failure(spark: SparkSession, url: URL, factory: Any, fired: Path) -> None:
    """Write 240 rows with an embedder that fails once; each row is then stored exactly once."""
    data = rows(240)
    df = frame(spark, data).drop("embedding")
    result = vs_spark.write(df, url, collection=COLLECTION, id_col="id", embedder=factory,
                            batch_rows=30)  # fmt: skip
    assert fired.exists(), "the injected failure did not happen"
    assert result.inserted == 240
    assert set(stored(url)) == {r["id"] for r in data}


def test_a_task_dying_after_its_commit_is_not_written_twice(
    spark: SparkSession, db_url: URL, tmp_path: Path
) -> None:
    marker = tmp_path / "die-once"
    marker.touch()

    def factory() -> vs.Embedder:
        def die_once(partition: int, attempt: int) -> None:
            try:
                marker.unlink()  # the first task past its commit claims the failure
            except FileNotFoundError:
                return
            raise RuntimeError("injected failure after the commit")

        vs_spark._AFTER_COMMIT[:] = [die_once]
        return vs.HashingTestEmbedder()

    data = rows(150)
    df = frame(spark, data).drop("embedding")
    result = vs_spark.write(df, db_url, collection=COLLECTION, id_col="id",
                            embedder=factory, batch_rows=50)  # fmt: skip
    assert not marker.exists()
    assert (result.inserted, result.skipped) == (150, 0)
    assert result.replayed_partitions == 1
    assert set(stored(db_url)) == {r["id"] for r in data}


def test_two_attempts_of_one_partition_at_once_write_it_once(db_url: URL) -> None:
    """Speculative execution: Spark runs a second copy of a slow task on another host.

    Spark never places the copy on the host already running the task, so on
    one machine it cannot happen through Spark; here two attempts of the same
    partition run at once against the database, as they do on a cluster.
    """
    pa = pytest.importorskip("pyarrow")
    repo = vs.DocumentRepository.standalone(db_url, collection=COLLECTION,
                                            embedding_model="precomputed")  # fmt: skip
    repo.collection  # noqa: B018 - the driver resolves it
    data = rows(120)
    table = pa.Table.from_pylist(data)
    plan = vs_spark._Plan(
        bind=db_url, bind_key=vs_spark._key_of(db_url), collection=COLLECTION,
        embedding_model="precomputed", model=vs.Document, text_col="text", id_col="id",
        metadata_cols=(), embedding_col="embedding", embedder=None, embedder_key="",
        batch_rows=25, on_conflict="update", run="spark-write/speculative", stage="spec",
    )  # fmt: skip
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def attempt() -> None:
        barrier.wait()
        stats = list(vs_spark._stage_partition(plan, iter(table.to_batches(max_chunksize=25))))
        outcomes.append(stats[0].to_pylist()[0])

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(o["replayed"] for o in outcomes) == [False, True]
    recorded = repo.ledger("spark-write/speculative")
    assert recorded[0].inserted == 120
    assert recorded[0].updated == 0
    repo.forget_ledger("spark-write/speculative")
    repo.close()
    assert set(stored(db_url)) == {r["id"] for r in data}


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"text": None}, vs.ValidationError),
        ({"embedding": [0.5] * (DIM - 1)}, vs.DimensionMismatchError),
        ({"embedding": [math.nan] * DIM}, vs.ValidationError),
    ],
    ids=["missing-text", "wrong-dimension", "nan"],
)
def test_a_bad_row_fails_the_job_naming_it_and_leaves_nothing_of_its_partition(
    spark: SparkSession, db_url: URL, bad: dict[str, Any], error: type[Exception]
) -> None:
    data = rows(100)
    data[37].update(bad)
    df = frame(spark, data)
    where = {r["id"]: r["p"] for r in df.select("id", F.spark_partition_id().alias("p")).collect()}
    with pytest.raises(error, match="doc-37") as caught:
        vs_spark.write(df, db_url, collection=COLLECTION, id_col="id", embedding_col="embedding",
                       embedding_model="precomputed", batch_rows=10)  # fmt: skip
    assert isinstance(caught.value, vs.ValidationError)
    found = stored(db_url)
    assert not [i for i in found if where[i] == where["doc-37"]]


# -- streaming ------------------------------------------------------------------------
class FlakySink(vs_spark.StreamingSink):
    """Fails once on batch 1 after its merge committed, once on batch 2 before merging."""

    failures: set[str] = set()

    def _merge(self, repo: Any, stage: str, parts: int, key: tuple[str, int]) -> vs.MergeResult:
        batch = key[1]
        if batch == 2 and "before" not in self.failures:
            self.failures.add("before")
            raise RuntimeError("the driver dies with batch 2 staged, not merged")
        merged = super()._merge(repo, stage, parts, key)
        if batch == 1 and "after" not in self.failures:
            self.failures.add("after")
            raise RuntimeError("the driver dies after merging batch 1, before Spark's commit")
        return merged


def test_a_streaming_query_failing_mid_batch_and_restarted_writes_each_row_once(
    spark: SparkSession, db_url: URL, tmp_path: Path
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    data = rows(160)
    for k in range(4):
        spark.createDataFrame(data[k * 40 : (k + 1) * 40], "id STRING, text STRING, tenant INT, "
                              "embedding ARRAY<FLOAT>").drop("embedding").coalesce(1)\
            .write.parquet(str(source / f"part{k}"))  # fmt: skip
    schema = "id STRING, text STRING, tenant INT"
    sink = FlakySink(db_url, collection=COLLECTION, id_col="id", embedder=hashing,
                     metadata_cols=["tenant"], batch_rows=16, stream="test-stream")  # fmt: skip
    FlakySink.failures = set()
    checkpoint = tmp_path / "checkpoint"
    runs = 0
    while True:
        runs += 1
        stream = (spark.readStream.schema(schema).option("maxFilesPerTrigger", 1)
                  .option("recursiveFileLookup", "true").parquet(str(source)))  # fmt: skip
        query = (stream.writeStream.foreachBatch(sink)
                 .option("checkpointLocation", str(checkpoint))
                 .trigger(availableNow=True).start())  # fmt: skip
        try:
            query.awaitTermination()
            break
        except Exception:
            assert runs < 4, "the query kept failing"
    assert runs == 3  # two injected failures, then a clean run
    repo = vs.DocumentRepository.standalone(db_url, collection=COLLECTION, embedder=hashing())
    recorded = repo.ledger("test-stream")
    assert sorted(recorded) == [0, 1, 2, 3]
    assert sum(r.inserted for r in recorded.values()) == 160
    assert repo.count() == 160
    repo.forget_ledger("test-stream")
    repo.close()
    assert set(stored(db_url)) == {r["id"] for r in data}
