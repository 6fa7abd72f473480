"""listing ids are never reused (SQLite AUTOINCREMENT)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 23:30:00

Other services keep records under a listing's id (bidding's auction, users' sales). SQLite, without
AUTOINCREMENT, gives a new row the highest deleted rowid again; PostgreSQL identities never go back.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("listings", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("listings", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
