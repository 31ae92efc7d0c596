"""full-text search: a generated tsvector column with a GIN index, for hybrid search

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "vectorstore_documents",
        sa.Column(
            "text_search",
            postgresql.TSVECTOR(),
            sa.Computed("to_tsvector('english'::regconfig, text)", persisted=True),
            nullable=False,
        ),
    )
    op.create_index(
        "ix_vectorstore_documents_text_search",
        "vectorstore_documents",
        ["text_search"],
        postgresql_using="gin",
    )


def downgrade() -> None:
    op.drop_index("ix_vectorstore_documents_text_search", table_name="vectorstore_documents")
    op.drop_column("vectorstore_documents", "text_search")
