"""Beat's periodic work on the ``ops`` queue: the reconciliation sweep and the recovery of dead runs."""

from __future__ import annotations

from celery import shared_task

from service import resources
from service.operations import recover_dead_runs, sweep
from tasks.base import TASK_OPTIONS, CopycatTask


@shared_task(name="copycat.ops.reconcile", base=CopycatTask, **TASK_OPTIONS)
def reconcile(self: CopycatTask) -> dict[str, int]:
    """The periodic sweep (Celery beat)."""
    return sweep(resources.current())


@shared_task(name="copycat.ops.recover", base=CopycatTask, **TASK_OPTIONS)
def recover(self: CopycatTask) -> int:
    """Queue again every video and query job whose run stopped renewing its lease (beat, every
    ``COPYCAT_BROKER__RECOVER_INTERVAL_S``): a worker killed mid-video costs about one lease, not an hour."""
    return recover_dead_runs(resources.current())
