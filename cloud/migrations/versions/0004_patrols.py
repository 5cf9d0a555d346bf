"""Security patrols: checkpoints, routes, schedules, tours, scans, incidents and exceptions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

Generated with Alembic's autogenerate from :mod:`cloud.patrols.tables`, then checked by
hand; ``tests/cloud/patrols/test_schema.py`` proves the migrated schema equals the models
on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(length=64)
SERIAL = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _one_of(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "patrol_checkpoints",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("code", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.Column("tag_type", sa.String(length=16), nullable=False),
        sa.Column("tag_uid", sa.String(length=20), nullable=True),
        sa.Column("qr_code", sa.String(length=128), nullable=True),
        sa.Column("key_mode", sa.String(length=8), nullable=True),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("meta_key_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("file_key_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("last_counter", sa.BigInteger(), nullable=True),
        sa.Column("last_scan_ms", sa.BigInteger(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("floor", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            _one_of("key_mode", ["stored", "derived"]) + " OR key_mode IS NULL",
            name=op.f("ck_patrol_checkpoints_key_mode"),
        ),
        sa.CheckConstraint(
            _one_of("tag_type", ["ntag424_sun", "uid", "qr"]),
            name=op.f("ck_patrol_checkpoints_tag_type"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_patrol_checkpoints_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrol_checkpoints")),
        sa.UniqueConstraint("site_id", "code", name=op.f("uq_patrol_checkpoints_site_id_code")),
        sa.UniqueConstraint(
            "site_id", "qr_code", name=op.f("uq_patrol_checkpoints_site_id_qr_code")
        ),
        sa.UniqueConstraint(
            "site_id", "tag_uid", name=op.f("uq_patrol_checkpoints_site_id_tag_uid")
        ),
    )
    op.create_table(
        "patrol_routes",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("code", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("min_stops", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            _one_of("mode", ["ordered", "any_order", "partial"]), name=op.f("ck_patrol_routes_mode")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_patrol_routes_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrol_routes")),
        sa.UniqueConstraint("site_id", "code", name=op.f("uq_patrol_routes_site_id_code")),
    )
    op.create_table(
        "patrol_route_stops",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("route_id", SERIAL, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("checkpoint_id", SERIAL, nullable=False),
        sa.Column("offset_s", sa.Integer(), nullable=True),
        sa.Column("tolerance_s", sa.Integer(), nullable=False),
        sa.Column("min_leg_s", sa.Integer(), nullable=True),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"],
            ["patrol_checkpoints.id"],
            name=op.f("fk_patrol_route_stops_checkpoint_id_patrol_checkpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["route_id"],
            ["patrol_routes.id"],
            name=op.f("fk_patrol_route_stops_route_id_patrol_routes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrol_route_stops")),
        sa.UniqueConstraint(
            "route_id", "checkpoint_id", name=op.f("uq_patrol_route_stops_route_id_checkpoint_id")
        ),
        sa.UniqueConstraint(
            "route_id", "position", name=op.f("uq_patrol_route_stops_route_id_position")
        ),
    )
    op.create_index(
        op.f("ix_patrol_route_stops_checkpoint_id"),
        "patrol_route_stops",
        ["checkpoint_id"],
        unique=False,
    )
    op.create_table(
        "patrol_schedules",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("code", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("route_id", SERIAL, nullable=False),
        sa.Column("recurrence", JSON, nullable=False),
        sa.Column("window_min", sa.Integer(), nullable=False),
        sa.Column("grace_min", sa.Integer(), nullable=False),
        sa.Column("duration_min", sa.Integer(), nullable=False),
        sa.Column("guard", ID, nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("planned_until_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["route_id"],
            ["patrol_routes.id"],
            name=op.f("fk_patrol_schedules_route_id_patrol_routes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_patrol_schedules_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrol_schedules")),
        sa.UniqueConstraint("site_id", "code", name=op.f("uq_patrol_schedules_site_id_code")),
    )
    op.create_index(
        op.f("ix_patrol_schedules_route_id"), "patrol_schedules", ["route_id"], unique=False
    )
    op.create_table(
        "patrol_tours",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("route_id", SERIAL, nullable=False),
        sa.Column("schedule_id", SERIAL, nullable=True),
        sa.Column("scheduled_ms", sa.BigInteger(), nullable=False),
        sa.Column("window_ms", sa.BigInteger(), nullable=False),
        sa.Column("grace_ms", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("guard", ID, nullable=True),
        sa.Column("started_ms", sa.BigInteger(), nullable=True),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.Column("abandon_reason", sa.Text(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            _one_of(
                "status",
                [
                    "scheduled",
                    "in_progress",
                    "completed",
                    "completed_with_exceptions",
                    "abandoned",
                    "missed",
                ],
            ),
            name=op.f("ck_patrol_tours_status"),
        ),
        sa.ForeignKeyConstraint(
            ["route_id"],
            ["patrol_routes.id"],
            name=op.f("fk_patrol_tours_route_id_patrol_routes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["patrol_schedules.id"],
            name=op.f("fk_patrol_tours_schedule_id_patrol_schedules"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_patrol_tours_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrol_tours")),
        sa.UniqueConstraint(
            "schedule_id", "scheduled_ms", name=op.f("uq_patrol_tours_schedule_id_scheduled_ms")
        ),
    )
    op.create_index(op.f("ix_patrol_tours_route_id"), "patrol_tours", ["route_id"], unique=False)
    op.create_index(
        op.f("ix_patrol_tours_site_id_scheduled_ms"),
        "patrol_tours",
        ["site_id", "scheduled_ms"],
        unique=False,
    )
    op.create_index(
        op.f("ix_patrol_tours_site_id_status"), "patrol_tours", ["site_id", "status"], unique=False
    )
    op.create_table(
        "patrol_incidents",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("incident_id", ID, nullable=False),
        sa.Column("tour_id", SERIAL, nullable=True),
        sa.Column("checkpoint_id", SERIAL, nullable=True),
        sa.Column("guard", ID, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("photo_ref", sa.String(length=500), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("device_ms", sa.BigInteger(), nullable=False),
        sa.Column("server_ms", sa.BigInteger(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.CheckConstraint(
            _one_of("severity", ["low", "medium", "high", "emergency"]),
            name=op.f("ck_patrol_incidents_severity"),
        ),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"],
            ["patrol_checkpoints.id"],
            name=op.f("fk_patrol_incidents_checkpoint_id_patrol_checkpoints"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_patrol_incidents_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tour_id"],
            ["patrol_tours.id"],
            name=op.f("fk_patrol_incidents_tour_id_patrol_tours"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrol_incidents")),
        sa.UniqueConstraint(
            "site_id", "incident_id", name=op.f("uq_patrol_incidents_site_id_incident_id")
        ),
    )
    op.create_index(
        op.f("ix_patrol_incidents_tour_id"), "patrol_incidents", ["tour_id"], unique=False
    )
    op.create_table(
        "patrol_scans",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("scan_id", ID, nullable=False),
        sa.Column("tour_id", SERIAL, nullable=True),
        sa.Column("checkpoint_id", SERIAL, nullable=True),
        sa.Column("guard", ID, nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("assurance", sa.String(length=8), nullable=True),
        sa.Column("device_ms", sa.BigInteger(), nullable=False),
        sa.Column("server_ms", sa.BigInteger(), nullable=False),
        sa.Column("event_ms", sa.BigInteger(), nullable=False),
        sa.Column("skew_ms", sa.BigInteger(), nullable=True),
        sa.Column("batch_id", ID, nullable=True),
        sa.Column("counter", sa.BigInteger(), nullable=True),
        sa.Column("tag_uid", sa.String(length=20), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("raw", JSON, nullable=False),
        sa.CheckConstraint(
            _one_of("method", ["ntag424_sun", "uid", "qr"]), name=op.f("ck_patrol_scans_method")
        ),
        sa.CheckConstraint(
            _one_of("result", ["accepted", "duplicate", "unknown_tag", "bad_mac", "replay"]),
            name=op.f("ck_patrol_scans_result"),
        ),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"],
            ["patrol_checkpoints.id"],
            name=op.f("fk_patrol_scans_checkpoint_id_patrol_checkpoints"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_patrol_scans_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tour_id"],
            ["patrol_tours.id"],
            name=op.f("fk_patrol_scans_tour_id_patrol_tours"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrol_scans")),
        sa.UniqueConstraint("site_id", "scan_id", name=op.f("uq_patrol_scans_site_id_scan_id")),
    )
    op.create_index(
        op.f("ix_patrol_scans_checkpoint_id"), "patrol_scans", ["checkpoint_id"], unique=False
    )
    op.create_index(
        op.f("ix_patrol_scans_site_id_event_ms"),
        "patrol_scans",
        ["site_id", "event_ms"],
        unique=False,
    )
    op.create_index(op.f("ix_patrol_scans_tour_id"), "patrol_scans", ["tour_id"], unique=False)
    op.create_table(
        "patrol_exceptions",
        sa.Column("id", SERIAL, autoincrement=True, nullable=False),
        sa.Column("site_id", ID, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("tour_id", SERIAL, nullable=True),
        sa.Column("checkpoint_id", SERIAL, nullable=True),
        sa.Column("scan_id", SERIAL, nullable=True),
        sa.Column("incident_id", SERIAL, nullable=True),
        sa.Column("guard", ID, nullable=True),
        sa.Column("occurred_ms", sa.BigInteger(), nullable=False),
        sa.Column("detected_ms", sa.BigInteger(), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("escalation", sa.String(length=16), nullable=True),
        sa.Column("escalation_ref", ID, nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("closed_by", ID, nullable=True),
        sa.Column("closed_ms", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            _one_of(
                "kind",
                [
                    "missed_checkpoint",
                    "late",
                    "early",
                    "out_of_order",
                    "too_fast",
                    "duplicate_scan",
                    "unknown_tag",
                    "bad_mac",
                    "replay",
                    "clock_skew",
                    "tour_not_started",
                    "tour_overdue",
                    "incident",
                ],
            ),
            name=op.f("ck_patrol_exceptions_kind"),
        ),
        sa.CheckConstraint(
            _one_of("status", ["open", "closed", "withdrawn"]),
            name=op.f("ck_patrol_exceptions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"],
            ["patrol_checkpoints.id"],
            name=op.f("fk_patrol_exceptions_checkpoint_id_patrol_checkpoints"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["patrol_incidents.id"],
            name=op.f("fk_patrol_exceptions_incident_id_patrol_incidents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["patrol_scans.id"],
            name=op.f("fk_patrol_exceptions_scan_id_patrol_scans"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_patrol_exceptions_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tour_id"],
            ["patrol_tours.id"],
            name=op.f("fk_patrol_exceptions_tour_id_patrol_tours"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrol_exceptions")),
        sa.UniqueConstraint(
            "site_id", "dedupe_key", name=op.f("uq_patrol_exceptions_site_id_dedupe_key")
        ),
    )
    op.create_index(
        op.f("ix_patrol_exceptions_site_id_status_detected_ms"),
        "patrol_exceptions",
        ["site_id", "status", "detected_ms"],
        unique=False,
    )
    op.create_index(
        op.f("ix_patrol_exceptions_tour_id"), "patrol_exceptions", ["tour_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_patrol_exceptions_tour_id"), table_name="patrol_exceptions")
    op.drop_index(
        op.f("ix_patrol_exceptions_site_id_status_detected_ms"), table_name="patrol_exceptions"
    )
    op.drop_table("patrol_exceptions")
    op.drop_index(op.f("ix_patrol_scans_tour_id"), table_name="patrol_scans")
    op.drop_index(op.f("ix_patrol_scans_site_id_event_ms"), table_name="patrol_scans")
    op.drop_index(op.f("ix_patrol_scans_checkpoint_id"), table_name="patrol_scans")
    op.drop_table("patrol_scans")
    op.drop_index(op.f("ix_patrol_incidents_tour_id"), table_name="patrol_incidents")
    op.drop_table("patrol_incidents")
    op.drop_index(op.f("ix_patrol_tours_site_id_status"), table_name="patrol_tours")
    op.drop_index(op.f("ix_patrol_tours_site_id_scheduled_ms"), table_name="patrol_tours")
    op.drop_index(op.f("ix_patrol_tours_route_id"), table_name="patrol_tours")
    op.drop_table("patrol_tours")
    op.drop_index(op.f("ix_patrol_schedules_route_id"), table_name="patrol_schedules")
    op.drop_table("patrol_schedules")
    op.drop_index(op.f("ix_patrol_route_stops_checkpoint_id"), table_name="patrol_route_stops")
    op.drop_table("patrol_route_stops")
    op.drop_table("patrol_routes")
    op.drop_table("patrol_checkpoints")
