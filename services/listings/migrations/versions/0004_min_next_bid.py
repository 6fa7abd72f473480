"""the bidding service's next acceptable bid, shown as is

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("listings", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("min_next_bid", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("listings", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("min_next_bid")
