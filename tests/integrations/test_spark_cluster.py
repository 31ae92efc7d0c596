"""Spark ingest with separate executor processes (``local-cluster`` mode) and lost executors.

``local[2,3]`` (``test_spark.py``) runs every task in the driver's JVM;
``local-cluster[2,1,1024]`` starts a standalone master, a worker and two
executor JVMs, each with its own Python workers, as a cluster does.  Here a
partition's first attempt dies with rows of its open transaction already
COPYed, three ways: its task raises, its Python worker exits, or its whole
executor JVM is killed (the worker then launches a new executor and Spark
runs the task again elsewhere).  After each, the collection holds every input
row exactly once and nothing is left staged.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL

import vectorstore as vs

pyspark = pytest.importorskip("pyspark")

from pyspark import TaskContext, cloudpickle  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

from tests.integrations.test_spark import write_through_a_failure  # noqa: E402

pytestmark = [pytest.mark.spark, pytest.mark.slow]

# The executors' Python workers cannot import the test modules: ship this
# module's functions (the failing embedder factory) by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    active = SparkSession.getActiveSession()
    if active is not None:  # one SparkContext per process: the local-mode module's goes first
        active.stop()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    # The executors are launched through SPARK_HOME's scripts and jars (the pip
    # package carries them) and work in SPARK_WORKER_DIR.
    os.environ.setdefault("SPARK_HOME", str(Path(pyspark.__file__).parent))
    os.environ["SPARK_WORKER_DIR"] = str(tmp_path_factory.mktemp("spark-worker"))
    session = (
        SparkSession.builder.master("local-cluster[2,1,1024]")  # 2 executors x 1 core
        .appName("vectorstore-cluster-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.task.maxFailures", "4")
        .config("spark.executor.memory", "1g")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    # The executors register with the driver after getOrCreate returns: wait
    # for both (the driver and two executors), so tasks spread over them.
    deadline = time.monotonic() + 120
    while session.sparkContext._jsc.sc().getExecutorMemoryStatus().size() < 3:
        assert time.monotonic() < deadline, "the local cluster's executors did not register"
        time.sleep(0.2)
    yield session
    session.stop()


def _executor_jvm() -> int:
    """The pid of the executor JVM above this Python worker (its nearest ``java`` ancestor)."""
    pid = os.getppid()
    while pid > 1:
        if Path(f"/proc/{pid}/comm").read_text().strip() == "java":
            return pid
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    raise RuntimeError("no executor JVM above this Python worker")


def _failing_factory(how: str, fired: Path) -> Any:
    """An embedder factory whose second batch of partition 1 fails on the first attempt."""

    def factory() -> vs.Embedder:
        inner = vs.HashingTestEmbedder()

        class Failing:
            model_name = inner.model_name
            dimension = inner.dimension
            calls = 0

            def embed(self, texts: list[str]) -> Any:
                context = TaskContext.get()
                first = (context is not None and context.partitionId() == 1
                         and context.attemptNumber() == 0)  # fmt: skip
                self.calls += 1
                if first and self.calls >= 2 and not fired.exists():  # a batch is COPYed
                    jvm = _executor_jvm()
                    fired.write_text(str(jvm))
                    if how == "kill-executor":
                        os.kill(jvm, signal.SIGKILL)
                    if how in ("kill-executor", "kill-worker"):
                        os._exit(1)
                    raise RuntimeError("injected failure after part of the partition was sent")
                return inner.embed(texts)

        return Failing()

    return factory


def test_the_executors_are_separate_processes(cluster: SparkSession) -> None:
    driver_jvm = cluster.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
    jvms = cluster.sparkContext.parallelize(range(8), 8).map(lambda _: _executor_jvm()).collect()
    assert driver_jvm not in jvms
    assert len(set(jvms)) == 2  # each task ran in one of two executor JVMs
    status = cluster.sparkContext._jsc.sc().getExecutorMemoryStatus()
    assert status.size() == 3  # the driver and two executors


@pytest.mark.parametrize("how", ["raise", "kill-worker", "kill-executor"])
def test_a_partition_dying_midway_on_a_cluster_is_written_once(
    cluster: SparkSession, db_url: URL, how: str, tmp_path: Path
) -> None:
    fired = tmp_path / "fired"
    write_through_a_failure(cluster, db_url, _failing_factory(how, fired), fired)
    if how == "kill-executor":  # that JVM is gone; another executor ran the task again
        stat = Path(f"/proc/{fired.read_text()}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
