"""Log set-up shared by workers and the command line: which libraries to keep quiet."""

from __future__ import annotations

import logging

NOISY_LIBRARIES = ("urllib3", "pymilvus", "milvus_lite", "alembic", "faiss")
QUEUE_LIBRARIES = ("celery", "kombu")
"""A worker's own log is Celery's; a command line client only needs its warnings."""


def quiet_libraries(level: int = logging.WARNING, *, client: bool = False) -> None:
    """Libraries log at ``level`` or above (never below WARNING): their chatter hides the operator's lines."""
    for name in NOISY_LIBRARIES + (QUEUE_LIBRARIES if client else ()):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    # Milvus Lite's embedded gRPC server logs pymilvus's optional AllocTimestamp probe as an error.
    logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
