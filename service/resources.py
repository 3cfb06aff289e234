"""The one owner of per-process resources, built from ``Settings``.

Everything a task or a command needs from the outside world (database engine, object store, embedder,
Milvus collections, the enabled signals with their models, localiser, the Celery app) is created on first use
by the process's ``Resources`` and released by its ``close()``. Nothing else in the project caches a
connection or a model. Celery forks worker processes after the parent has imported everything: a forked
child calls ``after_fork()`` and opens its own connections (and CUDA context) when it first needs them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError, OperationalError

from db.migrate import upgrade
from db.session import create_db_engine, session_scope
from service.settings import Settings, load_settings
from tasks.app import create_app
from workers.decode import CoreShare, DecodeOptions
from workers.embed import create_embedder
from workers.errors import DatabaseUnavailable
from workers.localise import TemporalNetwork
from workers.signals.base import Signal, SignalStores
from workers.signals.registry import enabled_signals, signal_type
from workers.stores.arrays import BucketArrays
from workers.stores.collections import MilvusCollections
from workers.stores.objects import LocalObjectStore, ObjectStore, S3ObjectStore
from workers.stores.vectors import VectorIndex
from workers.stores.videovectors import VideoVectorIndex

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from workers.embed.base import FrameEmbedder

log = logging.getLogger(__name__)

_RESOURCES = ("engine", "objects", "embedder", "frame_index", "stores", "signals", "localiser", "decode_options")


class shared_property(cached_property):  # noqa: N801 - a decorator, named like the one it extends
    """``cached_property`` built once even when threads ask at the same time (Celery's thread pool, parallel
    ingest): building takes the instance's lock; once built, reads find the value without it."""

    def __get__(self, instance: object, owner: type | None = None) -> object:
        if instance is None:
            return self
        with instance._build_lock:  # type: ignore[attr-defined]
            return super().__get__(instance, owner)


