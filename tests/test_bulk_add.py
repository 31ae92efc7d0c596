"""bulk_add on a real PostgreSQL: inputs, bit-exact vectors, conflict policies, all or nothing."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import URL, Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs
from tests.conftest import table_count
from vectorstore.write.copy import decode_vectors

DIM = vs.DEFAULT_DIMENSION


def vectors(n: int, seed: int = 0) -> np.ndarray[Any, np.dtype[np.float32]]:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def stored_vectors(session: Session) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The stored vectors in external-id order, read back through binary COPY."""
    raw = session.connection().connection.dbapi_connection
    buffer = io.BytesIO()
    cursor = raw.cursor()
    sql = (
        "COPY (SELECT embedding FROM vectorstore_documents ORDER BY external_id) "
        "TO STDOUT (FORMAT BINARY)"
    )
    if hasattr(cursor, "copy_expert"):
        cursor.copy_expert(sql, buffer)
        data = buffer.getvalue()
    else:  # psycopg 3
        with cursor.copy(sql) as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
    pos, out = 19, []
    while True:
        fields = int.from_bytes(data[pos : pos + 2], "big", signed=True)
        if fields == -1:
            break
        size = int.from_bytes(data[pos + 2 : pos + 6], "big")
        out.append(decode_vectors(data[pos + 6 : pos + 6 + size]))
        pos += 6 + size
    return np.stack(out)


def test_vectors_round_trip_bit_exact_on_both_drivers(any_driver_url: URL) -> None:
    engine = vs.make_engine(any_driver_url)
    try:
        special = np.array(
            [np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1e-45, -0.0, 1 / 3, -7.25],
            dtype=np.float32,
        )
        data = vectors(50)
        data[0, : len(special)] = special
        with Session(engine) as session:
            repo = vs.DocumentRepository(session, collection="c", embedding_model="m")
            ids = [f"id{i:03d}" for i in range(50)]
            result = repo.bulk_add([f"text {i}" for i in range(50)], embeddings=data,
                                   external_ids=ids)  # fmt: skip
            session.commit()
            assert result.inserted == 50
            back = stored_vectors(session)
        assert back.dtype == np.float32
        assert back.view(np.uint32).tolist() == data.view(np.uint32).tolist()
    finally:
        engine.dispose()


def test_dataframe_with_custom_columns_and_embedding_column(
    repo: vs.DocumentRepository[vs.Document], session: Session
) -> None:
    data = vectors(5)
    frame = pd.DataFrame(
        {
            "body": [f"doc {i}" for i in range(5)],
            "vec": list(data.astype(np.float64)),
            "key": [f"k{i}" for i in range(5)],
            "lang": ["en", "de", "en", "fr", "en"],
        }
    )
    result = repo.bulk_add(
        frame, text_column="body", embedding_column="vec", id_column="key",
        metadata_columns=["lang"],
    )  # fmt: skip
    assert result.inserted == 5
    assert result.embedded == 0
    doc = repo.get_by_external_id("k3")
    assert doc.text == "doc 3"
    assert doc.metadata_ == {"lang": "fr"}
    np.testing.assert_array_equal(np.asarray(doc.embedding, dtype=np.float32), data[3])


def test_dataframe_with_separate_array_and_numpy_with_parallel_texts(
    repo: vs.DocumentRepository[vs.Document],
) -> None:
    data = vectors(6)
    frame = pd.DataFrame({"text": ["a one", "b two", "c three"]})
    assert repo.bulk_add(frame, embeddings=data[:3]).inserted == 3
    result = repo.bulk_add(
        data[3:].astype(np.float64), texts=["d", "e", "f"], metadata=[{"n": 1}, None, {"n": 3}]
    )
    assert result.inserted == 3
    assert repo.count() == 6


def test_texts_without_vectors_are_embedded_in_batches(
    repo: vs.DocumentRepository[vs.Document], embedder: vs.HashingTestEmbedder
) -> None:
    result = repo.bulk_add([f"text number {i}" for i in range(25)], chunk_rows=10)
    assert result.inserted == 25
    assert result.embedded == 25
    assert embedder.calls == 3


