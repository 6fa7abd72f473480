"""proxy bids, ending-soon alerts, watchers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("auctions") as batch:
        batch.add_column(sa.Column("leader_max_cents", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("ending_soon_sent_at", shared.db.UtcDateTime(), nullable=True))
    with op.batch_alter_table("bids") as batch:
        batch.add_column(sa.Column("automatic", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "watchers",
        sa.Column(
            "listing_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("listing_id", "user_id"),
    )
    # The sweep's lookup of auctions whose ending-soon alert is due.
    op.create_index(
        "ix_auctions_ending_soon_due",
        "auctions",
        ["ends_at"],
        postgresql_where=sa.text("status = 'open' AND ending_soon_sent_at IS NULL"),
        sqlite_where=sa.text("status = 'open' AND ending_soon_sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_auctions_ending_soon_due", table_name="auctions")
    op.drop_table("watchers")
    with op.batch_alter_table("bids") as batch:
        batch.drop_column("automatic")
    with op.batch_alter_table("auctions") as batch:
        batch.drop_column("ending_soon_sent_at")
        batch.drop_column("leader_max_cents")
