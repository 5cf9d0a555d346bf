"""Preventive maintenance (六级保养): plans per asset or class, due work orders generated
ahead of time, maintenance windows, plans driven by run hours or meter readings.

Plans are managed with :mod:`cloud.maintenance.plans` and generated with
:func:`cloud.maintenance.generate.generate_due` (import them from there: the work-order
tables import this package's tables, so it re-exports only those).
"""

from cloud.maintenance.tables import PmLevel, PmPlan, PmTrigger

__all__ = ["PmLevel", "PmPlan", "PmTrigger"]
