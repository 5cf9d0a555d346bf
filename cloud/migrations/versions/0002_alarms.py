"""Alarm lifecycle: alarms, their history, and per-site alarm policies.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Matches :mod:`cloud.alarms.tables`; ``tests/cloud/db/test_migrations.py`` proves that the
migrated schema and the models agree on SQLite and PostgreSQL. ``ux_alarms_open`` is a
partial unique index (``WHERE closed_ms IS NULL``) on both engines.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=64)
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
OPEN = sa.text("closed_ms IS NULL")


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("gateway_id", ID, nullable=False),
        sa.Column("device_id", ID, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("rank", sa.SmallInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("text_en", sa.Text(), nullable=False),
        sa.Column("text_zh", sa.Text(), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("raised_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_active_ms", sa.BigInteger(), nullable=False),
        sa.Column("changed_ms", sa.BigInteger(), nullable=False),
        sa.Column("cleared_ms", sa.BigInteger(), nullable=True),
        sa.Column("closed_ms", sa.BigInteger(), nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("acked_by", sa.String(length=64), nullable=True),
        sa.Column("acked_ms", sa.BigInteger(), nullable=True),
        sa.Column("ack_comment", sa.Text(), nullable=True),
        sa.Column("shelved_by", sa.String(length=64), nullable=True),
        sa.Column("shelved_ms", sa.BigInteger(), nullable=True),
        sa.Column("shelve_reason", sa.Text(), nullable=True),
        sa.Column("shelved_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("suppressed_reason", sa.Text(), nullable=True),
        sa.Column("out_of_service", sa.Boolean(), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("next_realarm_ms", sa.BigInteger(), nullable=True),
        sa.Column("next_escalation_ms", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "state IN ('normal', 'unack_active', 'ack_active', 'unack_rtn')",
            name=op.f("ck_alarms_state"),
        ),
        sa.CheckConstraint(
            "priority IN ('emergency', 'high', 'medium', 'low')",
            name=op.f("ck_alarms_priority"),
        ),
        sa.CheckConstraint(
            "source IN ('edge', 'rule', 'patrol')", name=op.f("ck_alarms_source")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_alarms_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarms")),
    )
    op.create_index(
        "ux_alarms_open",
        "alarms",
        ["site_id", "gateway_id", "device_id", "name"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )
    op.create_index(
        op.f("ix_alarms_site_id_rank_last_active_ms"),
        "alarms",
        ["site_id", "rank", "last_active_ms"],
    )
    op.create_index(op.f("ix_alarms_site_id_raised_ms"), "alarms", ["site_id", "raised_ms"])
    op.create_index(
        op.f("ix_alarms_site_id_gateway_id_device_id_name_raised_ms"),
        "alarms",
        ["site_id", "gateway_id", "device_id", "name", "raised_ms"],
    )
    op.create_index(op.f("ix_alarms_next_realarm_ms"), "alarms", ["next_realarm_ms"])
    op.create_index(op.f("ix_alarms_next_escalation_ms"), "alarms", ["next_escalation_ms"])
    op.create_index(op.f("ix_alarms_shelved_until_ms"), "alarms", ["shelved_until_ms"])

    op.create_table(
        "alarm_history",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("alarm_id", SERIAL, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("detail", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["alarms.id"],
            name=op.f("fk_alarm_history_alarm_id_alarms"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_history")),
    )
    op.create_index(op.f("ix_alarm_history_alarm_id_id"), "alarm_history", ["alarm_id", "id"])
    op.create_index(op.f("ix_alarm_history_site_id_ts_ms"), "alarm_history", ["site_id", "ts_ms"])
    op.create_index(op.f("ix_alarm_history_site_id_id"), "alarm_history", ["site_id", "id"])

    op.create_table(
        "alarm_policies",
        sa.Column("site_id", ID, nullable=False),
        sa.Column("policy", JSON, nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_alarm_policies_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_alarm_policies")),
    )


def downgrade() -> None:
    for table in ("alarm_policies", "alarm_history", "alarms"):
        op.drop_table(table)  # drops the table's indexes with it
