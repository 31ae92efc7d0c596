"""collections and documents with pgvector, HNSW, GIN and btree indexes

Revision ID: 0001
Revises:
Create Date: 2026-11-27

"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from vectorstore.schema.alembic_hooks import require_pgvector

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # CREATE EXTENSION IF NOT EXISTS vector, with a clear error when pgvector is
    # missing or too old for HNSW.
    require_pgvector(op.get_bind())
    op.create_table(
        "vectorstore_collections",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("embedding_model", sa.Text(), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_vectorstore_collections"),
        sa.UniqueConstraint("name", name="uq_vectorstore_collections_name"),
    )
    op.create_table(
        "vectorstore_documents",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.LargeBinary(), nullable=False),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.Vector(384), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["vectorstore_collections.id"],
            name="fk_vectorstore_documents_collection_id_vectorstore_collections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_vectorstore_documents"),
        sa.UniqueConstraint(
            "collection_id",
            "external_id",
            name="uq_vectorstore_documents_collection_id_external_id",
        ),
    )
    op.create_index(
        "ix_vectorstore_documents_collection_id_content_hash",
        "vectorstore_documents",
        ["collection_id", "content_hash"],
    )
    op.create_index(
        "ix_vectorstore_documents_metadata",
        "vectorstore_documents",
        ["metadata"],
        postgresql_using="gin",
    )
    op.create_index(
        "ix_vectorstore_documents_embedding_hnsw",
        "vectorstore_documents",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )


def downgrade() -> None:
    op.drop_table("vectorstore_documents")
    op.drop_table("vectorstore_collections")
    # The extension stays: other tables in the database may use the vector type.
