"""Beat's consistency check (``copycat.ops.fsck``): ``service.fsck.check`` in report mode."""

from __future__ import annotations

from celery import shared_task

from service import resources
from service.fsck import check
from tasks.base import TASK_OPTIONS, CopycatTask


@shared_task(name="copycat.ops.fsck", base=CopycatTask, **TASK_OPTIONS)
def scheduled_check(self: CopycatTask) -> dict[str, int]:
    """Beat's consistency check, in report mode (counts recorded and logged; nothing changed)."""
    return check(resources.current(), repair=False).findings.counts()
