"""Any accepted input -> validated columnar batches: the write path's one currency.

``add``, ``bulk_add``, the buffered writer and the ingest pipeline all turn their
input into :class:`Batch` objects here, and the COPY encoder only consumes
batches.  Validation happens once, while a batch is built, and every error names
the row (its position in the whole input) and its external id when it has one.

A batch holds: texts (and their UTF-8 bytes), metadata as JSON bytes, external
ids, SHA-256 content hashes, and a C-contiguous float32 embedding matrix whose
rows may still be missing (``missing`` mask) until an embedder fills them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from vectorstore._vector import FloatMatrix, validate_matrix, validate_vector
from vectorstore.errors import DimensionMismatchError, ValidationError

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "MAX_EXTERNAL_ID_BYTES",
    "MAX_METADATA_DEPTH",
    "MAX_TEXT_BYTES",
    "Batch",
    "Record",
    "batches_from_arrays",
    "batches_from_dataframe",
    "batches_from_records",
    "checked_record",
]

# Rows per COPY chunk: ~10k rows of 384-d vectors is ~16 MB of stream, big enough
# to amortise per-chunk overhead, small enough that memory stays flat.
DEFAULT_CHUNK_ROWS = 10_000
# The generated tsvector column is limited to 1 MiB by PostgreSQL; embedding
# models read a few hundred tokens.  Texts above this are refused up front.
MAX_TEXT_BYTES = 1_000_000
# Btree index entries are limited to ~2700 bytes; external ids are keys, not payloads.
MAX_EXTERNAL_ID_BYTES = 512
#: How deeply stored metadata may nest objects and arrays; the metadata mapping
#: itself is level 1, so ``{"a": {"b": [1]}}`` is 3 levels deep.  Real metadata
#: is a few levels deep; this bound keeps every reader of it (the JSON encoder,
#: jsonb, filters, exports) far from a recursion limit, where 1,500 levels made
#: the encoder raise a bare RecursionError.
MAX_METADATA_DEPTH = 64

# One encoder for every row: json.dumps with non-default options builds a new
# JSONEncoder per call, which was most of the per-row validation cost.
_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder behind _JSON.encode, called directly by the whole-batch fast
# path (no Python frames per row).  No circular-reference markers: a marker
# table left behind by a failed call would be shared by the next one; a cycle
# recurses until RecursionError instead, which the row-by-row path names.
_MAKE_ENCODER: Any = getattr(json.encoder, "c_make_encoder", None)
_C_JSON: Any = (
    None
    if _MAKE_ENCODER is None
    else _MAKE_ENCODER(
        None, _no_default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
)
_NUL = "\x00"
_JSON_NUL = "\\u0000"


@dataclass(frozen=True)
class Record:
    """One document to write. ``embedding`` None means: compute it with the embedder."""

    text: str
    metadata: Mapping[str, Any] | None = None
    external_id: str | None = None
    embedding: Sequence[float] | npt.NDArray[Any] | None = None


@dataclass
class Batch:
    """Validated, columnar rows ready for the COPY encoder."""

    start_row: int
    texts: list[str]
    text_bytes: list[bytes]
    metadata: list[dict[str, Any]]
    metadata_json: list[bytes]
    external_ids: list[str | None]
    hashes: list[bytes]
    embeddings: FloatMatrix
    missing: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    # Input positions of the rows when they are not start_row, start_row + 1, ...
    # (after ``take`` dropped some), so errors still name the right row.
    row_numbers: npt.NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def needs_embedding(self) -> bool:
        return bool(self.missing.any())

    def locate(self, index: int) -> tuple[int, str | None]:
        """(row in the whole input, external id) of the batch's ``index``-th row."""
        if self.row_numbers is not None:
            return int(self.row_numbers[index]), self.external_ids[index]
        return self.start_row + index, self.external_ids[index]

    def set_embeddings(self, rows: npt.NDArray[np.intp], vectors: Any) -> None:
        """Fill the embeddings of ``rows`` (batch indexes) and validate them."""
        matrix = validate_matrix(vectors, self.embeddings.shape[1], first_row=self.start_row)
        if matrix.shape[0] != len(rows):
            raise ValidationError(
                f"the embedder returned {matrix.shape[0]} vectors for {len(rows)} texts"
            )
        self.embeddings[rows] = matrix
        self.missing[rows] = False

    def take(self, keep: npt.NDArray[np.bool_]) -> Batch:
        """A new batch with only the rows where ``keep`` is true."""
        idx = np.flatnonzero(keep)
        pick = idx.tolist()
        return Batch(
            start_row=self.start_row,
            texts=[self.texts[i] for i in pick],
            text_bytes=[self.text_bytes[i] for i in pick],
            metadata=[self.metadata[i] for i in pick],
            metadata_json=[self.metadata_json[i] for i in pick],
            external_ids=[self.external_ids[i] for i in pick],
            hashes=[self.hashes[i] for i in pick],
            embeddings=np.ascontiguousarray(self.embeddings[idx]),
            missing=self.missing[idx].copy(),
            row_numbers=(
                self.row_numbers[idx]
                if self.row_numbers is not None
                else (idx + self.start_row).astype(np.int64)
            ),
        )