def test_generator_larger_than_one_chunk_is_streamed(
    repo: vs.DocumentRepository[vs.Document],
) -> None:
    data = vectors(1)[0]
    pulled = []

    def records() -> Iterator[dict[str, Any]]:
        for i in range(95):
            pulled.append(i)
            yield {"text": f"row {i}", "embedding": data, "external_id": str(i)}

    result = repo.bulk_add(records(), chunk_rows=10)
    assert result.inserted == 95
    assert repo.count() == 95
    assert pulled == list(range(95))


def test_integer_embeddings_are_converted(repo: vs.DocumentRepository[vs.Document]) -> None:
    ints = np.arange(2 * DIM, dtype=np.int64).reshape(2, DIM) % 7
    assert repo.bulk_add(["x", "y"], embeddings=ints).inserted == 2


# -- conflict policies -------------------------------------------------------------


def seed(repo: vs.DocumentRepository[vs.Document]) -> None:
    repo.bulk_add(["one", "two"], embeddings=vectors(2), external_ids=["a", "b"],
                  metadata=[{"v": 1}, {"v": 1}])  # fmt: skip


def test_conflict_error_raises_and_writes_nothing(
    repo: vs.DocumentRepository[vs.Document],
) -> None:
    seed(repo)
    with pytest.raises(vs.ConflictError, match="'b'"):
        repo.bulk_add(["three", "two again"], embeddings=vectors(2), external_ids=["c", "b"])
    assert repo.count() == 2


def test_conflict_skip_counts_and_keeps_old_rows(
    repo: vs.DocumentRepository[vs.Document],
) -> None:
    seed(repo)
    result = repo.bulk_add(
        ["three", "two again"], embeddings=vectors(2), external_ids=["c", "b"],
        metadata=[{"v": 2}, {"v": 2}], on_conflict="skip",
    )  # fmt: skip
    assert (result.inserted, result.skipped, result.updated) == (1, 1, 0)
    assert result.elapsed_s > 0
    assert repo.get_by_external_id("b").text == "two"
    assert repo.count() == 3


def test_conflict_update_overwrites(repo: vs.DocumentRepository[vs.Document]) -> None:
    seed(repo)
    new = vectors(2, seed=5)
    result = repo.bulk_add(
        ["three", "two again"], embeddings=new, external_ids=["c", "b"],
        metadata=[{"v": 2}, {"v": 2}], on_conflict="update",
    )  # fmt: skip
    assert (result.inserted, result.skipped, result.updated) == (1, 0, 1)
    doc = repo.get_by_external_id("b")
    assert doc.text == "two again"
    assert doc.metadata_ == {"v": 2}
    np.testing.assert_array_equal(np.asarray(doc.embedding, dtype=np.float32), new[1])


def test_rerunning_the_same_ingest_creates_no_duplicates(
    repo: vs.DocumentRepository[vs.Document],
) -> None:
    texts = [f"t{i}" for i in range(30)]
    ids = [f"id{i}" for i in range(30)]
    data = vectors(30)
    first = repo.bulk_add(texts, embeddings=data, external_ids=ids, on_conflict="skip",
                          chunk_rows=7)  # fmt: skip
    again = repo.bulk_add(texts, embeddings=data, external_ids=ids, on_conflict="skip",
                          chunk_rows=7)  # fmt: skip
    assert first.inserted == 30
    assert again.inserted == 0
    assert again.skipped == 30
    assert repo.count() == 30


def test_duplicate_ids_inside_one_input_keep_the_last(
    repo: vs.DocumentRepository[vs.Document],
) -> None:
    result = repo.bulk_add(["first", "second"], embeddings=vectors(2), external_ids=["x", "x"],
                           on_conflict="update")  # fmt: skip
    assert result.inserted == 1
    assert repo.count() == 1
    assert repo.get_by_external_id("x").text == "second"


def test_unknown_policy_is_refused(repo: vs.DocumentRepository[vs.Document]) -> None:
    with pytest.raises(vs.ValidationError, match="on_conflict"):
        repo.bulk_add(["a"], embeddings=vectors(1), on_conflict="replace")  # type: ignore[arg-type]


# -- all or nothing -------------------------------------------------------------------


