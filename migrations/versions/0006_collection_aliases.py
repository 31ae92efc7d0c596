"""collection aliases: a second name that readers and writers resolve at each call

An alias names a collection; switching it (one UPDATE of one row) moves
every repository that uses the alias to another collection at once, which is
how ``vectorstore.reembed`` swaps in a collection embedded by another model.
``previous_collection_id`` keeps the collection before the last switch (the
one-call rollback); dropping that collection clears it.  A collection an
alias points to cannot be dropped (``ON DELETE RESTRICT``).

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-02

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE = "vectorstore_aliases"


def upgrade() -> None:
    op.create_table(
        _TABLE,
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.Text(), nullable=True),
        sa.Column("previous_collection_id", sa.Integer(), nullable=True),
        sa.Column("previous_table_name", sa.Text(), nullable=True),
        sa.Column(
            "switched_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["vectorstore_collections.id"],
            name="fk_vectorstore_aliases_collection",
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["previous_collection_id"],
            ["vectorstore_collections.id"],
            name="fk_vectorstore_aliases_previous",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("name", name="pk_vectorstore_aliases"),
    )
    op.create_index("ix_vectorstore_aliases_collection_id", _TABLE, ["collection_id"])


def downgrade() -> None:
    op.drop_index("ix_vectorstore_aliases_collection_id", table_name=_TABLE)
    op.drop_table(_TABLE)
