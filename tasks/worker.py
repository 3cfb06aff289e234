"""Entry point for the Celery command line: ``celery -A tasks.worker worker -Q embed,index``.

Builds this process's resources from the environment and registers every task and signal handler on
their Celery app.
"""

import tasks.backfill  # noqa: F401
import tasks.copies  # noqa: F401  (each import registers that module's tasks)
import tasks.deliveries  # noqa: F401
import tasks.fsck  # noqa: F401
import tasks.ingest  # noqa: F401
import tasks.maintenance  # noqa: F401
import tasks.query  # noqa: F401
import tasks.signals  # noqa: F401  (connects the signal handlers)
from service import resources

app = resources.current().app
