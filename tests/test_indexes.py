"""Index specs: DDL, create/drop (also CONCURRENTLY), halfvec, binary, partial, IVFFlat."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs
from vectorstore.schema.indexes import index_ddl

Repo = vs.DocumentRepository[vs.Document]


@pytest.fixture
def vectors(repo: Repo, session: Session) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(4)
    data = rng.standard_normal((300, 384)).astype(np.float32)
    repo.bulk_add([f"v {i}" for i in range(300)], embeddings=data,
                  external_ids=[str(i) for i in range(300)])  # fmt: skip
    # 300 rows: the planner would rightly prefer a sequential scan; these tests
    # are about the index being usable, so steer it off (the host's own setting).
    for name in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
        session.execute(text(f"SET LOCAL {name} = off"))
    return data


def test_ddl_is_rendered_from_validated_numbers() -> None:
    spec = vs.IndexSpec(method="hnsw", metric="l2", m=24, ef_construction=100)
    ddl = index_ddl(spec, "vectorstore_documents", dimension=384)
    assert "USING hnsw (embedding vector_l2_ops) WITH (m = 24, ef_construction = 100)" in ddl
    half = index_ddl(vs.IndexSpec(precision="halfvec"), "t", dimension=384)
    assert "(embedding::halfvec(384)) halfvec_cosine_ops" in half
    binary = index_ddl(vs.IndexSpec(precision="binary"), "t", dimension=384)
    assert "(binary_quantize(embedding)::bit(384)) bit_hamming_ops" in binary
    partial = index_ddl(vs.IndexSpec(per_collection=True), "t", dimension=384, collection_id=7)
    assert partial.endswith("WHERE collection_id = 7")
    assert " vsx_t_c7_" in partial
    ivf = index_ddl(vs.IndexSpec(method="ivfflat"), "t", dimension=384, rows=50_000)
    assert "WITH (lists = 50)" in ivf
    assert "CONCURRENTLY" in index_ddl(spec, "t", dimension=384, concurrently=True)


@pytest.mark.parametrize(
    "kwargs",
    [{"method": "btree"}, {"metric": "jaccard"}, {"m": 1}, {"m": 16, "ef_construction": 20},
     {"lists": 0}, {"precision": "int8"}, {"method": "ivfflat", "metric": "l1"},
     {"precision": "binary", "metric": "inner_product"}, {"name": "x; DROP TABLE t"}],
)  # fmt: skip
def test_bad_specs_are_validation_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(vs.ValidationError):
        vs.IndexSpec(**kwargs)


@pytest.mark.parametrize("metric", ["l2", "inner_product", "l1"])
def test_an_index_per_metric_is_used_by_nearest(
    repo: Repo, vectors: np.ndarray[Any, Any], metric: str
) -> None:
    assert repo.nearest(vectors[0], k=5, metric=metric).strategy == "exact"  # no index yet
    name = repo.create_index(vs.IndexSpec(metric=metric))
    assert name in {ix.name for ix in repo.list_indexes()}
    report = repo.explain(vectors[0], k=5, metric=metric, strategy="index")
    assert report.used_ann_index
    assert name in report.index_names
    hits = repo.nearest(vectors[0], k=5, metric=metric, strategy="index")
    assert hits[0].document.external_id == "0"
    assert repo.drop_index(name) is True
    assert repo.drop_index(name) is False


def test_ivfflat_with_probes(repo: Repo, vectors: np.ndarray[Any, Any]) -> None:
    name = repo.create_index(vs.IndexSpec(method="ivfflat", lists=4))
    hits = repo.nearest(vectors[3], k=5, strategy="index", probes=4)
    assert hits[0].document.external_id == "3"
    assert hits.settings["ivfflat.probes"] == "4"
    assert repo.explain(vectors[3], k=5, strategy="index", probes=4).used_ann_index
    repo.drop_index(name)


@pytest.mark.parametrize("precision", ["halfvec", "binary"])
def test_quantized_indexes_rerank_on_full_vectors(
    repo: Repo, vectors: np.ndarray[Any, Any], precision: str
) -> None:
    name = repo.create_index(vs.IndexSpec(precision=precision))  # type: ignore[arg-type]
    report = repo.explain(vectors[9], k=5, precision=precision, strategy="index")
    assert name in report.index_names
    hits = repo.nearest(vectors[9], k=5, precision=precision, strategy="index")
    exact = repo.nearest(vectors[9], k=5, strategy="exact")
    assert hits[0].document.external_id == "9"
    assert len({h.document.id for h in hits} & {h.document.id for h in exact}) >= 4
    # Distances are the full-precision ones, sorted.
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)
    assert abs(hits[0].distance) < 1e-5


def test_partial_index_per_collection(
    repo: Repo, vectors: np.ndarray[Any, Any], session: Session, embedder: Any, engine: Engine
) -> None:
    other: Repo = vs.DocumentRepository(session, collection="tenant-b", embedder=embedder)
    other.bulk_add([f"b {i}" for i in range(50)])
    name = other.create_index(vs.IndexSpec(per_collection=True))
    assert name.startswith("vsx_")
    assert f"_c{other.collection.id}_" in name
    found = next(ix for ix in other.list_indexes() if ix.name == name)
    assert found.collection_id == other.collection.id
    hits = other.nearest("b 7", k=3, strategy="index")
    assert hits[0].document.text == "b 7"
    session.commit()
    assert vs.check_schema(engine) == []  # runtime vsx_ indexes are not drift


def test_create_and_drop_concurrently(engine: Engine, embedder: Any) -> None:
    repo: Repo = vs.DocumentRepository.standalone(engine, collection="conc", embedder=embedder)
    repo.bulk_add([f"c {i}" for i in range(40)])
    name = repo.create_index(vs.IndexSpec(metric="l2", m=8, ef_construction=32),
                             maintenance_work_mem="64MB")  # fmt: skip
    assert next(ix for ix in repo.list_indexes() if ix.name == name).valid
    assert repo.nearest("c 5", k=1, metric="l2", strategy="index")[0].document.text == "c 5"
    assert repo.drop_index(name) is True
    assert name not in {ix.name for ix in repo.list_indexes()}


def test_hostile_index_names_and_settings_are_refused(
    repo: Repo, vectors: np.ndarray[Any, Any]
) -> None:
    with pytest.raises(vs.ValidationError):
        repo.drop_index("pk_vectorstore_documents; DROP TABLE x")
    assert repo.drop_index("pk_vectorstore_documents") is False  # not an ANN index
    with pytest.raises(vs.ValidationError):
        repo.create_index(vs.IndexSpec(), maintenance_work_mem="1GB; DROP TABLE x")