def _check_text(text: Any, row: int, ext: str | None) -> bytes:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        raise ValidationError("text is None", row=row, external_id=ext)
    if not isinstance(text, str):
        raise ValidationError(
            f"text must be a str, got {type(text).__name__}", row=row, external_id=ext
        )
    if not text.strip():
        raise ValidationError("text is empty", row=row, external_id=ext)
    if "\x00" in text:
        raise ValidationError(
            "text contains a NUL byte (\\x00), which PostgreSQL cannot store",
            row=row, external_id=ext,
        )  # fmt: skip
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"text is not valid Unicode (lone surrogate at position {exc.start})",
            row=row, external_id=ext,
        ) from exc  # fmt: skip
    if len(data) > MAX_TEXT_BYTES:
        raise ValidationError(
            f"text is {len(data):,} bytes; the limit is {MAX_TEXT_BYTES:,} "
            "(PostgreSQL's tsvector limit; split long documents into chunks)",
            row=row, external_id=ext,
        )  # fmt: skip
    return data


def _check_external_id(value: Any, row: int) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, np.integer)):
        raise ValidationError(
            f"external_id must be a str or int, got {type(value).__name__}", row=row
        )
    ext = str(value)
    if not ext:
        raise ValidationError("external_id is an empty string", row=row)
    if "\x00" in ext:
        raise ValidationError("external_id contains a NUL byte", row=row)
    try:
        size = len(ext.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValidationError("external_id is not valid Unicode", row=row) from exc
    if size > MAX_EXTERNAL_ID_BYTES:
        raise ValidationError(
            f"external_id is {size} bytes; the limit is {MAX_EXTERNAL_ID_BYTES}", row=row
        )
    return ext


def _check_metadata(value: Any, row: int, ext: str | None) -> tuple[dict[str, Any], bytes]:
    if value is None:
        return {}, b"{}"
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"metadata must be a mapping, got {type(value).__name__}", row=row, external_id=ext
        )
    try:
        dumped = _JSON.encode(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"metadata is not JSON-serialisable: {exc}", row=row, external_id=ext
        ) from exc
    except RecursionError as exc:
        # The C encoder recurses per level; past the interpreter's limit this is
        # the only sign of depth.  A shallow value failing here means the
        # caller's own stack is nearly exhausted: that error is theirs.
        if not _too_deep(value):
            raise
        raise _depth_error(row, ext) from exc
    # A value nested deeper than the limit needs more than that many opening
    # brackets, and twice as many characters: the exact check runs only on
    # such texts, so ordinary metadata pays one len() and no walk.
    if (
        len(dumped) > 2 * MAX_METADATA_DEPTH
        and dumped.count("{") + dumped.count("[") > MAX_METADATA_DEPTH
        and _too_deep(value)
    ):
        raise _depth_error(row, ext)
    if "\\u0000" in dumped:
        raise ValidationError(
            "metadata contains a NUL character, which PostgreSQL's jsonb cannot store",
            row=row, external_id=ext,
        )  # fmt: skip
    try:
        data = dumped.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(
            "metadata contains invalid Unicode (a lone surrogate)", row=row, external_id=ext
        ) from exc
    return dict(value), data