def bad_cases() -> list[tuple[str, Any, str]]:
    good = vectors(1)[0]
    nan = good.copy()
    nan[3] = math.nan
    inf = good.copy()
    inf[0] = math.inf
    return [
        ("dimension", {"text": "x", "embedding": good[:10]}, "dimension"),
        ("nan", {"text": "x", "embedding": nan}, "NaN"),
        ("inf", {"text": "x", "embedding": inf}, "infinity"),
        ("f64 overflow", {"text": "x", "embedding": good.astype(np.float64) * 1e300}, "range"),
        ("nul", {"text": "bad\x00text", "embedding": good}, "NUL"),
        ("none text", {"text": None, "embedding": good}, "None"),
        ("metadata", {"text": "x", "embedding": good, "metadata": {"o": object()}}, "JSON"),
        ("non numeric", {"text": "x", "embedding": ["a"] * DIM}, "numeric|malformed"),
        ("ragged", {"text": "x", "embedding": [[1.0, 2.0], [3.0]]}, "ragged|malformed|1-D"),
    ]


@pytest.mark.parametrize(("name", "bad", "message"), bad_cases(), ids=[c[0] for c in bad_cases()])
def test_a_bad_row_in_a_later_chunk_fails_the_whole_call(
    repo: vs.DocumentRepository[vs.Document], engine: Engine, session: Session,
    name: str, bad: dict[str, Any], message: str,
) -> None:  # fmt: skip
    seed(repo)
    session.commit()
    good = vectors(1)[0]

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(25):
            yield {"text": f"fine {i}", "embedding": good, "external_id": f"g{i}"}
        yield {**bad, "external_id": "culprit"}

    with pytest.raises(vs.ValidationError, match=message) as caught:
        repo.bulk_add(rows(), chunk_rows=10)
    assert caught.value.row == 25
    assert caught.value.external_id == "culprit"
    assert "row 25" in str(caught.value)
    session.commit()
    assert table_count(engine) == 2


def test_ragged_array_input_is_refused(repo: vs.DocumentRepository[vs.Document]) -> None:
    with pytest.raises(vs.ValidationError):
        repo.bulk_add(["a", "b"], embeddings=[[1.0] * DIM, [1.0] * (DIM - 1)])
    assert repo.count() == 0


def test_failure_inside_the_generator_mid_stream_leaves_zero_rows(
    repo: vs.DocumentRepository[vs.Document], engine: Engine, session: Session
) -> None:
    good = vectors(1)[0]

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(35):
            yield {"text": f"row {i}", "embedding": good}
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        repo.bulk_add(rows(), chunk_rows=10)
    session.commit()
    assert table_count(engine) == 0


def test_server_side_rejection_names_the_row_and_leaves_nothing(
    repo: vs.DocumentRepository[vs.Document], engine: Engine, session: Session
) -> None:
    seed(repo)
    session.commit()
    # A duplicate id in chunk 3 is only caught by PostgreSQL's unique index.
    ids = [f"n{i}" for i in range(24)] + ["a"] + [f"m{i}" for i in range(5)]
    with pytest.raises(vs.ConflictError, match="row 24, external_id 'a'"):
        repo.bulk_add([f"t{i}" for i in range(30)], embeddings=vectors(30), external_ids=ids,
                      chunk_rows=10)  # fmt: skip
    session.commit()
    assert table_count(engine) == 2


def test_check_constraint_violation_becomes_a_validation_error_naming_the_row(
    repo: vs.DocumentRepository[vs.Document], engine: Engine, session: Session
) -> None:
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE vectorstore_documents ADD CONSTRAINT short_text "
                          "CHECK (length(text) < 20)"))  # fmt: skip
    texts = ["short"] * 12 + ["this text is far too long for the constraint"] + ["ok"] * 3
    with pytest.raises(vs.ValidationError, match="PostgreSQL rejected") as caught:
        repo.bulk_add(texts, embeddings=vectors(16), external_ids=[f"e{i}" for i in range(16)],
                      chunk_rows=5)  # fmt: skip
    assert caught.value.row == 12
    assert caught.value.external_id == "e12"
    session.commit()
    assert table_count(engine) == 0


def test_caller_transaction_survives_a_failed_bulk_add(
    repo: vs.DocumentRepository[vs.Document], engine: Engine, session: Session
) -> None:
    seed(repo)  # not committed yet: in the caller's transaction
    with pytest.raises(vs.ValidationError):
        repo.bulk_add([{"text": None, "embedding": vectors(1)[0]}])
    assert repo.count() == 2
    session.commit()
    assert table_count(engine) == 2
