"""A failed first write leaves no collection behind; options are checked before any I/O.

The first write into a new collection creates it in the write's own
transaction: when the write fails, the collection goes with it, so a later
writer with another model is not refused for a collection that never stored a
row.  Each case checks the collections table through a separate connection.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

import vectorstore as vs

DIM = vs.DEFAULT_DIMENSION
SCRIPT = Path(sys.executable).with_name("vectorstore")


def collections(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name FROM vectorstore_collections ORDER BY name"))
        return [str(r[0]) for r in rows]


def documents(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM vectorstore_documents")).scalar_one())


def bad_batch() -> list[dict[str, object]]:
    return [
        {"text": "ok", "embedding": [0.1] * DIM},
        {"text": "bad", "embedding": [math.nan] * DIM},
    ]


def test_a_failed_first_bulk_add_leaves_no_collection(engine: Engine) -> None:
    repo = vs.DocumentRepository.standalone(
        engine, collection="brand-new", embedder=vs.HashingTestEmbedder()
    )
    with pytest.raises(vs.ValidationError, match="row 1"):
        repo.bulk_add(bad_batch())
    assert collections(engine) == []
    other = vs.DocumentRepository.standalone(engine, collection="brand-new", embedding_model="m2")
    assert other.bulk_add([{"text": "fine", "embedding": [0.2] * DIM}]).inserted == 1
    assert other.collection.embedding_model == "m2"
    assert collections(engine) == ["brand-new"]


def test_a_failed_first_bulk_add_in_a_host_session_leaves_none_in_its_transaction(
    engine: Engine, session: Session
) -> None:
    repo = vs.DocumentRepository(session, collection="new-bound", embedding_model="x")
    with pytest.raises(vs.ValidationError, match="row 1"):
        repo.bulk_add(bad_batch())
    # The host's transaction is still usable and holds no collection either.
    assert session.execute(text("SELECT count(*) FROM vectorstore_collections")).scalar() == 0
    assert repo.bulk_add([{"text": "fine", "embedding": [0.2] * DIM}]).inserted == 1
    session.commit()
    assert collections(engine) == ["new-bound"]
    assert documents(engine) == 1


def test_the_first_add_creates_its_collection_with_its_row(engine: Engine) -> None:
    repo = vs.DocumentRepository.standalone(engine, collection="fresh", embedding_model="x")
    doc = repo.add("first", embedding=np.ones(DIM, dtype=np.float32))
    assert collections(engine) == ["fresh"]
    assert repo.get(doc.id).text == "first"
    assert repo.add("second", embedding=np.ones(DIM, dtype=np.float32)).id > doc.id


def test_a_failed_first_ingest_leaves_no_collection(engine: Engine, tmp_path: Path) -> None:
    source = tmp_path / "reviews.csv"
    source.write_text("text,external_id\nfine text,a\n,b\n")
    repo = vs.DocumentRepository.standalone(
        engine, collection="csv", embedder=vs.HashingTestEmbedder()
    )
    with pytest.raises(vs.ValidationError, match="row 1"):
        vs.ingest(source, repository=repo)
    assert collections(engine) == []


def test_a_writer_whose_first_flush_fails_leaves_no_collection(engine: Engine) -> None:
    repo = vs.DocumentRepository.standalone(engine, collection="stream", embedding_model="x")
    writer = repo.writer(max_rows=10, max_delay=None)
    assert collections(engine) == []  # made by the first flush, not by the writer
    writer.add("one", embedding=[0.1] * DIM, external_id="dup")
    writer.add("two", embedding=[0.1] * DIM, external_id="dup")
    with pytest.raises(vs.WriteError):
        writer.flush()  # on_conflict="error": a duplicate in one flush refuses the flush
    assert collections(engine) == []
    writer.add("three", embedding=[0.1] * DIM, external_id="ok")
    writer.close()
    assert collections(engine) == ["stream"]
    assert repo.count() == 1


def test_options_are_checked_when_they_are_given(engine: Engine) -> None:
    repo = vs.DocumentRepository.standalone(engine, collection="opts", embedding_model="x")
    with pytest.raises(vs.ValidationError, match="on_conflict"):
        repo.writer(on_conflict="bogus")  # type: ignore[arg-type]
    with pytest.raises(vs.ValidationError, match="on_conflict"):
        repo.bulk_add(["a"], embeddings=np.ones((1, DIM)), on_conflict="bogus")  # type: ignore[arg-type]
    assert collections(engine) == []


def test_an_explicit_model_name_that_differs_is_refused(engine: Engine) -> None:
    first = vs.DocumentRepository.standalone(engine, collection="models", embedding_model="m1")
    first.bulk_add(["a"], embeddings=np.ones((1, DIM)))
    other = vs.DocumentRepository.standalone(engine, collection="models", embedding_model="m2")
    with pytest.raises(vs.EmbeddingModelMismatchError, match="m2"):
        other.bulk_add(["b"], embeddings=np.ones((1, DIM)))
    with pytest.raises(vs.EmbeddingModelMismatchError):
        other.add("c", embedding=np.ones(DIM))
    assert first.count() == 1


def test_a_cli_ingest_of_an_unreadable_file_creates_no_collection(
    engine: Engine, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not a parquet file at all")
    url = engine.url.render_as_string(hide_password=False)
    done = subprocess.run(
        [str(SCRIPT), "--database-url", url, "ingest", str(broken), "--embedder", "hashing"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error:")
    assert collections(engine) == []