def _too_deep(value: Any) -> bool:
    """True when ``value`` nests dicts and lists/tuples more than MAX_METADATA_DEPTH deep.

    Iterative, so it is safe on any depth; it looks only at what the JSON
    encoder writes as objects and arrays (dicts, lists, tuples).
    """
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list, tuple)))
    return False


def _depth_error(row: int, ext: str | None) -> ValidationError:
    return ValidationError(
        f"metadata nests objects/arrays more than {MAX_METADATA_DEPTH} levels deep "
        "(vectorstore.MAX_METADATA_DEPTH)",
        row=row, external_id=ext,
    )  # fmt: skip


def _build_matrix(
    start_row: int, n: int, embeddings: Any, dimension: int
) -> tuple[FloatMatrix, npt.NDArray[np.bool_]]:
    missing = np.zeros(n, dtype=bool)
    if embeddings is None:
        matrix = np.zeros((n, dimension), dtype=np.float32)
        missing[:] = True
    elif isinstance(embeddings, list) and any(e is None for e in embeddings):
        matrix = np.zeros((n, dimension), dtype=np.float32)
        for i, vec in enumerate(embeddings):
            if vec is None:
                missing[i] = True
            else:
                matrix[i] = validate_vector(vec, dimension, row=start_row + i)[0]
    else:
        try:
            matrix = validate_matrix(embeddings, dimension, first_row=start_row)
        except DimensionMismatchError:
            raise
        except ValidationError as exc:
            if exc.row is None and isinstance(embeddings, list):
                # Find the offending row for a clearer message.
                for i, vec in enumerate(embeddings):
                    validate_vector(vec, dimension, row=start_row + i)
            raise
        if matrix.shape[0] != n:
            raise ValidationError(f"{matrix.shape[0]} embeddings for {n} texts")
    return matrix, missing


def _fast_ids(external_ids: Sequence[Any]) -> list[str | None] | None:
    """All-str or all-None ids checked with C-level passes; None: check row by row."""
    kinds = set(map(type, external_ids))
    if kinds == {type(None)}:
        return [None] * len(external_ids)
    if kinds != {str}:
        return None
    try:
        sizes = list(map(len, map(str.encode, external_ids)))
    except UnicodeEncodeError:
        return None
    if min(map(len, external_ids)) == 0 or max(sizes) > MAX_EXTERNAL_ID_BYTES:
        return None
    if any(map(str.__contains__, external_ids, itertools.repeat(_NUL))):
        return None
    return list(external_ids)


def _fast_texts(texts: Sequence[Any]) -> list[bytes] | None:
    """UTF-8 of all-str texts checked with C-level passes; None: check row by row."""
    if set(map(type, texts)) != {str}:
        return None
    try:
        data = list(map(str.encode, texts))
    except UnicodeEncodeError:
        return None
    if max(map(len, data)) > MAX_TEXT_BYTES or min(map(len, map(str.strip, texts))) == 0:
        return None
    if any(map(str.__contains__, texts, itertools.repeat(_NUL))):
        return None
    return data


