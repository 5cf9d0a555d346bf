"""Assets, work orders, SLA policies and breaches, preventive-maintenance plans.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Generated with ``alembic revision --autogenerate`` from :mod:`cloud.workorders.tables`
(which registers :mod:`cloud.assets.tables` and :mod:`cloud.maintenance.tables`), then
checked by hand; ``tests/cloud/workorders/test_schema.py`` proves the migrated schema and
the models agree on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=64)
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "assets",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("asset_class", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("supplier", sa.String(length=200), nullable=True),
        sa.Column("install_date", sa.Date(), nullable=True),
        sa.Column("building", sa.String(length=100), nullable=True),
        sa.Column("floor", sa.String(length=100), nullable=True),
        sa.Column("room", sa.String(length=100), nullable=True),
        sa.Column("maintenance_cycle_days", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "asset_class IN ('elevator', 'escalator', 'pump', 'fire_pump', 'fire_alarm', "
            "'sprinkler', 'fire_door', 'extinguisher', 'water_tank', 'door', 'meter', 'power', "
            "'hvac', 'other')",
            name=op.f("ck_assets_asset_class"),
        ),
        sa.CheckConstraint(
            "maintenance_cycle_days IS NULL OR maintenance_cycle_days > 0",
            name=op.f("ck_assets_maintenance_cycle_days"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_assets_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
        sa.UniqueConstraint("site_id", "name", name=op.f("uq_assets_site_id_name")),
    )
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assets_site_id_asset_class"), ["site_id", "asset_class"], unique=False
        )

    op.create_table(
        "sla_policies",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("respond_minutes", sa.Integer(), nullable=True),
        sa.Column("arrive_minutes", sa.Integer(), nullable=True),
        sa.Column("resolve_minutes", sa.Integer(), nullable=True),
        sa.Column("follow_up_minutes", sa.Integer(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", ID, nullable=True),
        sa.CheckConstraint(
            "priority IN ('emergency', 'urgent', 'normal', 'low')",
            name=op.f("ck_sla_policies_priority"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_sla_policies_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_policies")),
        sa.UniqueConstraint(
            "site_id",
            "category",
            "priority",
            name=op.f("uq_sla_policies_site_id_category_priority"),
        ),
    )
    op.create_table(
        "pm_plans",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("asset_id", SERIAL, nullable=True),
        sa.Column("asset_class", sa.String(length=32), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("interval_days", sa.Integer(), nullable=True),
        sa.Column("anchor_date", sa.Date(), nullable=True),
        sa.Column("window_start_min", sa.Integer(), nullable=False),
        sa.Column("window_minutes", sa.Integer(), nullable=False),
        sa.Column("lead_days", sa.Integer(), nullable=False),
        sa.Column("counter_gateway", ID, nullable=True),
        sa.Column("counter_device", ID, nullable=True),
        sa.Column("counter_point", ID, nullable=True),
        sa.Column("counter_start", sa.Float(), nullable=True),
        sa.Column("counter_interval", sa.Float(), nullable=True),
        sa.Column("counter_lead", sa.Float(), nullable=False),
        sa.Column("contractor", sa.String(length=200), nullable=True),
        sa.Column("instructions", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "(trigger = 'calendar' AND interval_days > 0 AND anchor_date IS NOT NULL) OR "
            "(trigger = 'counter' AND counter_interval > 0 AND asset_id IS NOT NULL AND "
            "counter_device IS NOT NULL AND counter_point IS NOT NULL)",
            name=op.f("ck_pm_plans_schedule"),
        ),
        sa.CheckConstraint(
            "asset_class IS NULL OR asset_class IN ('elevator', 'escalator', 'pump', "
            "'fire_pump', 'fire_alarm', 'sprinkler', 'fire_door', 'extinguisher', 'water_tank', "
            "'door', 'meter', 'power', 'hvac', 'other')",
            name=op.f("ck_pm_plans_asset_class"),
        ),
        sa.CheckConstraint(
            "level IN ('daily', 'monthly', 'quarterly', 'half_yearly', 'annual', 'overhaul', "
            "'contractor')",
            name=op.f("ck_pm_plans_level"),
        ),
        sa.CheckConstraint(
            "priority IN ('emergency', 'urgent', 'normal', 'low')",
            name=op.f("ck_pm_plans_priority"),
        ),
        sa.CheckConstraint("trigger IN ('calendar', 'counter')", name=op.f("ck_pm_plans_trigger")),
        sa.CheckConstraint(
            "(asset_id IS NULL) <> (asset_class IS NULL)", name=op.f("ck_pm_plans_target")
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_pm_plans_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_pm_plans_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pm_plans")),
    )
    with op.batch_alter_table("pm_plans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pm_plans_asset_id"), ["asset_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_pm_plans_site_id_active"), ["site_id", "active"], unique=False
        )

    op.create_table(
        "asset_devices",
        sa.Column("asset_id", SERIAL, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("gateway_id", ID, nullable=False),
        sa.Column("device_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_devices_asset_id_assets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id", "gateway_id", "device_id"],
            ["devices.site_id", "devices.gateway_id", "devices.id"],
            name=op.f("fk_asset_devices_site_id_gateway_id_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "asset_id", "site_id", "gateway_id", "device_id", name=op.f("pk_asset_devices")
        ),
    )
    with op.batch_alter_table("asset_devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_asset_devices_site_id_gateway_id_device_id"),
            ["site_id", "gateway_id", "device_id"],
            unique=False,
        )

    op.create_table(
        "work_orders",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("held_from", sa.String(length=16), nullable=True),
        sa.Column("hold_reason", sa.Text(), nullable=True),
        sa.Column("asset_id", SERIAL, nullable=True),
        sa.Column("gateway_id", ID, nullable=True),
        sa.Column("device_id", ID, nullable=True),
        sa.Column("alarm_id", sa.BigInteger(), nullable=True),
        sa.Column("alarm_key", sa.String(length=128), nullable=True),
        sa.Column("open_key", sa.String(length=255), nullable=True),
        sa.Column("pm_plan_id", SERIAL, nullable=True),
        sa.Column("pm_occurrence", sa.BigInteger(), nullable=True),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("assignee", ID, nullable=True),
        sa.Column("created_by", ID, nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("scheduled_start_ms", sa.BigInteger(), nullable=True),
        sa.Column("scheduled_end_ms", sa.BigInteger(), nullable=True),
        sa.Column("respond_due_ms", sa.BigInteger(), nullable=True),
        sa.Column("arrive_due_ms", sa.BigInteger(), nullable=True),
        sa.Column("resolve_due_ms", sa.BigInteger(), nullable=True),
        sa.Column("hold_since_ms", sa.BigInteger(), nullable=True),
        sa.Column("paused_ms", sa.BigInteger(), nullable=False),
        sa.Column("responded_ms", sa.BigInteger(), nullable=True),
        sa.Column("arrived_ms", sa.BigInteger(), nullable=True),
        sa.Column("resolved_ms", sa.BigInteger(), nullable=True),
        sa.Column("closed_ms", sa.BigInteger(), nullable=True),
        sa.Column("follow_up_minutes", sa.Integer(), nullable=False),
        sa.Column("follow_up_due_ms", sa.BigInteger(), nullable=True),
        sa.Column("follow_up_ms", sa.BigInteger(), nullable=True),
        sa.Column("follow_up_by", ID, nullable=True),
        sa.Column("follow_up_outcome", sa.String(length=16), nullable=True),
        sa.Column("follow_up_note", sa.Text(), nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "priority IN ('emergency', 'urgent', 'normal', 'low')",
            name=op.f("ck_work_orders_priority"),
        ),
        sa.CheckConstraint(
            "source IN ('alarm', 'patrol', 'pm', 'manual')", name=op.f("ck_work_orders_source")
        ),
        sa.CheckConstraint(
            "state IN ('new', 'assigned', 'accepted', 'on_site', 'in_progress', 'on_hold', "
            "'resolved', 'closed', 'cancelled', 'reopened')",
            name=op.f("ck_work_orders_state"),
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["assets.id"],
            name=op.f("fk_work_orders_asset_id_assets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["pm_plan_id"],
            ["pm_plans.id"],
            name=op.f("fk_work_orders_pm_plan_id_pm_plans"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_work_orders_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_orders")),
        sa.UniqueConstraint("open_key", name=op.f("uq_work_orders_open_key")),
        sa.UniqueConstraint(
            "pm_plan_id",
            "asset_id",
            "pm_occurrence",
            name=op.f("uq_work_orders_pm_plan_id_asset_id_pm_occurrence"),
        ),
    )
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_orders_alarm_id"), ["alarm_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_work_orders_asset_id_state"), ["asset_id", "state"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_work_orders_site_id_created_ms"), ["site_id", "created_ms"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_work_orders_site_id_state_priority"),
            ["site_id", "state", "priority"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_work_orders_state_resolve_due_ms"),
            ["state", "resolve_due_ms"],
            unique=False,
        )

    op.create_table(
        "sla_breaches",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("work_order_id", SERIAL, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.Column("detected_ms", sa.BigInteger(), nullable=False),
        sa.Column("met_ms", sa.BigInteger(), nullable=True),
        sa.Column("escalated_ms", sa.BigInteger(), nullable=True),
        sa.Column("escalated_via", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "kind IN ('respond', 'arrive', 'resolve', 'follow_up')",
            name=op.f("ck_sla_breaches_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_sla_breaches_work_order_id_work_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_breaches")),
        sa.UniqueConstraint(
            "work_order_id", "kind", name=op.f("uq_sla_breaches_work_order_id_kind")
        ),
    )
    with op.batch_alter_table("sla_breaches", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sla_breaches_site_id_detected_ms"),
            ["site_id", "detected_ms"],
            unique=False,
        )

    op.create_table(
        "work_order_alarms",
        sa.Column("work_order_id", SERIAL, nullable=False),
        sa.Column("alarm_id", sa.BigInteger(), nullable=False),
        sa.Column("attached_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_work_order_alarms_work_order_id_work_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("work_order_id", "alarm_id", name=op.f("pk_work_order_alarms")),
    )
    with op.batch_alter_table("work_order_alarms", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_work_order_alarms_alarm_id"), ["alarm_id"], unique=False
        )

    op.create_table(
        "work_order_events",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("work_order_id", SERIAL, nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("username", ID, nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("detail", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_work_order_events_work_order_id_work_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_events")),
    )
    with op.batch_alter_table("work_order_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_work_order_events_work_order_id_id"),
            ["work_order_id", "id"],
            unique=False,
        )

    op.create_table(
        "work_order_photos",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("work_order_id", SERIAL, nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", ID, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", ID, nullable=False),
        sa.Column("stored_name", sa.String(length=128), nullable=False),
        sa.Column("username", ID, nullable=True),
        sa.Column("uploaded_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["work_order_id"],
            ["work_orders.id"],
            name=op.f("fk_work_order_photos_work_order_id_work_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_work_order_photos")),
    )
    with op.batch_alter_table("work_order_photos", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_work_order_photos_work_order_id"), ["work_order_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("work_order_photos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_order_photos_work_order_id"))

    op.drop_table("work_order_photos")
    with op.batch_alter_table("work_order_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_order_events_work_order_id_id"))

    op.drop_table("work_order_events")
    with op.batch_alter_table("work_order_alarms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_order_alarms_alarm_id"))

    op.drop_table("work_order_alarms")
    with op.batch_alter_table("sla_breaches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_breaches_site_id_detected_ms"))

    op.drop_table("sla_breaches")
    with op.batch_alter_table("work_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_orders_state_resolve_due_ms"))
        batch_op.drop_index(batch_op.f("ix_work_orders_site_id_state_priority"))
        batch_op.drop_index(batch_op.f("ix_work_orders_site_id_created_ms"))
        batch_op.drop_index(batch_op.f("ix_work_orders_asset_id_state"))
        batch_op.drop_index(batch_op.f("ix_work_orders_alarm_id"))

    op.drop_table("work_orders")
    with op.batch_alter_table("asset_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asset_devices_site_id_gateway_id_device_id"))

    op.drop_table("asset_devices")
    with op.batch_alter_table("pm_plans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pm_plans_site_id_active"))
        batch_op.drop_index(batch_op.f("ix_pm_plans_asset_id"))

    op.drop_table("pm_plans")
    op.drop_table("sla_policies")
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assets_site_id_asset_class"))

    op.drop_table("assets")
