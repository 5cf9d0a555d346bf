"""Behaviour models by name, and which model drives which profile."""

from __future__ import annotations

from importlib import import_module
from typing import Final

from simulators.models.base import DeviceModel

#: model name -> "module:Class"
MODELS: Final[dict[str, str]] = {
    "elevator": "simulators.models.elevator:ElevatorModel",
    "booster_pump_set": "simulators.models.booster:BoosterPumpSetModel",
    "sump_pump": "simulators.models.sump:SumpPumpModel",
    "fire_panel": "simulators.models.fire_panel:FirePanelModel",
    "door_controller": "simulators.models.door:DoorControllerModel",
    "energy_meter": "simulators.models.meters:EnergyMeterModel",
    "water_meter": "simulators.models.meters:WaterMeterModel",
    "generic": "simulators.models.generic:GenericModel",
}


def model_class(name: str) -> type[DeviceModel]:
    """The model class registered under ``name``; KeyError lists the known names."""
    try:
        target = MODELS[name]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise KeyError(f"unknown model {name!r}; known models: {known}") from None
    module, _, attr = target.partition(":")
    cls: type[DeviceModel] = getattr(import_module(module), attr)
    return cls


def model_for_profile(profile_id: str) -> str:
    """Name of the model that drives ``profile_id``; KeyError when none does."""
    for name in MODELS:
        if name != "generic" and profile_id in model_class(name).profiles:
            return name
    raise KeyError(f"no behaviour model drives profile {profile_id!r}")
