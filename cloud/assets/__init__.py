"""The asset register: equipment with model, supplier, install date, location and
maintenance cycle, linked to the devices that watch it.

The register's functions are in :mod:`cloud.assets.register` (import them from there: the
work-order tables import this package's tables, so it re-exports only those).
"""

from cloud.assets.tables import Asset, AssetClass, AssetDevice

__all__ = ["Asset", "AssetClass", "AssetDevice"]
