"""seed categories

The categories every deployment starts with. Part of the schema's history, so they are inserted
exactly once per database, together with the revision that records it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 19:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CATEGORIES = ["Electronics", "Fashion", "Home", "Collectibles", "Art", "Books", "Sports", "Toys", "Vehicles", "Other"]

categories = sa.table("categories", sa.column("id", sa.BigInteger()), sa.column("name", sa.String(64)))


def upgrade() -> None:
    connection = op.get_bind()
    present = set(connection.execute(sa.select(categories.c.name)).scalars())
    missing = [{"id": number, "name": name} for number, name in enumerate(CATEGORIES, start=1) if name not in present]
    if missing:
        op.bulk_insert(categories, missing)


def downgrade() -> None:
    op.execute(categories.delete().where(categories.c.name.in_(CATEGORIES)))
