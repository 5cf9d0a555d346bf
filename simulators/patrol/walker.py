"""A patrol walker: guards walk rounds over a simulated building's NTAG 424 checkpoints,
against the real API over HTTP, on a simulated clock.

:class:`PatrolWalker` enrols the building (supervisor token): checkpoints with derived keys
(the answer's keys are programmed into :class:`~simulators.patrol.ntag.SimTag` objects),
routes and schedules from a site file (``simulators/sites/*patrol*.yaml``). Then
:meth:`PatrolWalker.walk` walks one round (guard token) stop by stop, advancing the clock
by the leg time before each tap, and on cue:

- ``miss``: skips a checkpoint (the guard then finishes the round by hand);
- ``swap``: visits two checkpoints in the wrong order;
- ``replay``: submits a tap's URL again later (copied URL);
- ``forge``: submits a tap with a tampered CMAC before the real tap;
- ``offline``: keeps the taps on the phone; :meth:`PatrolWalker.upload` sends them later
  as one batch with their device times.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from simulators.patrol.ntag import SimTag

__all__ = ["Cues", "PatrolWalker", "load_patrol_site"]


def load_patrol_site(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not {"site", "checkpoints", "routes"} <= set(data):
        raise ValueError(f"{path}: a patrol site needs site, checkpoints and routes")
    return data


@dataclass(frozen=True)
class Cues:
    miss: frozenset[str] = frozenset()
    swap: tuple[str, str] | None = None
    replay: str | None = None
    forge: str | None = None
    offline: bool = False


@dataclass
class PatrolWalker:
    http: httpx.Client
    site: str
    advance: Callable[[float], None]
    """Moves the simulated clock (seconds)."""
    now_ms: Callable[[], int]
    tags: dict[str, SimTag] = field(default_factory=dict)
    held: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def base(self) -> str:
        return f"/api/v1/sites/{self.site}/patrol"

    def _call(self, method: str, path: str, token: str, **kwargs: Any) -> Any:
        response = self.http.request(method, self.base + path,
                                     headers={"Authorization": f"Bearer {token}"}, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json()

    def enrol(self, plan: Mapping[str, Any], token: str) -> None:
        """Enrol checkpoints (fresh UIDs), routes and schedules from a patrol site file."""
        for index, cp in enumerate(plan["checkpoints"], 1):
            uid = bytes.fromhex(f"04{self.site.encode().hex()[:8]:0>8}{index:04X}")[:7]
            body = {**cp, "tag_type": "ntag424_sun", "uid": uid.hex().upper()}
            keys = self._call("POST", "/checkpoints", token, json=body)["keys"]
            self.tags[cp["code"]] = SimTag(uid, bytes.fromhex(keys["meta_read"]),
                                           bytes.fromhex(keys["file_read"]))
        for route in plan["routes"]:
            self._call("POST", "/routes", token, json=route)
        for schedule in plan.get("schedules", []):
            self._call("POST", "/schedules", token, json=schedule)

    def due(self, token: str) -> list[dict[str, Any]]:
        return list(self._call("GET", "/due", token))

    def _tap(self, code: str, *, forged: bool = False) -> dict[str, Any]:
        tap = self.tags[code].read()
        cmac = tap.cmac if not forged else tap.cmac[:-2] + f"{(int(tap.cmac[-2:], 16) ^ 1):02X}"
        return {"scan_id": f"walk-{next(self._ids)}", "device_time": self.now_ms(),
                "method": "ntag424_sun", "checkpoint": code, "picc_data": tap.picc_data,
                "cmac": cmac}

    def send(self, token: str, scans: list[dict[str, Any]],
             batch_id: str | None = None) -> list[dict[str, Any]]:
        body = {"scans": scans, "sent_at": self.now_ms(), "batch_id": batch_id}
        return list(self._call("POST", "/scans", token, json=body)["results"])

    def walk(self, token: str, tour: Mapping[str, Any], cues: Cues = Cues(),
             leg_s: float = 300.0) -> list[dict[str, Any]]:
        """Walk ``tour`` (from :meth:`due`): one tap per stop, ``leg_s`` apart."""
        order = [s["checkpoint"] for s in tour["stops"]]
        if cues.swap is not None:
            a, b = (order.index(c) for c in cues.swap)
            order[a], order[b] = order[b], order[a]
        results: list[dict[str, Any]] = []
        replay: dict[str, Any] | None = None
        for position, code in enumerate(order):
            if position:
                self.advance(leg_s)
            if code in cues.miss:
                continue
            if cues.forge == code:
                results += self.send(token, [self._tap(code, forged=True)])
            scan = self._tap(code)
            if cues.replay == code:
                replay = scan
            if cues.offline:
                self.held.append(scan)
            else:
                results += self.send(token, [scan])
        if replay is not None:
            self.advance(60)
            copied = {**replay, "scan_id": f"walk-{next(self._ids)}",
                      "device_time": self.now_ms()}
            results += self.send(token, [copied])
        if cues.miss and not cues.offline:
            self._call("POST", f"/tours/{tour['id']}/finish", token)
        return results

    def upload(self, token: str, batch_id: str) -> list[dict[str, Any]]:
        """Send the taps held while offline as one batch (their device times kept)."""
        scans, self.held = self.held, []
        return self.send(token, scans, batch_id=batch_id)
