"""The ingest pipeline: sources, skipping known texts, all or nothing, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import URL, Engine
from sqlalchemy.orm import Session

import vectorstore as vs
from tests.conftest import table_count
from vectorstore import export_parquet, ingest

DIM = vs.DEFAULT_DIMENSION


def write_parquet(path: Path, n: int, *, with_vectors: bool = False, row_group: int = 7) -> None:
    columns = {
        "text": [f"parquet text {i}" for i in range(n)],
        "external_id": [f"p{i}" for i in range(n)],
        "metadata": [json.dumps({"i": i}) for i in range(n)],
    }
    table = pa.table(columns)
    if with_vectors:
        flat = np.random.default_rng(0).standard_normal(n * DIM).astype(np.float32)
        table = table.append_column(
            "embedding", pa.FixedSizeListArray.from_arrays(pa.array(flat), DIM)
        )
    pq.write_table(table, path, row_group_size=row_group)


def test_texts_are_embedded_in_chunks_and_counted(
    repo: vs.DocumentRepository[vs.Document], embedder: vs.HashingTestEmbedder
) -> None:
    result = ingest([f"text {i}" for i in range(25)], embedder, repository=repo, chunk_rows=10)
    assert (result.rows, result.embedded, result.inserted, result.known) == (25, 25, 25, 0)
    assert embedder.calls == 3
    assert result.embed_s > 0
    assert result.write_s > 0
    assert repo.count() == 25


def test_known_texts_are_not_embedded_again(
    repo: vs.DocumentRepository[vs.Document], embedder: vs.HashingTestEmbedder
) -> None:
    ingest([f"text {i}" for i in range(20)], repository=repo, chunk_rows=8)
    calls, embedded = embedder.calls, embedder.texts_embedded
    again = ingest([f"text {i}" for i in range(30)], repository=repo, chunk_rows=8)
    assert again.known == 20
    assert again.embedded == 10
    assert embedder.texts_embedded - embedded == 10  # only the new texts reached the model
    assert embedder.calls - calls == 2  # the chunks that hold new texts
    assert again.inserted == 10
    assert repo.count() == 30


def test_reingest_of_the_same_parquet_file_inserts_nothing(
    repo: vs.DocumentRepository[vs.Document], embedder: vs.HashingTestEmbedder, tmp_path: Path
) -> None:
    path = tmp_path / "docs.parquet"
    write_parquet(path, 30)
    first = ingest(path, repository=repo, chunk_rows=8)
    calls = embedder.calls
    second = ingest(path, repository=repo, chunk_rows=8)
    assert first.inserted == 30
    assert second.inserted == 0
    assert second.known == 30
    assert embedder.calls == calls
    assert repo.count() == 30
    assert repo.get_by_external_id("p4").metadata_ == {"i": 4}


def test_parquet_with_vectors_needs_no_embedder(
    session: Session, tmp_path: Path, engine: Engine
) -> None:
    path = tmp_path / "vectors.parquet"
    write_parquet(path, 20, with_vectors=True)
    repo: vs.DocumentRepository[vs.Document] = vs.DocumentRepository(
        session, collection="pre", embedding_model="external"
    )
    result = ingest(path, repository=repo, chunk_rows=6)
    assert (result.inserted, result.embedded) == (20, 0)
    expected = pq.read_table(path).column("embedding").to_pylist()[3]
    got = np.asarray(repo.get_by_external_id("p3").embedding, dtype=np.float32)
    assert got.tolist() == np.asarray(expected, dtype=np.float32).tolist()


def test_csv_and_jsonl_sources(
    repo: vs.DocumentRepository[vs.Document], tmp_path: Path
) -> None:
    csv = tmp_path / "docs.csv"
    pd.DataFrame(
        {"body": ["csv one", "csv two", "csv three"], "lang": ["en", "de", "fr"]}
    ).to_csv(csv, index=False)
    result = ingest(csv, repository=repo, chunk_rows=2, text_column="body",
                    metadata_columns=["lang"])  # fmt: skip
    assert result.inserted == 3
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(
        "\n".join(json.dumps({"text": f"json {i}", "metadata": {"n": i}}) for i in range(4))
    )
    assert ingest(jsonl, repository=repo, chunk_rows=3).inserted == 4
    assert repo.count() == 7


def test_a_dataframe_is_ingested_like_a_file(repo: vs.DocumentRepository[vs.Document]) -> None:
    frame = pd.DataFrame({"text": ["frame a", "frame b"], "external_id": ["a", "b"]})
    assert ingest(frame, repository=repo).inserted == 2


def test_bad_row_in_a_later_chunk_names_its_file_row_and_writes_nothing(
    repo: vs.DocumentRepository[vs.Document], tmp_path: Path, engine: Engine, session: Session
) -> None:
    texts: list[str | None] = [f"fine {i}" for i in range(20)]
    texts[13] = None
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": texts}), path)
    with pytest.raises(vs.ValidationError, match="row 13") as caught:
        ingest(path, repository=repo, chunk_rows=5)
    assert caught.value.row == 13
    session.commit()
    assert table_count(engine) == 0


def test_progress_bar_is_quiet_when_not_a_terminal(
    repo: vs.DocumentRepository[vs.Document], capsys: pytest.CaptureFixture[str]
) -> None:
    ingest([f"quiet {i}" for i in range(5)], repository=repo)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_export_then_ingest_round_trips(
    repo: vs.DocumentRepository[vs.Document], session: Session, tmp_path: Path
) -> None:
    ingest([{"text": f"doc {i}", "external_id": f"d{i}", "metadata": {"i": i}}
            for i in range(12)], repository=repo)  # fmt: skip
    path = tmp_path / "export.parquet"
    assert export_parquet(repo, path, chunk_rows=5) == 12
    table = pq.read_table(path)
    assert table.num_rows == 12
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), DIM)
    copy: vs.DocumentRepository[vs.Document] = vs.DocumentRepository(
        session, collection="copy", embedding_model=repo.collection.embedding_model
    )
    result = ingest(path, repository=copy)
    assert (result.inserted, result.embedded) == (12, 0)
    original = np.asarray(repo.get_by_external_id("d7").embedding, dtype=np.float32)
    copied = np.asarray(copy.get_by_external_id("d7").embedding, dtype=np.float32)
    assert copied.tobytes() == original.tobytes()
    assert copy.get_by_external_id("d7").metadata_ == {"i": 7}


def test_missing_file_and_single_string_are_refused(
    repo: vs.DocumentRepository[vs.Document], tmp_path: Path
) -> None:
    with pytest.raises(vs.ValidationError, match="does not exist"):
        ingest(tmp_path / "nope.parquet", repository=repo)
    with pytest.raises(vs.ValidationError, match="single string"):
        ingest("just one text", repository=repo)


def test_parquet_list_column_with_missing_and_ragged_vectors(
    repo: vs.DocumentRepository[vs.Document], embedder: vs.HashingTestEmbedder, tmp_path: Path
) -> None:
    given = np.random.default_rng(2).standard_normal((3, DIM))
    path = tmp_path / "partial.parquet"
    pq.write_table(
        pa.table({"text": ["a a", "b b", "c c"],
                  "embedding": [given[0].tolist(), None, given[2].tolist()]}),
        path,
    )  # fmt: skip
    result = ingest(path, repository=repo)
    assert (result.inserted, result.embedded) == (3, 1)
    assert embedder.texts_embedded == 1
    ragged = tmp_path / "ragged.parquet"
    pq.write_table(pa.table({"text": ["x", "y"], "embedding": [[1.0] * DIM, [1.0] * 3]}), ragged)
    with pytest.raises(vs.DimensionMismatchError) as caught:
        ingest(ragged, repository=repo)
    assert caught.value.row == 1


def test_known_texts_are_found_on_both_drivers(any_driver_url: URL) -> None:
    engine = vs.make_engine(any_driver_url)
    try:
        with Session(engine) as session:
            embedder = vs.HashingTestEmbedder()
            repo = vs.DocumentRepository(session, collection="d", embedder=embedder)
            ingest([f"t {i}" for i in range(9)], repository=repo, chunk_rows=4)
            again = ingest([f"t {i}" for i in range(12)], repository=repo, chunk_rows=4)
            assert (again.known, again.inserted) == (9, 3)
            assert embedder.texts_embedded == 12
    finally:
        engine.dispose()
