"""The ingest outbox: accepted events not yet applied by the alarm service (see
:class:`cloud.db.models.PendingEvent` and docs/ingest-durability.md).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=64)


def upgrade() -> None:
    op.create_table(
        "pending_events",
        sa.Column("gateway_key", sa.String(length=129), nullable=False),
        sa.Column("boot_id", ID, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("gateway_id", ID, nullable=False),
        sa.Column("device_id", ID, nullable=False),
        sa.Column("name", ID, nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("claimed_ms", sa.BigInteger(), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("gateway_key", "boot_id", "seq", name=op.f("pk_pending_events")),
    )
    op.create_index(op.f("ix_pending_events_due_ms"), "pending_events", ["due_ms"])
    op.create_index(op.f("ix_pending_events_site_id_gateway_id_device_id_name"),
                    "pending_events", ["site_id", "gateway_id", "device_id", "name"])


def downgrade() -> None:
    op.drop_table("pending_events")
