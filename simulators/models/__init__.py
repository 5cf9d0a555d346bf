"""Behaviour models of simulated devices."""

from simulators.models.base import (
    DeviceModel,
    EventRecord,
    SimContext,
    SimError,
    UnknownFault,
    Value,
    WriteRefused,
)
from simulators.models.registry import MODELS, model_class, model_for_profile

__all__ = [
    "MODELS",
    "DeviceModel",
    "EventRecord",
    "SimContext",
    "SimError",
    "UnknownFault",
    "Value",
    "WriteRefused",
    "model_class",
    "model_for_profile",
]
