"""Checkpoint tags: enrolment (UID and keys) and identifying a tap.

A tap names its checkpoint in one of three ways:

- NTAG 424 DNA SUN: the tag's URL carries the checkpoint code in its path and
  ``picc_data`` + ``cmac`` (and ``enc`` when file data is mirrored) in its query. The
  checkpoint's keys decrypt and verify it; the UID inside must be the enrolled one; the read
  counter must be above the last accepted one. Strong assurance.
- plain UID: the phone read the tag's UID. Weak assurance: a UID can be copied.
- QR: the printed code's text. Weak assurance: a photograph of it works as well.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from cloud.patrols.errors import BadMac, PatrolConflict, PatrolInvalid, TapRejected, UnknownTag
from cloud.patrols.keys import TagKeys
from cloud.patrols.model import Assurance, KeyMode, TagType
from cloud.patrols.runtime import PatrolRuntime
from cloud.patrols.sun import SunReading, check_fresh, parse_hex, verify_sun
from cloud.patrols.tables import PatrolCheckpoint

__all__ = ["CheckpointSpec", "Tap", "assurance_of", "enrol", "identify", "tag_keys"]


@dataclass(frozen=True, slots=True)
class Tap:
    """A tap as the phone reports it (hex fields as text; checked here)."""

    method: TagType
    checkpoint: str | None = None
    picc_data: str | None = None
    cmac: str | None = None
    enc: str | None = None
    uid: str | None = None
    qr: str | None = None

    def raw(self) -> dict[str, str]:
        fields = {"checkpoint": self.checkpoint, "picc_data": self.picc_data,
                  "cmac": self.cmac, "enc": self.enc, "uid": self.uid, "qr": self.qr}
        return {k: v for k, v in fields.items() if v is not None}


@dataclass(frozen=True, slots=True)
class CheckpointSpec:
    code: str
    name: str
    tag_type: TagType
    location: str = ""
    uid: str | None = None
    qr_code: str | None = None
    key_mode: KeyMode | None = None
    meta_key: str | None = None
    file_key: str | None = None
    lat: float | None = None
    lon: float | None = None
    floor: int | None = None


def assurance_of(tag_type: TagType | str) -> Assurance:
    return Assurance.STRONG if TagType(tag_type) is TagType.SUN else Assurance.WEAK


def _aad(site: str, code: str, which: str) -> str:
    return f"patrol-tag/{site}/{code}/{which}"


def _uid(text: str | None, field: str, sizes: tuple[int, ...]) -> str:
    if not text:
        raise PatrolInvalid(field, "a tag UID is required")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise PatrolInvalid(field, "is not hexadecimal") from None
    if len(raw) not in sizes:
        raise PatrolInvalid(field, f"must be {' or '.join(str(s) for s in sizes)} bytes")
    return raw.hex().upper()


def _key(text: str | None, field: str) -> bytes:
    if not text:
        raise PatrolInvalid(field, "required for stored keys")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise PatrolInvalid(field, "is not hexadecimal") from None
    if len(raw) != 16:
        raise PatrolInvalid(field, "must be an AES-128 key (32 hex digits)")
    return raw


def enrol(session: Session, rt: PatrolRuntime, site: str, spec: CheckpointSpec,
          now_ms: int) -> tuple[PatrolCheckpoint, TagKeys | None]:
    """Create a checkpoint with its tag. For SUN tags with derived keys the keys to program
    into the tag are returned (they are not stored and not shown again)."""
    row = PatrolCheckpoint(site_id=site, code=spec.code, name=spec.name, location=spec.location,
                           tag_type=spec.tag_type.value, lat=spec.lat, lon=spec.lon,
                           floor=spec.floor, active=True, key_version=1, created_ms=now_ms)
    shown: TagKeys | None = None
    if spec.tag_type is TagType.SUN:
        vault = rt.require_vault()
        row.tag_uid = _uid(spec.uid, "uid", (7,))
        mode = spec.key_mode or KeyMode.DERIVED
        row.key_mode = mode.value
        if mode is KeyMode.STORED:
            meta, file = _key(spec.meta_key, "meta_key"), _key(spec.file_key, "file_key")
            row.meta_key_sealed = vault.seal(meta, _aad(site, spec.code, "meta"))
            row.file_key_sealed = vault.seal(file, _aad(site, spec.code, "file"))
        else:
            if spec.meta_key or spec.file_key:
                raise PatrolInvalid("key_mode", "derived keys are not supplied; use 'stored'")
            shown = vault.derive(site, bytes.fromhex(row.tag_uid), version=1)
    elif spec.tag_type is TagType.UID:
        row.tag_uid = _uid(spec.uid, "uid", (4, 7, 10))
    else:
        row.qr_code = spec.qr_code or f"tw-{secrets.token_urlsafe(18)}"
    _check_unique(session, site, row)
    session.add(row)
    session.flush()
    return row, shown


def _check_unique(session: Session, site: str, row: PatrolCheckpoint) -> None:
    clauses = [(PatrolCheckpoint.code, row.code, "code"),
               (PatrolCheckpoint.tag_uid, row.tag_uid, "uid"),
               (PatrolCheckpoint.qr_code, row.qr_code, "qr_code")]
    for column, value, field in clauses:
        if value is not None and session.scalar(select(PatrolCheckpoint.id).where(
                PatrolCheckpoint.site_id == site, column == value)) is not None:
            raise PatrolConflict(f"{field} {value!r} is already enrolled on site {site!r}")


def tag_keys(rt: PatrolRuntime, row: PatrolCheckpoint) -> TagKeys:
    """The SUN keys of a checkpoint (opened or derived)."""
    vault = rt.require_vault()
    if row.key_mode == KeyMode.STORED and row.meta_key_sealed and row.file_key_sealed:
        return TagKeys(vault.open(row.meta_key_sealed, _aad(row.site_id, row.code, "meta")),
                       vault.open(row.file_key_sealed, _aad(row.site_id, row.code, "file")))
    assert row.tag_uid is not None
    return vault.derive(row.site_id, bytes.fromhex(row.tag_uid), version=row.key_version)


def _rejected(error: TapRejected, row: PatrolCheckpoint | None) -> TapRejected:
    error.checkpoint_id = row.id if row is not None else None
    return error


def _by(session: Session, site: str, where: ColumnElement[bool]) -> PatrolCheckpoint | None:
    query = select(PatrolCheckpoint).where(PatrolCheckpoint.site_id == site, where)
    return session.scalar(query.with_for_update())


def _identify_sun(session: Session, rt: PatrolRuntime, site: str,
                  tap: Tap) -> tuple[PatrolCheckpoint, SunReading]:
    if not tap.checkpoint:
        raise UnknownTag("a SUN tap must name its checkpoint (the tag URL's path)")
    row = _by(session, site, PatrolCheckpoint.code == tap.checkpoint)
    if row is None or not row.active or row.tag_type != TagType.SUN:
        raise UnknownTag(f"no active SUN checkpoint {tap.checkpoint!r} on site {site!r}")
    try:
        picc = parse_hex(tap.picc_data or "", 16, "picc_data")
        cmac = parse_hex(tap.cmac or "", 8, "cmac")
        mac_input = b""
        if tap.enc:
            parse_hex(tap.enc, None, "enc")
            mac_input = f"{tap.enc.upper()}&cmac=".encode("ascii")
        keys = tag_keys(rt, row)
        reading = verify_sun(meta_key=keys.meta_read, file_key=keys.file_read,
                             picc_data=picc, cmac=cmac, mac_input=mac_input)
        if reading.uid_hex != row.tag_uid:
            raise BadMac(f"the tap carries UID {reading.uid_hex}, not the enrolled tag's")
        check_fresh(reading.counter, row.last_counter)
    except TapRejected as exc:
        raise _rejected(exc, row) from None
    return row, reading


def identify(session: Session, rt: PatrolRuntime, site: str,
             tap: Tap) -> tuple[PatrolCheckpoint, SunReading | None]:
    """The checkpoint of an authentic tap (SUN: its counter is then recorded as used), or
    :class:`TapRejected` (with ``checkpoint_id`` when the checkpoint is known)."""
    if tap.method is TagType.SUN:
        row, reading = _identify_sun(session, rt, site, tap)
        row.last_counter = reading.counter
        return row, reading
    if tap.method is TagType.UID:
        try:
            uid = _uid(tap.uid, "uid", (4, 7, 10))
        except PatrolInvalid as exc:
            raise UnknownTag(str(exc)) from None
        found = _by(session, site, PatrolCheckpoint.tag_uid == uid)
        if found is not None and found.tag_type == TagType.SUN:
            raise _rejected(UnknownTag(
                f"UID {uid} belongs to a SUN tag: its bare UID proves nothing"), found)
    else:
        found = _by(session, site, PatrolCheckpoint.qr_code == (tap.qr or ""))
    if found is None or not found.active or found.tag_type != tap.method:
        raise UnknownTag(f"no active {tap.method.value} checkpoint for this tap")
    return found, None
