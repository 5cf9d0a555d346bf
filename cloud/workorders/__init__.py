"""Work orders: creation by policy or by hand, transitions by role, SLA clocks and breaches,
follow-up, photos.

Other modules create work orders with :func:`create_work_order` (patrol findings pass
``source="patrol"``). The alarm service takes
:class:`cloud.workorders.from_alarms.AlarmWorkOrders` as an observer and
:class:`cloud.workorders.from_alarms.MaintenanceWorkCoverage` as its maintenance coverage;
the service schedules :func:`cloud.workorders.jobs.run_periodic`. Those two modules use the
asset register and maintenance plans, so they are imported from their own paths.
"""

from cloud.workorders.breaches import Escalation, LogEscalation, check_sla
from cloud.workorders.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    NotPermitted,
    PhotoRejected,
    TransitionRefused,
    WorkOrderError,
)
from cloud.workorders.photos import PhotoStore
from cloud.workorders.service import (
    add_comment,
    attach_alarm,
    create_work_order,
    get_work_order,
    record_follow_up,
)
from cloud.workorders.states import Actor, Priority, Source, State, WorkAction
from cloud.workorders.tables import WorkOrder
from cloud.workorders.transitions import transition

__all__ = [
    "Actor",
    "Conflict",
    "Escalation",
    "InvalidInput",
    "LogEscalation",
    "NotFound",
    "NotPermitted",
    "PhotoRejected",
    "PhotoStore",
    "Priority",
    "Source",
    "State",
    "TransitionRefused",
    "WorkAction",
    "WorkOrder",
    "WorkOrderError",
    "add_comment",
    "attach_alarm",
    "check_sla",
    "create_work_order",
    "get_work_order",
    "record_follow_up",
    "transition",
]
