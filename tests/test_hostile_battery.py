"""The hardening battery: hostile values through every public entry point.

Each case runs through the public API only, against a database that already
holds a collection with a few documents, and checks three things: the error's
class (vectorstore's own tree), a message of one printable line (no raw
control characters, no traceback text), and a database that is unchanged (row
counts and an md5 of every row of both tables, read through another
connection; see ``tests.test_hostile_input.fingerprint``).  Cases include
first writes into NEW collections, whose failure must not leave the
collection behind.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

import vectorstore as vs
from tests._dedicated import cloned_database
from tests.test_hostile_input import fingerprint

DIM = vs.DEFAULT_DIMENSION
Repo = vs.DocumentRepository[vs.Document]
Case = Callable[["Ctx"], Any]


class Ctx:
    """What a case may use: the engine, a seeded repository, a temp folder."""

    def __init__(self, engine: Engine, repo: Repo, tmp: Path) -> None:
        self.engine = engine
        self.repo = repo
        self.tmp = tmp

    def fresh(self, name: str = "brand-new", **kwargs: Any) -> Repo:
        """A repository of a collection that does not exist yet."""
        kwargs.setdefault("embedder", vs.HashingTestEmbedder())
        return vs.DocumentRepository.standalone(self.engine, collection=name, **kwargs)


class AppBase(DeclarativeBase):
    pass


class AppDoc(vs.DocumentMixin, AppBase):
    """An app's own document table (created in the fixture)."""

    __tablename__ = "battery_docs"
    source: Mapped[str | None] = mapped_column(String, nullable=True)


def _vec(seed: int = 0) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def _deep_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _deep_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _write(ctx: Ctx, name: str, body: str) -> Path:
    path = ctx.tmp / name
    path.write_text(body)
    return path


def _parquet_with_a_nan_vector(ctx: Ctx) -> Path:
    path = ctx.tmp / "nan.parquet"
    vectors = [list(_vec(1)), [math.nan] * DIM]
    pd.DataFrame({"text": ["fine", "nan vector"], "embedding": vectors}).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def shared(postgresql_noproc: Any) -> Iterator[tuple[Engine, Repo]]:
    name = f"vectorstore_battery_{os.getpid()}"
    with cloned_database(postgresql_noproc.template_dbname, name) as url:
        engine = vs.make_engine(url)
        AppBase.metadata.create_all(engine)
        repo: Repo = vs.DocumentRepository.standalone(
            engine, collection="battery", embedder=vs.HashingTestEmbedder()
        )
        repo.bulk_add([{"text": f"seed {i}", "external_id": f"s{i}", "metadata": {"i": i}}
                       for i in range(5)])  # fmt: skip
        yield engine, repo
        engine.dispose()


