"""The asset register in the store (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest

from cloud.assets.register import (
    assets_for_device,
    create_asset,
    delete_asset,
    link_device,
    list_assets,
    update_asset,
)
from cloud.db import Database, list_audit
from cloud.workorders.errors import Conflict, InvalidInput, NotFound
from tests.cloud.api.support import T0_MS


def test_register_defaults_links_and_audit(seeded: Database) -> None:
    with seeded.transaction() as session:
        lift = create_asset(session, site="alpha", name=" Lift 1 ", asset_class="elevator",
                            now_ms=T0_MS, user="supervisor-a", model="Gen2",
                            supplier="Otis", install_date=dt.date(2018, 5, 1),
                            building="A", floor="1", room="Shaft 1")
        tank = create_asset(session, site="alpha", name="Roof tank", asset_class="water_tank",
                            now_ms=T0_MS, user="supervisor-a", maintenance_cycle_days=90)
        link_device(session, lift, "gw1", "pump-1", now_ms=T0_MS, user="supervisor-a")
        link_device(session, lift, "gw1", "pump-1", now_ms=T0_MS, user="supervisor-a")
        link_device(session, tank, "gw1", "pump-1", now_ms=T0_MS, user="supervisor-a")
        assert lift.name == "Lift 1" and lift.maintenance_cycle_days == 15
        assert tank.maintenance_cycle_days == 90
        assert [a.id for a in assets_for_device(session, "alpha", "gw1", "pump-1")] == [
            lift.id, tank.id]
        assert [a.name for a in list_assets(session, "alpha", asset_class="elevator")] == [
            "Lift 1"]
        update_asset(session, tank, {"room": "Roof"}, now_ms=T0_MS + 1, user="supervisor-a")
        delete_asset(session, lift, now_ms=T0_MS + 2, user="supervisor-a")
        assert assets_for_device(session, "alpha", "gw1", "pump-1") == [tank]
        actions = [a.action for a in list_audit(session, site="alpha")]
    assert sorted(actions) == sorted(["asset.create", "asset.create", "asset.link",
                                      "asset.link", "asset.update", "asset.delete"])


@pytest.mark.parametrize(
    ("fields", "bad"),
    [({"asset_class": "robot"}, "asset_class"), ({"name": ""}, "name"),
     ({"maintenance_cycle_days": 0}, "maintenance_cycle_days"),
     ({"install_date": "2020-01-01"}, "install_date"), ({"colour": "red"}, "colour"),
     ({"room": "x" * 101}, "room")],
)
def test_bad_fields_are_named(seeded: Database, fields: dict[str, object], bad: str) -> None:
    values: dict[str, object] = {"name": "Pump", "asset_class": "pump"}
    values.update(fields)
    with pytest.raises(InvalidInput) as caught, seeded.transaction() as session:
        create_asset(session, site="alpha", now_ms=T0_MS, user=None, **values)  # type: ignore[arg-type]
    assert caught.value.field == bad


def test_names_are_unique_per_site_and_devices_must_exist(seeded: Database) -> None:
    with seeded.transaction() as session:
        create_asset(session, site="alpha", name="Pump", asset_class="pump", now_ms=T0_MS,
                     user=None)
        create_asset(session, site="beta", name="Pump", asset_class="pump", now_ms=T0_MS,
                     user=None)
    with pytest.raises(Conflict), seeded.transaction() as session:
        create_asset(session, site="alpha", name="Pump", asset_class="pump", now_ms=T0_MS,
                     user=None)
    with seeded.transaction() as session:
        [pump] = list_assets(session, "alpha")
        with pytest.raises(NotFound, match="device"):
            link_device(session, pump, "gw1", "ghost", now_ms=T0_MS, user=None)
