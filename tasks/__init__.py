"""Celery wiring: the app, queues, task definitions, signal handlers and settings."""
