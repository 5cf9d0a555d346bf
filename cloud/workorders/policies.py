"""SLA policies as stored: a site's overrides of :data:`~cloud.workorders.sla.DEFAULT_TERMS`.

Reading gives the terms a site works under (defaults merged with its own rows, each
marked with where it came from); writing sets or removes one site row and is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.alarms.commits import transaction_memo
from cloud.alarms.lookups import memoized
from cloud.db.audit import record_audit
from cloud.workorders.errors import InvalidInput, NotFound
from cloud.workorders.sla import DEFAULT_TERMS, WILDCARD, SlaTerms
from cloud.workorders.states import PRIORITIES
from cloud.workorders.tables import SlaPolicy
from device_profiles.schema import WorkOrderCategory

__all__ = [
    "CATEGORIES",
    "PolicyRow",
    "check_category",
    "check_priority",
    "delete_site_terms",
    "policy_table",
    "set_site_terms",
    "site_terms",
]

_TERMS: Final = "sla_site_terms"
CATEGORIES: Final = tuple(c.value for c in WorkOrderCategory)
"""Work-order categories: the trades alarms name in device profiles."""


def check_category(category: str, *, wildcard: bool = False, field: str = "category") -> str:
    if category in CATEGORIES or (wildcard and category == WILDCARD):
        return category
    known = ", ".join(CATEGORIES + ((WILDCARD,) if wildcard else ()))
    raise InvalidInput(field, f"unknown category {category!r}; one of: {known}")


def check_priority(priority: str, *, field: str = "priority") -> str:
    if priority in PRIORITIES:
        return priority
    raise InvalidInput(field, f"unknown priority {priority!r}; one of: {', '.join(PRIORITIES)}")


def _terms(row: SlaPolicy) -> SlaTerms:
    return SlaTerms(row.respond_minutes, row.arrive_minutes, row.resolve_minutes,
                    row.follow_up_minutes)


def site_terms(session: Session, site: str) -> dict[tuple[str, str], SlaTerms]:
    """The site's own rows, ``(category, priority) → terms`` (read once per transaction;
    setting or deleting a row forgets what was read)."""
    def load() -> dict[tuple[str, str], SlaTerms]:
        rows = session.scalars(select(SlaPolicy).where(SlaPolicy.site_id == site))
        return {(row.category, row.priority): _terms(row) for row in rows}

    return dict(memoized(session, (_TERMS, site), load))


@dataclass(frozen=True)
class PolicyRow:
    category: str
    priority: str
    terms: SlaTerms
    origin: str
    """``site`` (the site's own row) or ``default``."""


def policy_table(session: Session, site: str) -> list[PolicyRow]:
    """Every default row and every site row, the site's replacing defaults of the same key."""
    own = site_terms(session, site)
    rows = {key: PolicyRow(key[0], key[1], terms, "default")
            for key, terms in DEFAULT_TERMS.items()}
    rows.update({key: PolicyRow(key[0], key[1], terms, "site") for key, terms in own.items()})
    order = {p: n for n, p in enumerate(PRIORITIES)}
    return sorted(rows.values(),
                  key=lambda r: (order[r.priority], r.category != WILDCARD, r.category))


def set_site_terms(
    session: Session, site: str, category: str, priority: str, terms: SlaTerms, *,
    user: str | None, now_ms: int,
) -> PolicyRow:
    """Create or replace the site's row for ``(category, priority)``."""
    check_category(category, wildcard=True)
    check_priority(priority)
    row = session.scalars(select(SlaPolicy).where(
        SlaPolicy.site_id == site, SlaPolicy.category == category,
        SlaPolicy.priority == priority)).one_or_none()
    if row is None:
        row = SlaPolicy(site_id=site, category=category, priority=priority)
        session.add(row)
    row.respond_minutes = terms.respond_minutes
    row.arrive_minutes = terms.arrive_minutes
    row.resolve_minutes = terms.resolve_minutes
    row.follow_up_minutes = terms.follow_up_minutes
    row.updated_ms = now_ms
    row.updated_by = user
    session.flush()
    transaction_memo(session).pop((_TERMS, site), None)
    record_audit(session, ts_ms=now_ms, user=user, action="sla_policy.set", site=site,
                 target=f"{category}/{priority}",
                 detail={"respond_minutes": terms.respond_minutes,
                         "arrive_minutes": terms.arrive_minutes,
                         "resolve_minutes": terms.resolve_minutes,
                         "follow_up_minutes": terms.follow_up_minutes})
    return PolicyRow(category, priority, terms, "site")


def delete_site_terms(
    session: Session, site: str, category: str, priority: str, *, user: str | None, now_ms: int
) -> None:
    """Remove the site's row (the default applies again); 404 if there is none."""
    row = session.scalars(select(SlaPolicy).where(
        SlaPolicy.site_id == site, SlaPolicy.category == category,
        SlaPolicy.priority == priority)).one_or_none()
    if row is None:
        raise NotFound("sla_policy", f"{category}/{priority}")
    session.delete(row)
    session.flush()
    transaction_memo(session).pop((_TERMS, site), None)
    record_audit(session, ts_ms=now_ms, user=user, action="sla_policy.delete", site=site,
                 target=f"{category}/{priority}")
