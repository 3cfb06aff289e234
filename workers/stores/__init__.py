"""Adapters to storage services, one job each: objects (S3 or a folder) and vectors (Milvus)."""