def _fast_metadata(metadata: Sequence[Any]) -> tuple[list[dict[str, Any]], list[bytes]] | None:
    """dict-or-None metadata JSON-encoded by the C encoder in one pass; None: row by row."""
    if _C_JSON is None or not set(map(type, metadata)) <= {dict, type(None)}:
        return None
    values = [{} if m is None else m for m in metadata]
    try:
        dumped = list(map("".join, map(_C_JSON, values, itertools.repeat(0))))
        data = list(map(str.encode, dumped))
    except (TypeError, ValueError, RecursionError):
        return None
    # The depth check needs more than 2 * MAX_METADATA_DEPTH characters (see _check_metadata).
    if max(map(len, dumped)) > 2 * MAX_METADATA_DEPTH:
        return None
    if any(map(str.__contains__, dumped, itertools.repeat(_JSON_NUL))):
        return None
    return list(map(dict, values)), data


def _build(
    start_row: int,
    texts: Sequence[Any],
    metadata: Sequence[Any],
    external_ids: Sequence[Any],
    embeddings: Any,
    dimension: int,
) -> Batch:
    n = len(texts)
    # Fast paths check a whole batch with C-level passes; any row they do not
    # accept sends the batch through the row-by-row checks, which name it.
    fast_ids = _fast_ids(external_ids) if n else None
    fast_texts = _fast_texts(texts) if fast_ids is not None else None
    fast_meta = _fast_metadata(metadata) if fast_texts is not None else None
    if fast_ids is not None and fast_texts is not None and fast_meta is not None:
        ids, text_bytes = fast_ids, fast_texts
        metas, metas_json = fast_meta
    else:
        ids = [_check_external_id(external_ids[i], start_row + i) for i in range(n)]
        text_bytes = [_check_text(texts[i], start_row + i, ids[i]) for i in range(n)]
        metas = []
        metas_json = []
        for i in range(n):
            meta, blob = _check_metadata(metadata[i], start_row + i, ids[i])
            metas.append(meta)
            metas_json.append(blob)
    try:
        matrix, missing = _build_matrix(start_row, n, embeddings, dimension)
    except ValidationError as exc:
        if exc.row is not None and exc.external_id is None and 0 <= exc.row - start_row < n:
            ext = ids[exc.row - start_row]
            if ext is not None:
                raise type(exc)(exc.reason, row=exc.row, external_id=ext) from exc
        raise
    return Batch(
        start_row=start_row,
        texts=list(texts),
        text_bytes=text_bytes,
        metadata=metas,
        metadata_json=metas_json,
        external_ids=ids,
        hashes=[hashlib.sha256(b).digest() for b in text_bytes],
        embeddings=matrix,
        missing=missing,
    )


def _record_fields(item: Any, row: int) -> tuple[Any, Any, Any, Any]:
    if isinstance(item, Record):
        return item.text, item.metadata, item.external_id, item.embedding
    if isinstance(item, Mapping):
        unknown = set(item) - {"text", "metadata", "external_id", "embedding", "id"}
        if unknown:
            raise ValidationError(f"unknown record keys: {sorted(unknown)}", row=row)
        return (
            item.get("text"),
            item.get("metadata"),
            item.get("external_id", item.get("id")),
            item.get("embedding"),
        )
    if isinstance(item, str):
        return item, None, None, None
    raise ValidationError(
        f"a record must be a str, a mapping or a vectorstore.Record, got {type(item).__name__}",
        row=row,
    )


