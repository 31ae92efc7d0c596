"""The binary COPY encoder, checked against an independent pure-Python parser.

The parser below reads the stream with ``struct`` field by field, as PostgreSQL
does, so a mistake in the numpy layout (an offset, a byte order, a length word)
shows up as a mismatch, not as the same mistake on both sides.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vectorstore.write.batch import batches_from_arrays
from vectorstore.write.copy import COPY_COLUMNS, SIGNATURE, TRAILER, encode_batch, encoded_stream


def parse_stream(data: bytes) -> list[dict[str, Any]]:
    assert data.startswith(SIGNATURE)
    pos = len(SIGNATURE)
    rows = []
    while True:
        (fields,) = struct.unpack_from(">h", data, pos)
        pos += 2
        if fields == -1:
            assert pos == len(data)
            return rows
        assert fields == len(COPY_COLUMNS)
        row: dict[str, Any] = {}
        for name in COPY_COLUMNS:
            (size,) = struct.unpack_from(">i", data, pos)
            pos += 4
            if size == -1:
                row[name] = None
                continue
            raw = data[pos : pos + size]
            pos += size
            if name == "collection_id":
                row[name] = struct.unpack(">i", raw)[0]
            elif name in ("text", "external_id"):
                row[name] = raw.decode("utf-8")
            elif name == "metadata":
                assert raw[0] == 1
                row[name] = json.loads(raw[1:].decode("utf-8"))
            elif name == "embedding":
                dim, unused = struct.unpack_from(">hh", raw)
                assert unused == 0
                assert size == 4 + 4 * dim
                row[name] = np.array(struct.unpack_from(f">{dim}f", raw, 4), dtype=np.float32)
            else:
                row[name] = raw
        rows.append(row)


def test_stream_parses_back_field_by_field() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((3, 5)).astype(np.float32)
    texts = ["héllo wörld", "second", "日本語のテキスト"]
    metas = [{"a": 1}, None, {"nested": {"x": [1, 2]}, "s": "ü"}]
    ids = ["e1", None, "e3"]
    (batch,) = batches_from_arrays(texts, vectors, 5, metadata=metas, external_ids=ids)
    rows = parse_stream(b"".join(encoded_stream([batch], 42)))
    assert [r["text"] for r in rows] == texts
    assert [r["external_id"] for r in rows] == ids
    assert [r["metadata"] for r in rows] == [{"a": 1}, {}, metas[2]]
    assert all(r["collection_id"] == 42 for r in rows)
    assert [r["content_hash"] for r in rows] == [
        hashlib.sha256(t.encode()).digest() for t in texts
    ]
    for row, vector in zip(rows, vectors, strict=True):
        assert row["embedding"].tobytes() == vector.tobytes()


def test_empty_batch_encodes_to_nothing_and_stream_is_just_framing() -> None:
    (batch,) = batches_from_arrays(["x"], np.zeros((1, 2), np.float32), 2)
    empty = batch.take(np.zeros(1, dtype=bool))
    assert encode_batch(empty, 1) == b""
    assert b"".join(encoded_stream([empty], 1)) == SIGNATURE + TRAILER


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.text(
                alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
                min_size=1,
            ).filter(lambda t: t.strip() != ""),
            st.one_of(
                st.none(), st.text(min_size=1, max_size=20).filter(lambda t: "\x00" not in t)
            ),
            st.dictionaries(st.text(max_size=5).filter(lambda t: "\x00" not in t), st.integers()),
            st.lists(
                st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=3, max_size=3
            ),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_any_valid_rows_round_trip_through_the_parser(rows: list[Any]) -> None:
    texts = [r[0] for r in rows]
    ids = [r[1] for r in rows]
    metas = [r[2] for r in rows]
    vectors = np.array([r[3] for r in rows], dtype=np.float32)
    batches = list(
        batches_from_arrays(texts, vectors, 3, metadata=metas, external_ids=ids, chunk_rows=7)
    )
    parsed = parse_stream(b"".join(encoded_stream(batches, 7)))
    assert [p["text"] for p in parsed] == texts
    assert [p["external_id"] for p in parsed] == ids
    assert [p["metadata"] for p in parsed] == metas
    got = np.stack([p["embedding"] for p in parsed])
    assert got.tobytes() == vectors.tobytes()


def test_long_texts_and_metadata_beyond_the_length_table() -> None:
    texts = ["short", "x" * 20_000, "é" * 9_000]
    metas = [{"big": "y" * 10_000}, None, {"k": 1}]
    (batch,) = batches_from_arrays(texts, np.ones((3, 2), np.float32), 2, metadata=metas)
    rows = parse_stream(b"".join(encoded_stream([batch], 1)))
    assert [r["text"] for r in rows] == texts
    assert [r["metadata"] for r in rows] == [metas[0], {}, metas[2]]
