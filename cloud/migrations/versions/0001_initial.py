"""Initial schema: registry, users and roles, audit log, ingest bookkeeping, commands.

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Generated with ``alembic revision --autogenerate`` from :mod:`cloud.db.models`, then
ordered parents-first and checked by hand. ``tests/cloud/db/test_migrations.py`` proves
that the migrated schema and the models agree on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=64)
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    # -- registry ---------------------------------------------------------------------
    op.create_table(
        "sites",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
    )
    op.create_table(
        "gateways",
        sa.Column("site_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("boot_id", ID, nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("since_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_gateways_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("site_id", "id", name=op.f("pk_gateways")),
    )
    op.create_table(
        "devices",
        sa.Column("site_id", ID, nullable=False),
        sa.Column("gateway_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("profile", ID, nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("building", sa.String(length=100), nullable=True),
        sa.Column("floor", sa.String(length=100), nullable=True),
        sa.Column("room", sa.String(length=100), nullable=True),
        sa.Column("listed", sa.Boolean(), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("since_ms", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id", "gateway_id"],
            ["gateways.site_id", "gateways.id"],
            name=op.f("fk_devices_site_id_gateway_id_gateways"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", "gateway_id", "id", name=op.f("pk_devices")),
    )
    op.create_table(
        "points",
        sa.Column("site_id", ID, nullable=False),
        sa.Column("gateway_id", ID, nullable=False),
        sa.Column("device_id", ID, nullable=False),
        sa.Column("id", ID, nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("name_zh", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("writable", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id", "gateway_id", "device_id"],
            ["devices.site_id", "devices.gateway_id", "devices.id"],
            name=op.f("fk_points_site_id_gateway_id_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", "gateway_id", "device_id", "id", name=op.f("pk_points")),
    )

    # -- users and roles --------------------------------------------------------------
    op.create_table(
        "users",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "role_assignments",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("user_id", SERIAL, nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("site_id", ID, nullable=True),
        sa.CheckConstraint(
            "role IN ('viewer', 'engineer', 'supervisor', 'guard', 'admin')",
            name=op.f("ck_role_assignments_role"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_role_assignments_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_role_assignments_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_assignments")),
        sa.UniqueConstraint(
            "user_id", "role", "site_id", name=op.f("uq_role_assignments_user_id_role_site_id")
        ),
    )
    op.create_index(op.f("ix_role_assignments_user_id"), "role_assignments", ["user_id"])
    # NULL site = all sites; NULLs are distinct in the unique constraint above.
    op.create_index(
        "ux_role_assignments_all_sites",
        "role_assignments",
        ["user_id", "role"],
        unique=True,
        postgresql_where=sa.text("site_id IS NULL"),
        sqlite_where=sa.text("site_id IS NULL"),
    )

    # -- audit ------------------------------------------------------------------------
    op.create_table(
        "audit_log",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("site_id", ID, nullable=True),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("detail", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_ts_ms"), "audit_log", ["ts_ms"])
    op.create_index(op.f("ix_audit_log_site_id_ts_ms"), "audit_log", ["site_id", "ts_ms"])

    # -- ingest bookkeeping -----------------------------------------------------------
    op.create_table(
        "seen_messages",
        sa.Column("gateway_key", sa.String(length=129), nullable=False),
        sa.Column("boot_id", ID, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("seen_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("gateway_key", "boot_id", "seq", name=op.f("pk_seen_messages")),
    )
    op.create_index(op.f("ix_seen_messages_seen_ms"), "seen_messages", ["seen_ms"])
    op.create_table(
        "seq_streams",
        sa.Column("gateway_key", sa.String(length=129), nullable=False),
        sa.Column("boot_id", ID, nullable=False),
        sa.Column("high_water", sa.BigInteger(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("gaps", sa.BigInteger(), nullable=False),
        sa.Column("missing", sa.BigInteger(), nullable=False),
        sa.Column("late", sa.BigInteger(), nullable=False),
        sa.Column("first_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("gateway_key", "boot_id", name=op.f("pk_seq_streams")),
    )
    op.create_index(op.f("ix_seq_streams_last_ms"), "seq_streams", ["last_ms"])
    op.create_table(
        "dead_letters",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("received_ms", sa.BigInteger(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_size", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    op.create_index(op.f("ix_dead_letters_received_ms"), "dead_letters", ["received_ms"])

    # -- commands to the edge ---------------------------------------------------------
    op.create_table(
        "command_requests",
        sa.Column("request_id", ID, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("gateway_id", ID, nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("device_id", ID, nullable=True),
        sa.Column("point_id", ID, nullable=True),
        sa.Column("value", JSON, nullable=True),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reply_error", sa.Text(), nullable=True),
        sa.Column("replied_ms", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "op IN ('write', 'reload', 'ping')", name=op.f("ck_command_requests_op")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'ok', 'failed', 'expired')",
            name=op.f("ck_command_requests_status"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id", "gateway_id"],
            ["gateways.site_id", "gateways.id"],
            name=op.f("fk_command_requests_site_id_gateway_id_gateways"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_command_requests")),
    )
    op.create_index(
        op.f("ix_command_requests_status_expires_ms"), "command_requests", ["status", "expires_ms"]
    )
    op.create_index(
        op.f("ix_command_requests_site_id_created_ms"),
        "command_requests",
        ["site_id", "created_ms"],
    )


def downgrade() -> None:
    for table in (
        "command_requests",
        "dead_letters",
        "seq_streams",
        "seen_messages",
        "audit_log",
        "role_assignments",
        "users",
        "points",
        "devices",
        "gateways",
        "sites",
    ):
        op.drop_table(table)  # drops the table's indexes with it
