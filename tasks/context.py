"""Per-process resources built from the settings: database, object store, vector index, models.

Each is created on first use inside the process that needs it (Celery forks worker processes; connections
and CUDA contexts must not cross a fork) and cached until ``reset()``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError, OperationalError

from db.migrate import upgrade
from db.session import get_engine
from tasks.settings import Settings, get_settings
from workers.embed import create_embedder
from workers.errors import DatabaseUnavailable
from workers.stores.objects import LocalObjectStore, ObjectStore, S3ObjectStore

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from workers.embed.base import FrameEmbedder
    from workers.localise import Localizer
    from workers.stores.vectors import VectorIndex

log = logging.getLogger(__name__)


def settings() -> Settings:
    return get_settings()


@cache
def engine() -> Engine:
    """The database engine, with the schema migrated to the latest revision."""
    cfg = settings()
    url = cfg.database_url
    try:
        upgrade(url)
    except (OperationalError, DBAPIError) as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc.orig or exc}") from exc
    return get_engine(url, cfg.database.pool_size)


@cache
def objects() -> ObjectStore:
    """The object store with Copycat's buckets in place."""
    cfg = settings()
    store: ObjectStore
    if cfg.s3.endpoint:
        store = S3ObjectStore(cfg.s3.endpoint, cfg.s3.access_key, cfg.s3.secret_key, secure=cfg.s3.secure,
                              region=cfg.s3.region)
    else:
        store = LocalObjectStore(cfg.objects_dir)
    for bucket in (cfg.s3.uploads_bucket, cfg.s3.queries_bucket, cfg.s3.matrices_bucket):
        store.ensure_bucket(bucket)
    return store


@cache
def embedder() -> FrameEmbedder:
    cfg = settings().embed
    return create_embedder(cfg.model, model_path=cfg.model_path, model_name=cfg.model_name, arch=cfg.arch,
                           dim=cfg.dim, input_size=cfg.input_size, resize=cfg.resize, batch_size=cfg.batch_size,
                           device=cfg.device, threads=cfg.threads)


@cache
def vectors() -> VectorIndex:
    """The Milvus collection of the configured model."""
    from workers.stores.vectors import VectorIndex

    cfg = settings()
    model = embedder()
    m = cfg.milvus
    uri = cfg.milvus_uri
    if "://" not in uri:
        cfg.home.mkdir(parents=True, exist_ok=True)
    return VectorIndex(uri, model.name, model.dim, token=m.token, prefix=m.collection_prefix,
                       index_type=m.index_type, hnsw_m=m.hnsw_m, hnsw_ef_construction=m.hnsw_ef_construction,
                       search_ef=m.search_ef, insert_batch=m.insert_batch, search_batch=m.search_batch)


@cache
def localizer() -> Localizer:
    from workers.localise import TemporalNetwork

    cfg = settings().localise
    return TemporalNetwork(tn_max_step=cfg.tn_max_step, tn_top_k=cfg.tn_top_k, max_path=cfg.max_path,
                           min_sim=cfg.min_sim, min_length=cfg.min_length, max_iou=cfg.max_iou, trim=cfg.trim,
                           merge_gap=cfg.merge_gap, split_jump=cfg.split_jump, device=cfg.device)


def reset() -> None:
    """Forget every cached resource (after a fork, or when tests change the settings)."""
    if vectors.cache_info().currsize:
        vectors().close()
    for fn in (engine, objects, embedder, vectors, localizer):
        fn.cache_clear()
    get_settings.cache_clear()
    get_engine.cache_clear()
    from tasks import dns
    from tasks.app import get_app

    dns.reset()
    get_app.cache_clear()


@contextmanager
def scratch_file(name: str) -> Iterator[Path]:
    """A path in a private temporary folder for a downloaded object; the folder, with anything a broken
    download left beside the file (the S3 SDK's ``.part`` files), is removed afterwards whatever happens."""
    root = settings().scratch_dir
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=root))
    try:
        yield folder / f"input{Path(name).suffix[:16]}"
    finally:
        shutil.rmtree(folder, ignore_errors=True)
