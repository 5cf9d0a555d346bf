"""The latest-value index: the newest sample of every series (see
:mod:`cloud.timeseries.latest_tables`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = sa.String(length=256)


def upgrade() -> None:
    op.create_table(
        "latest_values",
        sa.Column("site_id", KEY, nullable=False),
        sa.Column("gateway_id", KEY, nullable=False),
        sa.Column("device_id", KEY, nullable=False),
        sa.Column("point_id", KEY, nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=1), nullable=False),
        sa.Column("num", sa.Float(), nullable=True),
        sa.Column("txt", sa.Text(), nullable=True),
        sa.Column("quality", sa.String(length=8), nullable=False),
        sa.CheckConstraint("kind IN ('f', 'i', 'b', 's', 'n')", name=op.f("ck_latest_values_kind")),
        sa.CheckConstraint("quality IN ('good', 'stale', 'bad')",
                           name=op.f("ck_latest_values_quality")),
        sa.PrimaryKeyConstraint("site_id", "gateway_id", "device_id", "point_id",
                                name=op.f("pk_latest_values")),
    )
    op.create_table(
        "latest_index_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("complete_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_latest_index_state_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_latest_index_state")),
    )


def downgrade() -> None:
    op.drop_table("latest_index_state")
    op.drop_table("latest_values")
