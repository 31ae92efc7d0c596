"""keep the default table's embedding, metadata and stored tsvector in the row (STORAGE MAIN)

pgvector's ``vector`` is stored ``EXTERNAL``: a row of a few hundred
characters of text plus a 384-d vector passes PostgreSQL's 2 KB toast
threshold and its vector moves out of line, which makes every row an exact
ranking reads cost a TOAST lookup; the metadata and the tsvector are kept in
too, or the toaster moves them out instead (``vectorstore/column_storage.py``).

Only new row versions follow; rewrite the table to move existing rows
(``VACUUM FULL vectorstore_documents``, or pg_repack without the lock).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE vectorstore_documents ALTER COLUMN embedding SET STORAGE MAIN, "
        "ALTER COLUMN metadata SET STORAGE MAIN, ALTER COLUMN text_search SET STORAGE MAIN"
    )


def downgrade() -> None:
    # The types' own defaults: vector EXTERNAL, jsonb and tsvector EXTENDED.
    op.execute(
        "ALTER TABLE vectorstore_documents ALTER COLUMN embedding SET STORAGE EXTERNAL, "
        "ALTER COLUMN metadata SET STORAGE EXTENDED, ALTER COLUMN text_search SET STORAGE EXTENDED"
    )
