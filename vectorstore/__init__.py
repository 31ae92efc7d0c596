"""vectorstore: text embeddings next to relational data in PostgreSQL + pgvector.

Import from ``vectorstore``: the names listed in ``__all__`` are the public
API.  The modules inside (``write``, ``query``, ``schema``, ...) are the
implementation and may change between releases.

Importing this package is cheap: no engine, no server and no model is created,
and nothing heavy is imported at all.  Each public name is loaded from its
module on first use (PEP 562 ``__getattr__``), so ``import vectorstore`` (and
the ``vectorstore --help`` of the command line) imports neither SQLAlchemy nor
numpy nor torch; ``vs.DocumentRepository`` imports what it needs then.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ below
    from ._metrics import Metric
    from .aio import (
        AsyncBufferedWriter,
        AsyncDocumentRepository,
        export_parquet_async,
        ingest_async,
        make_async_engine,
    )
    from .column_storage import column_storage_ddl
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
        EmbedderQualityError,
        EmbeddingModelMismatchError,
        ExtensionMissingError,
        FilterError,
        IndexBuildError,
        IndexMemoryWarning,
        MissingDependencyError,
        QueryTimeoutError,
        ReadOnlyError,
        SchemaError,
        ServerError,
        StorageFullError,
        UnindexedFilterWarning,
        ValidationError,
        VectorStoreError,
        VectorStoreWarning,
        VerificationError,
        WriteError,
    )
    from .metadata_table import (
        MetadataIndex,
        metadata_table_ddl,
        metadata_table_resync_sql,
    )
    from .models import (
        DEFAULT_DIMENSION,
        DEFAULT_MODEL_NAME,
        Base,
        Collection,
        CollectionAlias,
        Document,
        DocumentMixin,
    )
    from .query.diagnostics import ExplainReport, RecallPoint, RecallReport
    from .query.filters import FilterLike, compile_filter
    from .query.options import NearestOptions, QueryShape, Strategy
    from .reembedding import ReembedResult, reembed
    from .repository import DocumentRepository, export_parquet, ingest
    from .results import (
        AliasInfo,
        BulkResult,
        CollectionInfo,
        CollectionSummary,
        IngestResult,
        MergeResult,
        Page,
        ResultSet,
        SearchResult,
    )
    from .schema.aliases import (
        create_alias,
        drop_alias,
        get_alias,
        list_aliases,
        rollback_alias,
        switch_alias,
    )
    from .schema.catalog import AnnIndex
    from .schema.collections import (
        collection_info,
        create_collection,
        drop_collection,
        list_collections,
        rename_collection,
    )
    from .schema.indexes import IndexSpec
    from .schema.maintenance import rebuild_ann_indexes
    from .schema.migrate import check_schema, current_revision, downgrade, migrate
    from .schema.rls import disable_row_level_security, enable_row_level_security
    from .schema.tenants import attach_tenant, create_tenant, detach_tenant, drop_tenant
    from .server import EmbeddedServer
    from .write.batch import MAX_METADATA_DEPTH, Record
    from .write.load import ConflictPolicy
    from .write.writer import BufferedWriter

__version__ = "0.1.0"

# Each public name and the module that defines it.
_LAZY: dict[str, str] = {
    "Metric": "vectorstore._metrics",
    "AsyncBufferedWriter": "vectorstore.aio",
    "AsyncDocumentRepository": "vectorstore.aio",
    "export_parquet_async": "vectorstore.aio",
    "ingest_async": "vectorstore.aio",
    "make_async_engine": "vectorstore.aio",
    "make_engine": "vectorstore.config",
    "column_storage_ddl": "vectorstore.column_storage",
    "MetadataIndex": "vectorstore.metadata_table",
    "metadata_table_ddl": "vectorstore.metadata_table",
    "metadata_table_resync_sql": "vectorstore.metadata_table",
    "normalize_url": "vectorstore.config",
    "resolve_url": "vectorstore.config",
    "Embedder": "vectorstore.embedders",
    "HashingTestEmbedder": "vectorstore.embedders",
    "SentenceTransformerEmbedder": "vectorstore.embedders",
    "CollectionNotFoundError": "vectorstore.errors",
    "ConcurrencyError": "vectorstore.errors",
    "ConfigurationError": "vectorstore.errors",
    "ConflictError": "vectorstore.errors",
    "ConnectionLostError": "vectorstore.errors",
    "DatabaseError": "vectorstore.errors",
    "DimensionMismatchError": "vectorstore.errors",
    "DocumentNotFoundError": "vectorstore.errors",
    "EmbedderError": "vectorstore.errors",
    "EmbedderQualityError": "vectorstore.errors",
    "EmbeddingModelMismatchError": "vectorstore.errors",
    "ExtensionMissingError": "vectorstore.errors",
    "FilterError": "vectorstore.errors",
    "IndexBuildError": "vectorstore.errors",
    "IndexMemoryWarning": "vectorstore.errors",
    "MissingDependencyError": "vectorstore.errors",
    "QueryTimeoutError": "vectorstore.errors",
    "ReadOnlyError": "vectorstore.errors",
    "SchemaError": "vectorstore.errors",
    "ServerError": "vectorstore.errors",
    "StorageFullError": "vectorstore.errors",
    "UnindexedFilterWarning": "vectorstore.errors",
    "ValidationError": "vectorstore.errors",
    "VectorStoreError": "vectorstore.errors",
    "VerificationError": "vectorstore.errors",
    "VectorStoreWarning": "vectorstore.errors",
    "WriteError": "vectorstore.errors",
    "DEFAULT_DIMENSION": "vectorstore.models",
    "DEFAULT_MODEL_NAME": "vectorstore.models",
    "Base": "vectorstore.models",
    "Collection": "vectorstore.models",
    "CollectionAlias": "vectorstore.models",
    "Document": "vectorstore.models",
    "DocumentMixin": "vectorstore.models",
    "ExplainReport": "vectorstore.query.diagnostics",
    "RecallPoint": "vectorstore.query.diagnostics",
    "RecallReport": "vectorstore.query.diagnostics",
    "FilterLike": "vectorstore.query.filters",
    "compile_filter": "vectorstore.query.filters",
    "NearestOptions": "vectorstore.query.options",
    "QueryShape": "vectorstore.query.options",
    "Strategy": "vectorstore.query.options",
    "ReembedResult": "vectorstore.reembedding",
    "reembed": "vectorstore.reembedding",
    "DocumentRepository": "vectorstore.repository",
    "export_parquet": "vectorstore.repository",
    "ingest": "vectorstore.repository",
    "AliasInfo": "vectorstore.results",
    "BulkResult": "vectorstore.results",
    "CollectionInfo": "vectorstore.results",
    "IngestResult": "vectorstore.results",
    "Page": "vectorstore.results",
    "MergeResult": "vectorstore.results",
    "ResultSet": "vectorstore.results",
    "SearchResult": "vectorstore.results",
    "create_alias": "vectorstore.schema.aliases",
    "drop_alias": "vectorstore.schema.aliases",
    "get_alias": "vectorstore.schema.aliases",
    "list_aliases": "vectorstore.schema.aliases",
    "rollback_alias": "vectorstore.schema.aliases",
    "switch_alias": "vectorstore.schema.aliases",
    "AnnIndex": "vectorstore.schema.catalog",
    "CollectionSummary": "vectorstore.results",
    "collection_info": "vectorstore.schema.collections",
    "create_collection": "vectorstore.schema.collections",
    "drop_collection": "vectorstore.schema.collections",
    "list_collections": "vectorstore.schema.collections",
    "rename_collection": "vectorstore.schema.collections",
    "IndexSpec": "vectorstore.schema.indexes",
    "rebuild_ann_indexes": "vectorstore.schema.maintenance",
    "attach_tenant": "vectorstore.schema.tenants",
    "create_tenant": "vectorstore.schema.tenants",
    "detach_tenant": "vectorstore.schema.tenants",
    "drop_tenant": "vectorstore.schema.tenants",
    "disable_row_level_security": "vectorstore.schema.rls",
    "enable_row_level_security": "vectorstore.schema.rls",
    "check_schema": "vectorstore.schema.migrate",
    "current_revision": "vectorstore.schema.migrate",
    "downgrade": "vectorstore.schema.migrate",
    "migrate": "vectorstore.schema.migrate",
    "EmbeddedServer": "vectorstore.server",
    "MAX_METADATA_DEPTH": "vectorstore.write.batch",
    "Record": "vectorstore.write.batch",
    "ConflictPolicy": "vectorstore.write.load",
    "BufferedWriter": "vectorstore.write.writer",
}


__all__ = [
    "DEFAULT_DIMENSION",
    "DEFAULT_MODEL_NAME",
    "MAX_METADATA_DEPTH",
    "AliasInfo",
    "AnnIndex",
    "AsyncBufferedWriter",
    "AsyncDocumentRepository",
    "Base",
    "BufferedWriter",
    "BulkResult",
    "Collection",
    "CollectionAlias",
    "CollectionInfo",
    "CollectionNotFoundError",
    "CollectionSummary",
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
    "EmbedderQualityError",
    "EmbeddingModelMismatchError",
    "ExplainReport",
    "ExtensionMissingError",
    "FilterError",
    "FilterLike",
    "HashingTestEmbedder",
    "IndexBuildError",
    "IndexMemoryWarning",
    "IndexSpec",
    "IngestResult",
    "MergeResult",
    "MetadataIndex",
    "Metric",
    "MissingDependencyError",
    "NearestOptions",
    "Page",
    "QueryShape",
    "QueryTimeoutError",
    "ReadOnlyError",
    "RecallPoint",
    "RecallReport",
    "Record",
    "ReembedResult",
    "ResultSet",
    "SchemaError",
    "SearchResult",
    "SentenceTransformerEmbedder",
    "ServerError",
    "StorageFullError",
    "Strategy",
    "UnindexedFilterWarning",
    "ValidationError",
    "VectorStoreError",
    "VectorStoreWarning",
    "VerificationError",
    "WriteError",
    "__version__",
    "attach_tenant",
    "check_schema",
    "collection_info",
    "column_storage_ddl",
    "compile_filter",
    "create_alias",
    "create_collection",
    "create_tenant",
    "current_revision",
    "detach_tenant",
    "disable_row_level_security",
    "downgrade",
    "drop_alias",
    "drop_collection",
    "drop_tenant",
    "enable_row_level_security",
    "export_parquet",
    "export_parquet_async",
    "get_alias",
    "ingest",
    "ingest_async",
    "list_aliases",
    "list_collections",
    "make_async_engine",
    "make_engine",
    "metadata_table_ddl",
    "metadata_table_resync_sql",
    "migrate",
    "normalize_url",
    "rebuild_ann_indexes",
    "reembed",
    "rename_collection",
    "resolve_url",
    "rollback_alias",
    "switch_alias",
]


def __getattr__(name: str) -> _typing.Any:
    """Load a public name from its module on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vectorstore' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
