"""Photos of work orders: bytes in a directory, metadata in the database.

Only JPEG, PNG and WebP are taken, and the bytes must start like the declared type (a
``.exe`` sent as ``image/jpeg`` is refused); the size limit is checked before anything is
written. Files are named by their SHA-256 (``ab/abcdef….jpg``), so the same photo sent
twice is stored once.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.workorders.errors import NotFound, PhotoRejected
from cloud.workorders.history import record_event
from cloud.workorders.tables import WorkOrder, WorkOrderPhoto

__all__ = ["DEFAULT_MAX_BYTES", "PHOTO_TYPES", "PhotoStore", "get_photo", "photos_of"]

DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
PHOTO_TYPES: Final[Mapping[str, str]] = {"image/jpeg": "jpg", "image/png": "png",
                                         "image/webp": "webp"}
_SAFE_NAME = re.compile(r"[^\w.\- ]+")


def _looks_like(content_type: str, data: bytes) -> bool:
    if content_type == "image/jpeg":
        return data.startswith(b"\xff\xd8\xff")
    if content_type == "image/png":
        return data.startswith(b"\x89PNG\r\n\x1a\n")
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


class PhotoStore:
    """Photo files under ``directory`` (created on first use)."""

    def __init__(self, directory: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def check(self, content_type: str, size: int) -> str:
        """The normalised content type, if a photo of this type and size is acceptable."""
        kind = content_type.split(";")[0].strip().lower()
        if kind not in PHOTO_TYPES:
            raise PhotoRejected(415, "unsupported_media_type",
                                f"photos must be {', '.join(PHOTO_TYPES)}; got {kind or 'none'}")
        if size > self.max_bytes:
            raise PhotoRejected(413, "payload_too_large",
                                f"a photo may have at most {self.max_bytes} bytes")
        if size == 0:
            raise PhotoRejected(415, "unsupported_media_type", "the photo is empty")
        return kind

    def path_of(self, stored_name: str) -> Path:
        return self.directory / stored_name[:2] / stored_name

    def write(self, content_type: str, data: bytes) -> tuple[str, str]:
        """Store ``data``; returns ``(stored_name, sha256)``."""
        kind = self.check(content_type, len(data))
        if not _looks_like(kind, data):
            raise PhotoRejected(415, "unsupported_media_type",
                                f"the content is not a {PHOTO_TYPES[kind].upper()} image")
        digest = hashlib.sha256(data).hexdigest()
        stored = f"{digest}.{PHOTO_TYPES[kind]}"
        path = self.path_of(stored)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return stored, digest

    def attach(self, session: Session, order: WorkOrder, *, filename: str, content_type: str,
               data: bytes, user: str | None, now_ms: int) -> WorkOrderPhoto:
        """Store the photo and record it on ``order`` (history and audit too)."""
        stored, digest = self.write(content_type, data)
        name = _SAFE_NAME.sub("_", filename).strip()[:255] or stored
        photo = WorkOrderPhoto(work_order_id=order.id, filename=name,
                               content_type=content_type.split(";")[0].strip().lower(),
                               size=len(data), sha256=digest, stored_name=stored,
                               username=user, uploaded_ms=now_ms)
        session.add(photo)
        session.flush()
        record_event(session, order, "photo", user=user, now_ms=now_ms,
                     detail={"photo_id": photo.id, "filename": name, "size": len(data)})
        return photo

    def read(self, photo: WorkOrderPhoto) -> bytes:
        try:
            return self.path_of(photo.stored_name).read_bytes()
        except FileNotFoundError:
            raise NotFound("photo", photo.id) from None


def photos_of(session: Session, work_order_id: int) -> list[WorkOrderPhoto]:
    return list(session.scalars(select(WorkOrderPhoto)
                                .where(WorkOrderPhoto.work_order_id == work_order_id)
                                .order_by(WorkOrderPhoto.id)))


def get_photo(session: Session, work_order_id: int, photo_id: int) -> WorkOrderPhoto:
    photo = session.get(WorkOrderPhoto, photo_id)
    if photo is None or photo.work_order_id != work_order_id:
        raise NotFound("photo", photo_id)
    return photo
