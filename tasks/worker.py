"""Entry point for the Celery command line: ``celery -A tasks.worker worker -Q embed,index``."""

from tasks.app import get_app

app = get_app()
