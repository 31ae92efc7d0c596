"""staged ingest: a staging area for distributed writers and a ledger of merged batches

Distributed ingest (``vectorstore.integrations.spark``; the same pattern fits
Ray Data and Dask) embeds on many workers and must write every row exactly
once although the framework re-runs tasks and re-delivers batches.  Workers
COPY their rows into the staging area, tagged with the stage and their part;
one transaction then merges a stage into the documents table and records the
merge in the ledger, so a batch delivered again is recognised there.

* ``vectorstore_stage_parts``: one row per (stage, part) staged; a part staged
  again (a retried task) replaces its rows.  ``slot`` tags the rows.
* ``vectorstore_stage_rows``: the staged rows, in the document table's COPY
  shape (``slot`` in place of the collection id); ``embedding`` is an untyped
  ``vector`` so one staging area serves every dimension.
* ``vectorstore_ingest_ledger``: (stream, batch) of every merge, with what it
  wrote, committed in the merge's own transaction.

Both staging tables are UNLOGGED (no WAL: staging is rewritten by a retry
anyway).  A server crash empties them; the merge checks the number of parts
it expects, so a stage that lost parts fails the merge instead of writing half.

Revision ID: 0008
Revises: 0003
Create Date: 2026-12-02

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vectorstore_stage_parts",
        sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("part", sa.Text(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column(
            "staged_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("slot", name="pk_vectorstore_stage_parts"),
        sa.UniqueConstraint("stage", "part", name="uq_vectorstore_stage_parts"),
        prefixes=["UNLOGGED"],
    )
    op.create_table(
        "vectorstore_stage_rows",
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("ord", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("content_hash", sa.LargeBinary()),
        sa.Column("embedding", Vector()),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("metadata", postgresql.JSONB()),
        sa.PrimaryKeyConstraint("ord", name="pk_vectorstore_stage_rows"),
        prefixes=["UNLOGGED"],
    )
    op.create_index("ix_vectorstore_stage_rows_slot", "vectorstore_stage_rows", ["slot"])
    op.create_table(
        "vectorstore_ingest_ledger",
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("batch", sa.BigInteger(), nullable=False),
        sa.Column("collection_id", sa.Integer()),
        sa.Column("inserted", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("updated", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column("skipped", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.Column(
            "merged_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("stream", "batch", name="pk_vectorstore_ingest_ledger"),
    )


def downgrade() -> None:
    op.drop_table("vectorstore_ingest_ledger")
    op.drop_table("vectorstore_stage_rows")
    op.drop_table("vectorstore_stage_parts")
