"""collections record the embedding backend and precision (model provenance)

``vectorstore_collections.embedding_backend``: a small JSON object
(``{"backend": "onnxruntime", "precision": "int8", "admitted": true}``) naming
the backend that produced the collection's vectors; NULL for collections
made before it was recorded (and by embedders that do not tell), which are
checked on the model name only.

Revision ID: 0009
Revises: 0003
Create Date: 2026-12-02

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("vectorstore_collections", sa.Column("embedding_backend", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("vectorstore_collections", "embedding_backend")