class Resources:
    """Lazily built resources of one process; ``close()`` releases them (and ``after_fork()`` forgets them)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._build_lock = threading.RLock()
        self._closers: list[Callable[[], None]] = []
        self.embedded_runner: Callable[[Callable[[], object]], None] | None = None
        self.progress_listeners: dict[str, Callable[[int, int], None]] = {}
        """Embedded mode: by video id, who draws that video's progress (the command line's bar)."""

    def run_tasks_with(self, runner: Callable[[Callable[[], object]], None] | None) -> None:
        """Embedded mode: hand each queued task to ``runner`` instead of running it inside the call that queues it.

        The HTTP API passes its background thread, so a request answers at once; None restores the default.
        """
        self.embedded_runner = runner

    def on_close(self, closer: Callable[[], None]) -> None:
        """Have ``close()`` call ``closer`` first: for helpers that use these resources from their own thread
        (embedded webhook deliveries), which must stop before the connections go."""
        with self._build_lock:
            self._closers.append(closer)

    @shared_property
    def app(self) -> Celery:
        """The Celery app of these settings, made the current app so task calls go through it. In embedded mode
        every task module is imported here: this process runs whatever any task queues by name."""
        app = create_app(self.settings)
        app.set_current()
        app.set_default()
        if self.settings.embedded:
            app.loader.import_default_modules()
        return app

    @shared_property
    def engine(self) -> Engine:
        """The database engine, with the schema migrated to the latest revision."""
        engine = create_db_engine(self.settings.database_url, self.settings.database.pool_size)
        try:
            upgrade(engine)
        except (OperationalError, DBAPIError) as exc:
            engine.dispose()
            raise DatabaseUnavailable(f"database unavailable: {exc.orig or exc}") from exc
        return engine

    @shared_property
    def objects(self) -> ObjectStore:
        """The object store with Copycat's buckets in place."""
        cfg = self.settings
        store: ObjectStore
        if cfg.s3.endpoint:
            store = S3ObjectStore(cfg.s3.endpoint, cfg.s3.access_key, cfg.s3.secret_key, secure=cfg.s3.secure,
                                  region=cfg.s3.region)
        else:
            store = LocalObjectStore(cfg.objects_dir)
        for bucket in (cfg.s3.uploads_bucket, cfg.s3.queries_bucket, cfg.s3.matrices_bucket):
            store.ensure_bucket(bucket)
        return store

    @shared_property
    def embedder(self) -> FrameEmbedder:
        cfg = self.settings.embed
        return create_embedder(cfg.model, model_path=cfg.model_path, model_name=cfg.model_name, arch=cfg.arch,
                               dim=cfg.dim, input_size=cfg.input_size, resize=cfg.resize,
                               batch_size=cfg.batch_size, device=cfg.device, threads=cfg.threads)

    @shared_property
    def frame_index(self) -> VectorIndex:
        """The Milvus collection of the configured model's frame vectors."""
        return self._frame_collection(self.embedder.name, self.embedder.dim)

    def _frame_collection(self, name: str, dim: int) -> VectorIndex:
        m = self.settings.milvus
        return VectorIndex(self.milvus_uri(), name, dim, token=m.token, prefix=m.collection_prefix,
                           index=self.settings.index_spec(), insert_batch=m.insert_batch,
                           search_batch=m.search_batch, grouping=m.grouping, merge_cosine=m.merge_cosine)

    def _video_collection(self, name: str, dim: int) -> VideoVectorIndex:
        m = self.settings.milvus
        return VideoVectorIndex(self.milvus_uri(), name, dim, token=m.token, prefix=m.collection_prefix,
                                index=self.settings.index_spec())

    @shared_property
    def stores(self) -> SignalStores:
        """Where the signals keep what they store: arrays in the matrices bucket, Milvus collections."""
        return SignalStores(BucketArrays(self.objects, self.settings.s3.matrices_bucket),
                            MilvusCollections(lambda: self.frame_index, self._frame_collection, self._video_collection))

    @shared_property
    def signals(self) -> list[Signal[Any]]:
        """The signals the settings switch on (``workers.signals.registry``), primary first."""
        return enabled_signals(self)

    def signal(self, name: str) -> Signal[Any]:
        """The signal ``name``, enabled or not (removal and fsck also clean up after a signal switched off)."""
        found = next((s for s in self.signals if s.name == name), None)
        return found if found is not None else signal_type(name).create(self)

    @shared_property
    def localiser(self) -> TemporalNetwork:
        """The temporal network with the settings' parameters (``Settings.tn_params``)."""
        return TemporalNetwork(self.settings.tn_params())

    @shared_property
    def decode_options(self) -> DecodeOptions:
        """How this process decodes (``Settings.decode_options``), with one share of its cores for every video
        it decodes at once (parallel ingest, a thread pool worker)."""
        return replace(self.settings.decode_options(), cores=CoreShare())

    def session(self) -> AbstractContextManager[Session]:
        """A transaction on this process's database."""
        return session_scope(self.engine)  # type: ignore[return-value]

    def warm_up(self) -> None:
        """Build everything an ingest uses, now (``start_warm_up`` does it beside the first video; the ingest
        bench measures it as the start-up stage): database, object store, Celery app, model, collection."""
        _ = self.engine, self.objects, self.app
        self.embedder.load()
        for signal in self.signals:
            signal.warm_up()
        self.frame_index.ensure_collection()

    def start_warm_up(self) -> threading.Thread:
        """``warm_up`` on a background thread, so that start-up overlaps the first video: its upload,
        registration and decode go on while the model loads and the collection opens (opening Milvus Lite
        takes seconds), and whoever needs one of them first waits for it. A failure is only logged here: the
        ingest path meets it again where it uses that resource, and fails the video with the reason."""
        def warm() -> None:
            try:
                self.warm_up()
            except Exception as exc:  # noqa: BLE001 - raised again, with its context, where it is used
                log.debug("warm-up failed (the ingest path will report it): %s", exc)

        thread = threading.Thread(target=warm, name="warm-up", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """Release every connection this process opened; the object must not be used afterwards."""
        with self._build_lock:
            closers, self._closers = self._closers, []
        for closer in reversed(closers):
            closer()
        if "stores" in self.__dict__:
            self.__dict__["stores"].vectors.close()
        if "frame_index" in self.__dict__:
            self.__dict__["frame_index"].close()
        if "engine" in self.__dict__:
            self.__dict__["engine"].dispose()
        if "app" in self.__dict__:
            self.__dict__.pop("app").close()
        self._forget()

    def after_fork(self) -> None:
        """In a forked child: drop the parent's connections without touching them (the parent still uses
        them); the Celery app stays, the worker runs on it."""
        if "engine" in self.__dict__:
            self.__dict__["engine"].dispose(close=False)
        self._build_lock = threading.RLock()  # another thread of the parent may have held it at the fork
        self._closers = []  # the parent's helper threads do not exist here
        self._forget()

    def _forget(self) -> None:
        for name in _RESOURCES:
            self.__dict__.pop(name, None)

    def milvus_uri(self) -> str:
        uri = self.settings.milvus_uri
        if "://" not in uri:
            self.settings.home.mkdir(parents=True, exist_ok=True)
        return uri


_current: Resources | None = None


def current() -> Resources:
    """This process's resources, built from the environment on first use: for the process's entry points
    only (the Celery worker, the ``copycat`` command, the API factory), which pass them on explicitly."""
    global _current
    if _current is None:
        _current = Resources(load_settings())
    return _current


def reset() -> None:
    """Close this process's resources; the next ``current()`` reads the environment again (tests, CLI)."""
    global _current
    if _current is not None:
        _current.close()
    _current = None


def use(settings: Settings) -> Resources:
    """Make ``settings`` this process's (the HTTP API is built from a settings object); returns the resources."""
    global _current
    if _current is None or _current.settings is not settings:
        reset()
        _current = Resources(settings)
    return _current


def session() -> Session:
    """A transaction on this process's database (a context manager), for the task modules; code that is
    handed its ``Resources`` uses ``res.session()``."""
    return session_scope(current().engine)  # type: ignore[return-value]
