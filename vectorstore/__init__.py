"""vectorstore: text embeddings next to relational data in PostgreSQL + pgvector.

Import from ``vectorstore``: the names listed in ``__all__`` are the public
API.  The modules inside (``write``, ``query``, ``schema``, ...) are the
implementation and may change between releases.

Importing this package is cheap: no engine, no server and no model is created,
and torch is not imported until a SentenceTransformerEmbedder is first used.
"""

from __future__ import annotations

from ._metrics import Metric
from .aio import (
    AsyncBufferedWriter,
    AsyncDocumentRepository,
    export_parquet_async,
    ingest_async,
    make_async_engine,
)
from .config import make_engine, normalize_url, resolve_url
from .embedders import Embedder, HashingTestEmbedder, SentenceTransformerEmbedder
from .errors import (
    CollectionNotFoundError,
    ConcurrencyError,
    ConfigurationError,
    ConflictError,
    ConnectionLostError,
    DatabaseError,
    DimensionMismatchError,
    DocumentNotFoundError,
    EmbedderError,
    EmbeddingModelMismatchError,
    ExtensionMissingError,
    FilterError,
    IndexBuildError,
    MissingDependencyError,
    QueryTimeoutError,
    ReadOnlyError,
    SchemaError,
    ServerError,
    StorageFullError,
    ValidationError,
    VectorStoreError,
    WriteError,
)
from .models import (
    DEFAULT_DIMENSION,
    DEFAULT_MODEL_NAME,
    Base,
    Collection,
    Document,
    DocumentMixin,
)
from .query.diagnostics import ExplainReport, RecallPoint, RecallReport
from .query.filters import FilterLike, compile_filter
from .query.options import NearestOptions, QueryShape, Strategy
from .repository import DocumentRepository, export_parquet, ingest
from .results import BulkResult, CollectionInfo, IngestResult, ResultSet, SearchResult
from .schema.catalog import AnnIndex
from .schema.indexes import IndexSpec
from .schema.maintenance import rebuild_ann_indexes
from .schema.migrate import check_schema, current_revision, downgrade, migrate
from .server import EmbeddedServer
from .write.batch import MAX_METADATA_DEPTH, Record
from .write.load import ConflictPolicy
from .write.writer import BufferedWriter

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_DIMENSION",
    "DEFAULT_MODEL_NAME",
    "MAX_METADATA_DEPTH",
    "AnnIndex",
    "AsyncBufferedWriter",
    "AsyncDocumentRepository",
    "Base",
    "BufferedWriter",
    "BulkResult",
    "Collection",
    "CollectionInfo",
    "CollectionNotFoundError",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "ConflictPolicy",
    "ConnectionLostError",
    "DatabaseError",
    "DimensionMismatchError",
    "Document",
    "DocumentMixin",
    "DocumentNotFoundError",
    "DocumentRepository",
    "EmbeddedServer",
    "Embedder",
    "EmbedderError",
    "EmbeddingModelMismatchError",
    "ExplainReport",
    "ExtensionMissingError",
    "FilterError",
    "FilterLike",
    "HashingTestEmbedder",
    "IndexBuildError",
    "IndexSpec",
    "IngestResult",
    "Metric",
    "MissingDependencyError",
    "NearestOptions",
    "QueryShape",
    "QueryTimeoutError",
    "ReadOnlyError",
    "RecallPoint",
    "RecallReport",
    "Record",
    "ResultSet",
    "SchemaError",
    "SearchResult",
    "SentenceTransformerEmbedder",
    "ServerError",
    "StorageFullError",
    "Strategy",
    "ValidationError",
    "VectorStoreError",
    "WriteError",
    "__version__",
    "check_schema",
    "compile_filter",
    "current_revision",
    "downgrade",
    "export_parquet",
    "export_parquet_async",
    "ingest",
    "ingest_async",
    "make_async_engine",
    "make_engine",
    "migrate",
    "normalize_url",
    "rebuild_ann_indexes",
    "resolve_url",
]
