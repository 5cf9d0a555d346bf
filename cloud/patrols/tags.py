"""Checkpoint tags: enrolment (UID and keys) and identifying a tap.

A tap names its checkpoint in one of three ways:

- NTAG 424 DNA SUN: the tag's URL carries the checkpoint code in its path and
  ``picc_data`` + ``cmac`` (and ``enc`` when file data is mirrored) in its query. The
  checkpoint's keys decrypt and verify it; the UID inside must be the enrolled one; the read
  counter must be above the last accepted one. Strong assurance.
- plain UID: the phone read the tag's UID. Weak assurance: a UID can be copied.
- QR: the printed code's text. Weak assurance: a photograph of it works as well.

A batch of taps is identified against a :class:`TagIndex`: the checkpoints the batch names,
loaded and locked in one query (in id order, so concurrent batches lock alike and a tag's
read counter advances one batch at a time), with each SUN checkpoint's keys opened or
derived once. Its rows are the session's own: a counter advanced by one tap of the batch is
what the next tap of the same tag is checked against.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from cloud.patrols.errors import BadMac, PatrolConflict, PatrolInvalid, TapRejected, UnknownTag
from cloud.patrols.keys import TagKeys
from cloud.patrols.model import Assurance, KeyMode, TagType
from cloud.patrols.runtime import PatrolRuntime
from cloud.patrols.sun import SunReading, check_fresh, parse_hex, verify_sun
from cloud.patrols.tables import PatrolCheckpoint

__all__ = [
    "CheckpointSpec",
    "TagIndex",
    "Tap",
    "assurance_of",
    "enrol",
    "identify",
    "tag_keys",
]


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
    for column, value, name in clauses:
        if value is not None and session.scalar(select(PatrolCheckpoint.id).where(
                PatrolCheckpoint.site_id == site, column == value)) is not None:
            raise PatrolConflict(f"{name} {value!r} is already enrolled on site {site!r}")


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


@dataclass
class TagIndex:
    """The checkpoints a batch of taps names (by code, UID or QR text) and their SUN keys."""

    by_code: dict[str, PatrolCheckpoint] = field(default_factory=dict)
    by_uid: dict[str, PatrolCheckpoint] = field(default_factory=dict)
    by_qr: dict[str, PatrolCheckpoint] = field(default_factory=dict)
    _keys: dict[int, TagKeys] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, site: str, taps: Iterable[Tap]) -> TagIndex:
        """One query (``SELECT … FOR UPDATE`` in id order) for every checkpoint ``taps``
        could name on ``site``: they stay locked until the transaction ends."""
        codes: set[str] = set()
        uids: set[str] = set()
        qrs: set[str] = set()
        for tap in taps:
            if tap.method is TagType.SUN and tap.checkpoint:
                codes.add(tap.checkpoint)
            elif tap.method is TagType.UID:
                try:
                    uids.add(_uid(tap.uid, "uid", (4, 7, 10)))
                except PatrolInvalid:
                    continue  # identify() rejects it with the reason
            elif tap.method is TagType.QR:
                qrs.add(tap.qr or "")
        index = cls()
        if not (codes or uids or qrs):
            return index
        named = (PatrolCheckpoint.site_id == site,
                 or_(PatrolCheckpoint.code.in_(codes), PatrolCheckpoint.tag_uid.in_(uids),
                     PatrolCheckpoint.qr_code.in_(qrs)))
        if session.get_bind().dialect.name == "sqlite":
            # SQLite ignores FOR UPDATE and opens a transaction only at its first write: a
            # write that changes nothing takes the database's write lock now, so the rows
            # read next stay current until commit (another batch waits, busy timeout).
            session.execute(update(PatrolCheckpoint).where(*named)
                            .values(last_counter=PatrolCheckpoint.last_counter)
                            .execution_options(synchronize_session=False))
        rows = session.scalars(select(PatrolCheckpoint).where(*named)
                               .order_by(PatrolCheckpoint.id).with_for_update())
        for row in rows:
            index.by_code[row.code] = row
            if row.tag_uid is not None:
                index.by_uid[row.tag_uid] = row
            if row.qr_code is not None:
                index.by_qr[row.qr_code] = row
        return index

    def keys(self, rt: PatrolRuntime, row: PatrolCheckpoint) -> TagKeys:
        """The checkpoint's SUN keys, opened or derived once per batch."""
        found = self._keys.get(row.id)
        if found is None:
            found = self._keys[row.id] = tag_keys(rt, row)
        return found


def _identify_sun(index: TagIndex, rt: PatrolRuntime, site: str,
                  tap: Tap) -> tuple[PatrolCheckpoint, SunReading]:
    if not tap.checkpoint:
        raise UnknownTag("a SUN tap must name its checkpoint (the tag URL's path)")
    row = index.by_code.get(tap.checkpoint)
    if row is None or not row.active or row.tag_type != TagType.SUN:
        raise UnknownTag(f"no active SUN checkpoint {tap.checkpoint!r} on site {site!r}")
    try:
        picc = parse_hex(tap.picc_data or "", 16, "picc_data")
        cmac = parse_hex(tap.cmac or "", 8, "cmac")
        mac_input = b""
        if tap.enc:
            parse_hex(tap.enc, None, "enc")
            mac_input = f"{tap.enc.upper()}&cmac=".encode("ascii")
        keys = index.keys(rt, row)
        reading = verify_sun(meta_key=keys.meta_read, file_key=keys.file_read,
                             picc_data=picc, cmac=cmac, mac_input=mac_input)
        if reading.uid_hex != row.tag_uid:
            raise BadMac(f"the tap carries UID {reading.uid_hex}, not the enrolled tag's")
        check_fresh(reading.counter, row.last_counter)
    except TapRejected as exc:
        raise _rejected(exc, row) from None
    return row, reading


def identify(index: TagIndex, rt: PatrolRuntime, site: str,
             tap: Tap) -> tuple[PatrolCheckpoint, SunReading | None]:
    """The checkpoint of an authentic tap (SUN: its counter is then recorded as used), or
    :class:`TapRejected` (with ``checkpoint_id`` when the checkpoint is known). ``index``
    holds the checkpoints of the tap's batch (:meth:`TagIndex.load`)."""
    if tap.method is TagType.SUN:
        row, reading = _identify_sun(index, rt, site, tap)
        row.last_counter = reading.counter
        return row, reading
    if tap.method is TagType.UID:
        try:
            uid = _uid(tap.uid, "uid", (4, 7, 10))
        except PatrolInvalid as exc:
            raise UnknownTag(str(exc)) from None
        found = index.by_uid.get(uid)
        if found is not None and found.tag_type == TagType.SUN:
            raise _rejected(UnknownTag(
                f"UID {uid} belongs to a SUN tag: its bare UID proves nothing"), found)
    else:
        found = index.by_qr.get(tap.qr or "")
    if found is None or not found.active or found.tag_type != tap.method:
        raise UnknownTag(f"no active {tap.method.value} checkpoint for this tap")
    return found, None