DEEP = 1_500
CASES: list[tuple[str, Case, type[Exception]]] = [
    # deep metadata, every write path (was a bare RecursionError)
    ("add-deep-dict", lambda c: c.repo.add("t", metadata={"m": _deep_dict(DEEP)}),
     vs.ValidationError),
    ("add-deep-list", lambda c: c.repo.add("t", metadata={"m": _deep_list(DEEP)}),
     vs.ValidationError),
    ("bulk-deep-metadata", lambda c: c.repo.bulk_add(
        [{"text": "ok"}, {"text": "deep", "metadata": {"m": _deep_dict(DEEP)}}]),
     vs.ValidationError),
    ("writer-deep-metadata", lambda c: c.repo.writer(max_delay=None).add(
        "t", metadata={"m": _deep_list(DEEP)}), vs.ValidationError),
    # deep or huge filters (were RecursionError, DatabaseError or a stall)
    ("filter-deep-contains", lambda c: c.repo.nearest(
        _vec(), filter={"m": {"$contains": _deep_list(10_000)}}), vs.FilterError),
    ("filter-deep-eq", lambda c: c.repo.nearest(
        _vec(), filter={"m": {"$eq": _deep_dict(10_000)}}), vs.FilterError),
    ("filter-deep-in", lambda c: c.repo.nearest(
        _vec(), filter={"m": {"$in": [_deep_list(10_000)]}}), vs.FilterError),
    ("filter-dotted-10000", lambda c: c.repo.nearest(
        _vec(), filter={".".join(["p"] * 10_000): 1}), vs.FilterError),
    ("filter-too-many-values", lambda c: c.repo.nearest(
        _vec(), filter={"n": {"$in": list(range(1_000_001))}}), vs.FilterError),
    ("filter-nul-in-object-key", lambda c: c.repo.nearest(
        _vec(), filter={"a": {"\x00": 1}}), vs.FilterError),
    ("filter-surrogate-value", lambda c: c.repo.nearest(_vec(), filter={"color": "\ud800"}),
     vs.FilterError),
    ("filter-surrogate-key", lambda c: c.repo.nearest(_vec(), filter={"\ud800": 1}),
     vs.FilterError),
    ("filter-surrogate-range", lambda c: c.repo.nearest(
        _vec(), filter={"color": {"$gt": "\ud800"}}), vs.FilterError),
    ("filter-surrogate-like", lambda c: c.repo.nearest(
        _vec(), filter={"color": {"$like": "\ud800%"}}), vs.FilterError),
    ("filter-surrogate-column-like", lambda c: c.repo.nearest(
        _vec(), filter={"external_id": {"$like": "\ud800"}}), vs.FilterError),
    ("hybrid-deep-filter", lambda c: c.repo.hybrid(
        "seed", filter={"m": {"$contains": _deep_dict(10_000)}}), vs.FilterError),
    ("explain-bad-filter", lambda c: c.repo.explain(_vec(), filter={"a": {"$gtt": 1}}),
     vs.FilterError),
    ("recall-no-queries", lambda c: c.repo.measure_recall([]), vs.ValidationError),
    # first writes into a new collection that fail (must leave no collection)
    ("new-bulk-nan-last-row", lambda c: c.fresh().bulk_add(
        [{"text": "ok"}, {"text": "bad", "embedding": [math.nan] * DIM}]), vs.ValidationError),
    ("new-bulk-duplicate-ids", lambda c: c.fresh().bulk_add(
        [{"text": "a", "external_id": "x"}, {"text": "b", "external_id": "x"}]),
     vs.ConflictError),
    ("new-ingest-csv-empty-text", lambda c: vs.ingest(
        _write(c, "empty.csv", "text\nfine\n\n\"\"\n"), repository=c.fresh()), vs.ValidationError),
    ("new-ingest-jsonl-bad-json", lambda c: vs.ingest(
        _write(c, "bad.jsonl", '{"text": "ok"}\n{"text": \n'), repository=c.fresh()),
     vs.ValidationError),
    ("new-ingest-parquet-nan", lambda c: vs.ingest(
        _parquet_with_a_nan_vector(c), repository=c.fresh()), vs.ValidationError),
    ("new-ingest-not-parquet", lambda c: vs.ingest(
        _write(c, "junk.parquet", "not parquet"), repository=c.fresh()), vs.ValidationError),
    ("new-dataframe-missing-text", lambda c: c.fresh().bulk_add(pd.DataFrame({"body": ["x"]})),
     vs.ValidationError),
    ("new-array-nan", lambda c: c.fresh(embedder=None, embedding_model="m").bulk_add(
        np.full((2, DIM), math.nan, dtype=np.float32), texts=["a", "b"]), vs.ValidationError),
    ("new-app-model-nan", lambda c: c.fresh(model=AppDoc).bulk_add(
        [{"text": "ok"}, {"text": "bad", "embedding": [math.inf] * DIM}]), vs.ValidationError),
    # options checked when given
    ("writer-bogus-policy", lambda c: c.repo.writer(on_conflict="bogus"),  # type: ignore[arg-type]
     vs.ValidationError),
    ("bulk-bogus-policy", lambda c: c.repo.bulk_add(["a"], on_conflict="nope"),  # type: ignore[arg-type]
     vs.ValidationError),
    ("ingest-bogus-policy", lambda c: vs.ingest(
        ["a"], repository=c.repo, on_conflict="nope"), vs.ValidationError),  # type: ignore[arg-type]
    ("bulk-other-embedding-model", lambda c: c.fresh(
        "battery", embedder=None, embedding_model="another-model").bulk_add(
        ["a"], embeddings=np.ones((1, DIM))), vs.EmbeddingModelMismatchError),
    ("ingest-other-embedder", lambda c: vs.ingest(
        ["a"], vs.HashingTestEmbedder(DIM), repository=c.fresh(
            "battery", embedder=None, embedding_model="another-model")),
     vs.EmbeddingModelMismatchError),
    ("url-port-not-a-number", lambda c: vs.make_engine(
        "postgresql://u:secret@/db?host=/tmp&port=abc"), vs.ConfigurationError),
    # collection names and external ids
    ("collection-name-surrogate", lambda c: c.fresh("bad \udc80 name"), vs.ValidationError),
    ("collection-name-nul", lambda c: c.fresh("a\x00b"), vs.ValidationError),
    ("external-id-control-echo", lambda c: c.repo.add("t", external_id="a\x00\x1b[31m"),
     vs.ValidationError),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_hostile_value_is_a_typed_one_line_error_and_changes_nothing(
    shared: tuple[Engine, Repo], tmp_path: Path, call: Case, error: type[Exception]
) -> None:
    engine, repo = shared
    before = fingerprint(engine)
    with pytest.raises(error) as caught:
        call(Ctx(engine, repo, tmp_path))
    assert isinstance(caught.value, vs.VectorStoreError)
    message = str(caught.value)
    assert message
    assert "\n" not in message.strip()
    assert not any(ord(ch) < 32 for ch in message), repr(message)
    assert "Traceback" not in message
    assert "secret" not in message
    assert fingerprint(engine) == before
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]


def test_returned_metadata_is_what_the_database_stored(shared: tuple[Engine, Repo]) -> None:
    _, repo = shared
    for metadata in ({"n": 1.0, "s": "x"}, {"nested": {"b": [1, {"c": None}]}}):
        doc = repo.add("stored as returned", metadata=metadata)
        assert doc.metadata_ == repo.get(doc.id).metadata_
        repo.delete([doc.id])


def test_the_battery_covers_every_write_and_read_entry_point() -> None:
    names = {name.split("-")[0] for name, _, _ in CASES}
    assert {"add", "bulk", "writer", "filter", "hybrid", "explain", "recall", "new",
            "ingest", "url", "collection"} <= names  # fmt: skip
    assert json.dumps([name for name, _, _ in CASES])  # ids are plain text
