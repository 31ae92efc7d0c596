"""vectorstore: text embeddings next to relational data in PostgreSQL + pgvector.

Importing this package is cheap: no engine, no server and no model is created,
and torch is not imported until a SentenceTransformerEmbedder is first used.
"""

from __future__ import annotations

from ._batch import Record
from .config import make_engine, normalize_url, resolve_url
from .diagnostics import ExplainReport, RecallReport
from .embedders import Embedder, HashingTestEmbedder, SentenceTransformerEmbedder
from .errors import (
    CollectionNotFoundError,
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
    ValidationError,
    VectorStoreError,
    WriteError,
)
from .filters import compile_filter
from .indexes import IndexSpec
from .maintenance import rebuild_ann_indexes
from .migrate import check_schema, current_revision, downgrade, migrate
from .models import (
    DEFAULT_DIMENSION,
    DEFAULT_MODEL_NAME,
    Base,
    Collection,
    Document,
    DocumentMixin,
)
from .pipeline import IngestResult, export_parquet, ingest
from .repository import ConflictPolicy, DocumentRepository
from .results import BulkResult, CollectionInfo, ResultSet, SearchResult
from .server import EmbeddedServer
from .writer import BufferedWriter

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_DIMENSION",
    "DEFAULT_MODEL_NAME",
    "Base",
    "BufferedWriter",
    "BulkResult",
    "Collection",
    "CollectionInfo",
    "CollectionNotFoundError",
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
    "HashingTestEmbedder",
    "IndexBuildError",
    "IndexSpec",
    "IngestResult",
    "MissingDependencyError",
    "QueryTimeoutError",
    "ReadOnlyError",
    "RecallReport",
    "Record",
    "ResultSet",
    "SchemaError",
    "SearchResult",
    "SentenceTransformerEmbedder",
    "ServerError",
    "ValidationError",
    "VectorStoreError",
    "WriteError",
    "__version__",
    "check_schema",
    "compile_filter",
    "current_revision",
    "downgrade",
    "export_parquet",
    "ingest",
    "make_engine",
    "migrate",
    "normalize_url",
    "rebuild_ann_indexes",
    "resolve_url",
]
