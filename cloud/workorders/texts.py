"""Operator-facing texts of work orders, in English and Simplified Chinese.

They join :data:`towerwatch.i18n.MESSAGES` (the project's one message table) when this
module is imported, so :func:`towerwatch.i18n.t` renders them like every other message.
"""

from __future__ import annotations

from typing import Final

from towerwatch.i18n import MESSAGES

__all__ = ["TEXTS"]

TEXTS: Final[dict[str, tuple[str, str]]] = {
    "workorder.breach": (
        "SLA BREACH: work order #{id} at {site} ({priority}) missed its {kind} deadline by "
        "{late} min: {title}",
        "工单超时：{site} 的 #{id} 号工单（{priority}）{kind}时限已超过 {late} 分钟：{title}"),
    "workorder.pm_title": ("{plan}: {asset}", "{plan}：{asset}"),
    "workorder.pm_due": (
        "Preventive maintenance ({level}) due {date} in the window {start}-{end} (site time).",
        "预防性保养（{level}），应于 {date} {start}-{end}（站点当地时间）完成。"),
    "workorder.pm_counter": (
        "Preventive maintenance ({level}) due at {point} = {threshold} (now {reading}).",
        "预防性保养（{level}）：{point} 达到 {threshold} 时到期（当前 {reading}）。"),
}

for _key, _pair in TEXTS.items():
    MESSAGES.setdefault(_key, _pair)
