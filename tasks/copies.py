"""Copy detection on upload (``copycat.copies.detect``, queue ``query``): ``service.copies.detect_copies``."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from service import queue, resources
from service.copies import detect_copies
from tasks.base import TASK_OPTIONS, EnrichmentTask


@shared_task(name=queue.DETECT_COPIES, base=EnrichmentTask, **TASK_OPTIONS)
def detect(self: EnrichmentTask, video_id: str) -> dict[str, Any]:
    """Find what the indexed video shares with the library; a failure is logged, the video stays indexed."""
    return detect_copies(resources.current(), video_id)
