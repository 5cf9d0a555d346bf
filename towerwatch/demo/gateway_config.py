"""An edge site config for the devices a simulated building serves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

#: points the demo lets the cloud write (they are writable in their profiles)
DEMO_WRITABLE: dict[str, list[str]] = {
    "booster-pumpset-modbus": ["pressure_setpoint", "fault_reset"],
    "door-controller-modbus": ["door1_unlock_pulse", "door1_held_timeout"],
    "elevator-ctl-modbus": ["out_of_service_request"],
}


def gateway_config(served: Sequence[Mapping[str, Any]], *, site: str, gateway: str,
                   mqtt_url: str, outbox: Path, http_listen: str = "127.0.0.1:0",
                   bacnet_bind: str = "127.0.0.1/8:0", timeout: float = 0.5,
                   writable: Mapping[str, Sequence[str]] | None = None,
                   extra_mqtt: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A site config dict polling every served device (``SimBuilding.served()``)."""
    allow = DEMO_WRITABLE if writable is None else writable
    devices: list[dict[str, Any]] = []
    for entry in served:
        device: dict[str, Any] = {"id": entry["id"], "profile": entry["profile"]}
        if entry["protocol"] == "modbus":
            device["modbus"] = {"host": entry["host"], "port": entry["port"],
                                "unit": entry["unit"], "framing": entry["framing"]}
        else:
            device["bacnet"] = {"address": entry["address"], "instance": entry["instance"]}
        if allow.get(entry["profile"]):
            device["writable"] = list(allow[entry["profile"]])
        devices.append(device)
    return {
        "site": site, "gateway": gateway,
        "mqtt": {"url": mqtt_url, **(extra_mqtt or {})},
        "outbox": {"path": str(outbox)},
        "http": {"listen": http_listen},
        "bacnet": {"address": bacnet_bind},
        "polling": {"timeout": timeout, "offline_after": 2, "backoff_max": 5},
        "devices": devices,
    }


def write_config(config: Mapping[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
    return path
