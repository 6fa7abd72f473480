"""sales learnt from auction.closed, and feedback between the two parties of a sale

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sales",
        sa.Column("listing_id", ID, autoincrement=False, nullable=False),
        sa.Column("seller_id", ID, nullable=False),
        sa.Column("winner_id", ID, nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("final_price", ID, nullable=True),
        sa.Column("closed_at", shared.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("listing_id"),
    )
    op.create_table(
        "feedback",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("listing_id", ID, nullable=False),
        sa.Column("from_user_id", ID, nullable=False),
        sa.Column("to_user_id", ID, nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.String(length=500), nullable=True),
        sa.Column("created_at", shared.db.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rating IN (-1, 0, 1)", name="ck_feedback_rating"),
        sa.ForeignKeyConstraint(["listing_id"], ["sales.listing_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("listing_id", "from_user_id", name="uq_feedback_listing_from"),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index("ix_feedback_to_user", ["to_user_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_feedback_to_user")
    op.drop_table("feedback")
    op.drop_table("sales")