def batches_from_records(
    records: Iterable[Any], dimension: int, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> Iterator[Batch]:
    """Stream batches from records (str, mapping or :class:`Record`), any iterable."""
    iterator = iter(records)
    start = 0
    while True:
        chunk = list(itertools.islice(iterator, chunk_rows))
        if not chunk:
            return
        fields = [_record_fields(item, start + i) for i, item in enumerate(chunk)]
        texts, metas, ids, vecs = (list(col) for col in zip(*fields, strict=True))
        embeddings: Any = vecs
        if all(v is None for v in vecs):
            embeddings = None
        yield _build(start, texts, metas, ids, embeddings, dimension)
        start += len(chunk)


def batches_from_arrays(
    texts: Sequence[str],
    embeddings: Any,
    dimension: int,
    *,
    metadata: Sequence[Mapping[str, Any] | None] | None = None,
    external_ids: Sequence[str | None] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[Batch]:
    """Stream batches from parallel sequences and a 2-D embedding array (or None)."""
    n = len(texts)
    if embeddings is not None and len(embeddings) != n:
        raise ValidationError(f"{len(embeddings)} embeddings for {n} texts")
    if metadata is not None and len(metadata) != n:
        raise ValidationError(f"{len(metadata)} metadata entries for {n} texts")
    if external_ids is not None and len(external_ids) != n:
        raise ValidationError(f"{len(external_ids)} external ids for {n} texts")
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        yield _build(
            start,
            texts[start:stop],
            metadata[start:stop] if metadata is not None else [None] * (stop - start),
            external_ids[start:stop] if external_ids is not None else [None] * (stop - start),
            embeddings[start:stop] if embeddings is not None else None,
            dimension,
        )


def batches_from_dataframe(
    frame: Any,
    dimension: int,
    *,
    text_column: str = "text",
    embedding_column: str | None = "embedding",
    metadata_column: str | None = "metadata",
    id_column: str | None = "external_id",
    metadata_columns: Sequence[str] | None = None,
    embeddings: Any = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[Batch]:
    """Stream batches from a pandas DataFrame.

    Embeddings come from ``embeddings`` (a 2-D array, one row per frame row) or
    from ``embedding_column`` (a column of lists/arrays) when present; metadata
    from ``metadata_column`` (dicts) and/or ``metadata_columns`` (plain columns
    folded into the metadata).  Optional columns that are absent are ignored;
    a missing text column or a named metadata column that is absent is an error.
    """
    columns = set(frame.columns)
    if text_column not in columns:
        raise ValidationError(
            f"the DataFrame has no text column {text_column!r} "
            f"(columns: {sorted(map(str, columns))})"
        )
    for name in metadata_columns or ():
        if name not in columns:
            raise ValidationError(f"the DataFrame has no metadata column {name!r}")
    n = len(frame)
    if embeddings is not None and len(embeddings) != n:
        raise ValidationError(f"{len(embeddings)} embeddings for {n} DataFrame rows")
    for start in range(0, n, chunk_rows):
        part = frame.iloc[start : start + chunk_rows]
        size = len(part)
        texts = part[text_column].tolist()
        ids = part[id_column].tolist() if id_column and id_column in columns else [None] * size
        metas: list[Any]
        if metadata_column and metadata_column in columns:
            metas = part[metadata_column].tolist()
        else:
            metas = [None] * size
        if metadata_columns:
            extra = part[list(metadata_columns)].to_dict("records")
            metas = [
                {**(m or {}), **{k: _plain(v) for k, v in e.items()}}
                for m, e in zip(metas, extra, strict=True)
            ]
        vecs: Any = None
        if embeddings is not None:
            vecs = embeddings[start : start + size]
        elif embedding_column and embedding_column in columns:
            column = part[embedding_column].tolist()
            vecs = None if all(v is None for v in column) else _stack_column(column, dimension)
        yield _build(start, texts, metas, ids, vecs, dimension)


def _stack_column(column: list[Any], dimension: int) -> Any:
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in column):
        return [None if v is None or isinstance(v, float) else v for v in column]
    try:
        return np.stack([np.asarray(v) for v in column])
    except ValueError:
        return column  # ragged: _build finds and names the row


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars so metadata is JSON-serialisable."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def checked_record(
    text: str | Record,
    embedding: Any,
    metadata: Mapping[str, Any] | None,
    external_id: str | None,
    dimension: int,
) -> Record:
    """One record for a buffered writer, validated now (so a bad one is never buffered).

    Raises:
        ValidationError: the record is invalid.
    """
    record = text if isinstance(text, Record) else Record(text, metadata, external_id, embedding)
    next(batches_from_records([record], dimension, chunk_rows=1))
    return record
