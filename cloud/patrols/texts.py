"""What patrol exceptions say to people, in English and Simplified Chinese.

The same ``(english, chinese)`` pairs as :mod:`towerwatch.i18n`; :func:`texts` fills both.
Fields: ``site``, ``route``, ``checkpoint`` (name), ``guard``, ``minutes``, ``detail``.
"""

from __future__ import annotations

from typing import Final

from cloud.patrols.model import ExceptionKind

__all__ = ["EXCEPTION_TEXTS", "MESSAGES", "texts"]

EXCEPTION_TEXTS: Final[dict[ExceptionKind, tuple[str, str]]] = {
    ExceptionKind.MISSED_CHECKPOINT: (
        "Patrol {route}: checkpoint {checkpoint} was not visited",
        "巡更路线 {route}：巡更点 {checkpoint} 漏巡"),
    ExceptionKind.LATE: ("Patrol {route}: {checkpoint} visited {minutes} min late",
                         "巡更路线 {route}：{checkpoint} 迟到 {minutes} 分钟"),
    ExceptionKind.EARLY: ("Patrol {route}: {checkpoint} visited {minutes} min early",
                          "巡更路线 {route}：{checkpoint} 提前 {minutes} 分钟"),
    ExceptionKind.OUT_OF_ORDER: ("Patrol {route}: {checkpoint} visited out of order",
                                 "巡更路线 {route}：{checkpoint} 未按顺序巡查"),
    ExceptionKind.TOO_FAST: (
        "Patrol {route}: {checkpoint} reached implausibly fast",
        "巡更路线 {route}：到达 {checkpoint} 的速度不合常理"),
    ExceptionKind.DUPLICATE_SCAN: ("Patrol {route}: {checkpoint} scanned again",
                                   "巡更路线 {route}：{checkpoint} 重复打卡"),
    ExceptionKind.UNKNOWN_TAG: ("Patrol: a tag that is not enrolled was scanned by {guard}",
                                "巡更：{guard} 扫描了未登记的标签"),
    ExceptionKind.BAD_MAC: ("Patrol: a forged or damaged tag at {checkpoint} (scan by {guard})",
                            "巡更：{checkpoint} 的标签验证失败，疑似伪造或损坏（{guard} 扫描）"),
    ExceptionKind.REPLAY: ("Patrol: a replayed tap of {checkpoint} (scan by {guard})",
                           "巡更：{checkpoint} 的打卡数据被重放（{guard} 提交）"),
    ExceptionKind.CLOCK_SKEW: ("Patrol: the phone of {guard} is {minutes} min off",
                               "巡更：{guard} 的手机时间偏差 {minutes} 分钟"),
    ExceptionKind.TOUR_NOT_STARTED: ("Patrol {route}: the round was not started",
                                     "巡更路线 {route}：本轮巡更未开始"),
    ExceptionKind.TOUR_OVERDUE: ("Patrol {route}: the round is overdue",
                                 "巡更路线 {route}：本轮巡更超时未完成"),
    ExceptionKind.INCIDENT: ("Patrol finding at {checkpoint}: {detail}",
                             "巡更发现问题（{checkpoint}）：{detail}"),
}

MESSAGES: Final[dict[str, tuple[str, str]]] = {
    "tap.recorded": ("Checkpoint {checkpoint} recorded at {time}.",
                     "巡更点 {checkpoint} 已于 {time} 打卡。"),
    "tap.refused": ("This tap was not accepted: {reason}", "本次打卡未被接受：{reason}"),
    "tap.login": ("Log in to record patrol taps", "登录后即可记录巡更打卡"),
    "tap.username": ("Username", "用户名"),
    "tap.password": ("Password", "密码"),
    "tap.submit": ("Log in", "登录"),
    "tap.logged_in": ("Logged in as {user}. Tap a checkpoint.", "已登录：{user}。请扫描巡更点。"),
}


def texts(kind: ExceptionKind | str, **fields: object) -> tuple[str, str]:
    """The exception ``kind`` (or message key) in English and Chinese with ``fields``."""
    pair = (EXCEPTION_TEXTS[ExceptionKind(kind)] if kind in ExceptionKind.__members__.values()
            else MESSAGES[str(kind)])
    return pair[0].format(**fields), pair[1].format(**fields)
