"""full text: an expression GIN index on to_tsvector('english', text), no stored tsvector

The generated ``text_search`` column computed a ``tsvector`` for every row
inside every COPY: the load ran at about a fifth of the speed of a COPY into
the same table without it, and a stored generated column cannot be taken out
of a big load.  An expression index computes the same ``tsvector`` once per
row when it is built, and a big load drops it and rebuilds it after the COPY
(in parallel on PostgreSQL 18); hybrid queries spell the same expression and
compute ``ts_rank_cd`` only for the rows the index matched.  Measured side by
side with the other candidates in ``docs/full-text-search.md``.

Upgrade drops the column and builds the index in the migration's
transaction (writes to the documents table wait for the build; reads go on);
the column's space is reused by later writes (or freed by VACUUM FULL).  Downgrade adds the
generated column back (a table rewrite that computes it for every row) and
indexes it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "vectorstore_documents"
_INDEX = "ix_vectorstore_documents_text_search"
_EXPRESSION = "to_tsvector('english'::regconfig, text)"


def upgrade() -> None:
    op.drop_index(_INDEX, table_name=_TABLE)
    op.drop_column(_TABLE, "text_search")
    op.create_index(_INDEX, _TABLE, [sa.text(_EXPRESSION)], postgresql_using="gin")


def downgrade() -> None:
    op.drop_index(_INDEX, table_name=_TABLE)
    op.add_column(
        _TABLE,
        sa.Column(
            "text_search",
            postgresql.TSVECTOR(),
            sa.Computed(_EXPRESSION, persisted=True),
            nullable=False,
        ),
    )
    op.create_index(_INDEX, _TABLE, ["text_search"], postgresql_using="gin")
