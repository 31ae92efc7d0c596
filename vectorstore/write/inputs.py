"""The one input dispatcher of the write path: whatever a caller hands in -> batches.

``bulk_add``, the buffered writer and ``ingest`` accept the same shapes and
turn them into validated :class:`~vectorstore.write.batch.Batch` objects
here: a pandas DataFrame, a 2-D embedding array with ``texts=``, parallel
sequences (texts with ``embeddings`` / ``metadata`` / ``external_ids``), any
iterable of records, and (for ``ingest``) a path to a ``.parquet``, ``.csv`` or
``.jsonl`` file.

Sources are read in chunks whatever their size: parquet through pyarrow
record batches (never the whole file), CSV and JSONL through pandas'
``chunksize`` readers, iterables through ``itertools.islice``.  Memory depends
on the chunk size, not on the input size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vectorstore._optional import require
from vectorstore._progress import count_lines
from vectorstore.errors import ValidationError

from .batch import (
    Batch,
    batches_from_arrays,
    batches_from_dataframe,
    batches_from_records,
)

__all__ = ["FILE_TYPES", "batches_from", "is_dataframe", "source_total"]

FILE_TYPES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def is_dataframe(value: Any) -> bool:
    """A pandas DataFrame (duck-typed, so pandas is imported only by those who use it)."""
    return hasattr(value, "iloc") and hasattr(value, "columns")


def _is_file(source: Any) -> bool:
    return isinstance(source, str | Path) and Path(source).suffix.lower() in FILE_TYPES


def batches_from(
    source: Any,
    dimension: int,
    *,
    chunk_rows: int,
    files: bool = False,
    embeddings: Any = None,
    texts: Sequence[str] | None = None,
    metadata: Sequence[Mapping[str, Any] | None] | None = None,
    external_ids: Sequence[str | None] | None = None,
    columns: Mapping[str, Any] | None = None,
) -> Iterator[Batch]:
    """Validated batches of ``source``, whatever its shape (see the module docstring).

    Args:
        files: accept a path to a data file (``ingest``); otherwise a string is
            refused as "one text, not many".
        embeddings, texts, metadata, external_ids: parallel inputs beside ``source``.
        columns: DataFrame and file column names (``text_column``, ...).
    """
    options = dict(columns or {})
    if files and _is_file(source):
        path = Path(source)
        if not path.exists():
            raise ValidationError(f"ingest source {str(path)!r} does not exist")
        return _frames_to_batches(_file_frames(path, chunk_rows, options), dimension, **options)
    if isinstance(source, str | bytes):
        if files:
            raise ValidationError(
                "ingest takes many texts, a DataFrame, or a path ending in "
                f"{', '.join(sorted(FILE_TYPES))}; got a single string"
            )
        raise ValidationError("bulk_add takes many records; use add() for one text")
    if is_dataframe(source):
        return batches_from_dataframe(
            source, dimension, embeddings=embeddings, chunk_rows=chunk_rows, **options
        )
    if options:
        raise ValidationError("column options apply to DataFrames and files only")
    if isinstance(source, np.ndarray):
        if texts is None:
            raise ValidationError("an embedding array needs texts=[...] beside it")
        return batches_from_arrays(
            texts, source, dimension, metadata=metadata, external_ids=external_ids,
            chunk_rows=chunk_rows,
        )  # fmt: skip
    if embeddings is not None or metadata is not None or external_ids is not None:
        if not isinstance(source, Sequence):
            raise ValidationError("parallel arrays need a sequence of texts")
        return batches_from_arrays(
            source, embeddings, dimension, metadata=metadata, external_ids=external_ids,
            chunk_rows=chunk_rows,
        )  # fmt: skip
    return batches_from_records(source, dimension, chunk_rows=chunk_rows)


def _shift(batches: Iterable[Batch], offset: int) -> Iterator[Batch]:
    for batch in batches:
        batch.start_row += offset
        yield batch


def _frames_to_batches(frames: Iterable[Any], dimension: int, **columns: Any) -> Iterator[Batch]:
    """Batches from DataFrames, or ``(DataFrame, embedding matrix)`` pairs, with global rows."""
    offset = 0
    metadata_column = columns.get("metadata_column") or "metadata"
    for item in frames:
        frame, vectors = item if isinstance(item, tuple) else (item, None)
        for option in ("id_column", "metadata_column", "embedding_column"):
            # A column the caller named is required (absent defaults are ignored).
            name = columns.get(option)
            if (
                name
                and name not in frame.columns
                and not (vectors is not None and option == "embedding_column")
            ):
                raise ValidationError(
                    f"the file has no {option.replace('_', ' ')} {name!r} "
                    f"(columns: {sorted(map(str, frame.columns))})"
                )
        if metadata_column in frame.columns:
            frame[metadata_column] = [
                json.loads(m) if isinstance(m, str) else m for m in frame[metadata_column]
            ]
        try:
            yield from _shift(
                batches_from_dataframe(
                    frame, dimension, chunk_rows=max(1, len(frame)), embeddings=vectors, **columns
                ),
                offset,
            )
        except ValidationError as exc:
            if exc.row is None:
                raise
            raise type(exc)(exc.reason, row=exc.row + offset, external_id=exc.external_id) from exc
        offset += len(frame)


def _vector_matrix(column: Any) -> Any:
    """A list column of equal-length number lists as one 2-D numpy array, else None."""
    pa = require("pyarrow", extra="io", feature="reading parquet files")

    if column.null_count or len(column) == 0:
        return None
    if pa.types.is_fixed_size_list(column.type):
        width = column.type.list_size
    elif pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        sizes = np.diff(column.offsets.to_numpy())
        if not (sizes == sizes[0]).all():
            return None  # ragged: left to the row-by-row validation, which names the row
        width = int(sizes[0])
    else:
        return None
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(column), width)


def _parquet_frames(path: Path, chunk_rows: int, embedding_column: str | None) -> Iterator[Any]:
    pa = require("pyarrow", extra="io", feature="reading parquet files")
    pq = require("pyarrow.parquet", extra="io", feature="reading parquet files")
    require("pandas", extra="io", feature="reading parquet files")

    # pre_buffer=False: with pre-buffering, iter_batches caches the column chunks
    # of every row group it has read, so memory grows with the file (measured:
    # +1.5 KiB per row); a 1 MiB read buffer streams each column chunk instead.
    parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    for record_batch in parquet.iter_batches(batch_size=chunk_rows):
        vectors = None
        names = record_batch.schema.names
        if embedding_column and embedding_column in names:
            vectors = _vector_matrix(record_batch.column(names.index(embedding_column)))
            if vectors is not None:
                record_batch = record_batch.drop_columns([embedding_column])
        yield pa.Table.from_batches([record_batch]).to_pandas(), vectors


def _file_frames(path: Path, chunk_rows: int, columns: dict[str, Any]) -> Iterator[Any]:
    """The file's frames; a file its reader cannot parse is a ValidationError naming it."""
    kind = FILE_TYPES[path.suffix.lower()]
    try:
        frames: Iterable[Any]
        if kind == "parquet":
            frames = _parquet_frames(path, chunk_rows, columns.get("embedding_column", "embedding"))
        else:
            pd = require("pandas", extra="io", feature=f"reading {kind.upper()} files")
            if kind == "csv":
                try:
                    frames = pd.read_csv(path, chunksize=chunk_rows)
                except pd.errors.EmptyDataError:
                    return  # no header, no rows: nothing to ingest, as for an empty .jsonl
            else:
                frames = pd.read_json(path, lines=True, chunksize=chunk_rows)
        yield from frames
    except (ValueError, OSError) as exc:  # pandas' ParserError, bad JSON, Arrow, encoding
        if isinstance(exc, ValidationError):
            raise
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValidationError(f"cannot read {str(path)!r} as {kind}: {reason}") from exc


def source_total(source: Any) -> tuple[int | None, bool]:
    """The rows ``source`` holds, and whether that is an estimate, without parsing it.

    A parquet file's row count comes from its metadata; a CSV or JSONL file's
    from a fast count of its lines (an estimate: a quoted field may hold a line
    break); a sized input's from ``len``.  A path is never measured with
    ``len`` (that would be the length of the path string).
    """
    if isinstance(source, str | Path):
        kind = FILE_TYPES.get(Path(source).suffix.lower())
        if kind == "parquet":
            pq = require("pyarrow.parquet", extra="io", feature="reading parquet files")
            try:
                return int(pq.ParquetFile(source).metadata.num_rows), False
            except (ValueError, OSError):  # not a parquet file: reading it says so
                return None, False
        if kind is not None:
            return count_lines(source, header=kind == "csv"), True
        return None, False
    try:
        return len(source), False
    except TypeError:
        return None, False
