"""Tables of work orders, SLA policies, assets and preventive maintenance (migration ``0003``)."""

from __future__ import annotations
