"""app products, linked to a vectorstore collection

Revision ID: a001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "a001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_products",
        sa.Column("sku", sa.Text(), primary_key=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column(
            "collection_id",
            sa.Integer(),
            sa.ForeignKey(
                "vectorstore_collections.id",
                name="fk_app_products_collection_id",
                ondelete="SET NULL",
            ),
            nullable=True,
        ),
    )


def downgrade() -> None:
    op.drop_table("app_products")
