"""What every Copycat collection in Milvus shares: connection, creation, model check, error mapping.

A collection belongs to one model. It records the model and dimension that built it (collection
properties) and refuses vectors from any other. ``uri`` is a Milvus server (``http://host:19530``) or a
Milvus Lite file; Milvus Lite lets one process open a file, and several worker processes share it through
``milvus-lite server`` and its URL.

Servers differ by version (2.3 to 2.6 are supported): ``milvus_features`` turns the version a server reports
into what it can do, and collections are created accordingly (the VARCHAR scalar index is ``Trie`` on 2.3,
``INVERTED`` from 2.4). Older servers are refused with ``UnsupportedMilvusVersion``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from workers.errors import ModelMismatch, UnsupportedMilvusVersion, VectorStoreUnavailable

log = logging.getLogger(__name__)

MODEL_PROPERTY = "copycat.model"
DIM_PROPERTY = "copycat.dim"
VIDEO_ID_MAX = 64
GRPC_OPTIONS = {"grpc.keepalive_permit_without_calls": 0}
"""pymilvus pings idle connections every 10 s; gRPC servers with default settings (the Milvus Lite server)
allow that once per 5 minutes and answer with GOAWAY "too many pings", after which the shared connection
fails. Pinging only during calls keeps dead-peer detection where it matters."""
LITE_PREFIX = "milvus_lite"  # Milvus Lite answers get_server_version() with e.g. "milvus_lite-3.2.2"
OLDEST_SUPPORTED = (2, 3)
SEARCH_MAX_NQ = 16384
"""Query vectors one search request may carry (Milvus's default ``nq`` limit, 2.3 to 2.6)."""
SEARCH_MAX_BYTES = 64 * 2**20
"""Largest search request Milvus accepts by default (64 MB); answers are kept under it too."""


@dataclass(frozen=True)
class MilvusFeatures:
    """What one Milvus server can do, read from the version it reports (measured on 2.3.5 and Lite 3.2.2)."""

    version: str  # as reported: "v2.3.5-lite" (the PyPI standalone server), "v2.4.13", "milvus_lite-3.2.2"
    lite: bool  # the embedded Milvus Lite engine: searches unsealed rows slowly, so flush before searching
    varchar_index: str  # scalar index for VARCHAR filter fields: "Trie" on 2.3, "INVERTED" from 2.4 and Lite
    upsert: bool  # insert-or-replace by primary key (2.3)
    delete_by_expression: bool  # delete with any boolean filter, not only "pk in [...]" (2.3)
    grouping_search: bool  # search(group_by_field=...): 2.4 and Lite; 2.3.5 silently ignores the parameter
    float16_vectors: bool  # FLOAT16_VECTOR fields: 2.4; 2.3.5 accepts the type but searches return ~0 scores

    @property
    def supported(self) -> bool:
        """Copycat writes with upsert and removes frames by expression, so it needs both."""
        return self.upsert and self.delete_by_expression


def milvus_features(version: str) -> MilvusFeatures:
    """Features of the server that reports ``version``; refuses one older than 2.3 or one it cannot read.

    Versions newer than the newest known (2.6) are assumed to keep every feature.
    """
    if version.startswith(LITE_PREFIX):
        return MilvusFeatures(version, lite=True, varchar_index="INVERTED", upsert=True, delete_by_expression=True,
                              grouping_search=True, float16_vectors=False)
    match = re.search(r"(\d+)\.(\d+)", version)
    if match is None:
        raise UnsupportedMilvusVersion(f"cannot read the Milvus version {version!r}; Copycat supports Milvus "
                                       "2.3 to 2.6 and Milvus Lite")
    release = (int(match.group(1)), int(match.group(2)))
    features = MilvusFeatures(version, lite=False, varchar_index="INVERTED" if release >= (2, 4) else "Trie",
                              upsert=release >= (2, 3), delete_by_expression=release >= (2, 3),
                              grouping_search=release >= (2, 4), float16_vectors=release >= (2, 4))
    if not features.supported:
        oldest = ".".join(map(str, OLDEST_SUPPORTED))
        raise UnsupportedMilvusVersion(f"Milvus {version} is too old: Copycat needs Milvus {oldest} or newer "
                                       "(upsert and delete by expression); upgrade the server or use Milvus Lite")
    return features


@dataclass(frozen=True)
class IndexSpec:
    """The vector index a collection is built with and how it is searched; the defaults are the ones measured
    in docs/performance.md, "Milvus server" (HNSW M=16: recall@64 0.955 at ef 256 on 1M frames)."""

    index_type: str = "HNSW"  # HNSW, IVF_FLAT, IVF_SQ8 or FLAT (exhaustive)
    hnsw_m: int = 16  # graph degree
    hnsw_ef_construction: int = 200  # build-time breadth
    search_ef: int = 256  # HNSW search breadth, raised to the search limit where that is larger
    ivf_nlist: int = 1024  # IVF clusters (about 4 * sqrt(frames) is usual)
    ivf_nprobe: int = 32  # IVF clusters searched per query vector

    def build_params(self) -> dict[str, int]:
        """Build parameters; IVF has no default cluster count on 2.3 ("nlist out of range")."""
        if self.index_type == "HNSW":
            return {"M": self.hnsw_m, "efConstruction": self.hnsw_ef_construction}
        if self.index_type in ("IVF_FLAT", "IVF_SQ8"):
            return {"nlist": self.ivf_nlist}
        return {}

    def search_params(self, limit: int) -> dict[str, int]:
        """Search parameters for ``limit`` hits per query vector (HNSW needs ef >= limit). Both kinds are sent,
        whatever ``index_type`` says: a collection keeps the index it was created with, and Milvus ignores
        the other kind's parameter."""
        return {"ef": max(self.search_ef, limit), "nprobe": self.ivf_nprobe}


class MilvusCollection:
    """One model's collection; subclasses declare their fields in ``_add_fields`` and add the data calls."""

    def __init__(self, uri: str, model: str, dim: int, *, token: str = "", prefix: str = "copycat_frames",
                 index: IndexSpec = IndexSpec(), consistency: str = "Strong",
                 search_consistency: str = "Bounded") -> None:
        self.uri = uri
        self.model = model
        self.dim = dim
        self.collection = collection_name(prefix, model)
        self.index = index
        self.consistency, self.search_consistency = consistency, search_consistency
        self._token = token
        self._client = None
        self._ready = False
        self._features: MilvusFeatures | None = None
        self._lock = threading.RLock()  # a process's threads share one connection and create the collection once

    @property
    def client(self):  # noqa: ANN201 - pymilvus.MilvusClient, imported lazily
        if self._client is None:
            from pymilvus import MilvusClient

            with self._lock:
                if self._client is None:
                    self._client = call(lambda: MilvusClient(self.uri, token=self._token,
                                                             grpc_options=GRPC_OPTIONS), f"connect to {self.uri}")
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._ready = False
            self._features = None

    @property
    def features(self) -> MilvusFeatures:
        """What the connected server can do (asked once per connection)."""
        if self._features is None:
            version = str(call(self.client.get_server_version, "get_server_version"))
            try:
                self._features = milvus_features(version)
            except UnsupportedMilvusVersion as exc:
                raise UnsupportedMilvusVersion(f"{self.uri}: {exc}") from None
            log.info("Milvus at %s is %s", self.uri, version)
        return self._features

    def exists(self) -> bool:
        """Whether the collection has been created (without creating it)."""
        return self._ready or bool(call(lambda: self.client.has_collection(self.collection), "has_collection"))

    def ensure_collection(self) -> None:
        """Create the collection on first use; refuse one built by another model or for another size."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            client = self.client
            features = self.features
            if call(lambda: client.has_collection(self.collection), "has_collection"):
                self._check_model(call(lambda: client.describe_collection(self.collection), "describe_collection"))
            else:
                self._create(features)
            self._ensure_indexes(features)
            call(lambda: client.load_collection(self.collection), "load_collection")
            self._ready = True

    def scan_video_ids(self, batch: int = 16384) -> Iterator[str]:
        """The ``video_id`` of every row, in pages of ``batch`` (a full scan: for ``copycat fsck``)."""
        if not self.exists():
            return
        self.ensure_collection()
        pages = call(lambda: self.client.query_iterator(self.collection, batch_size=batch, filter="",
                                                       output_fields=["video_id"], **self.read_options),
                     "query_iterator")
        try:
            while page := call(pages.next, "query_iterator"):
                yield from (row["video_id"] for row in page)
        finally:
            pages.close()

    @property
    def read_options(self) -> dict[str, str]:
        """Options of the bookkeeping reads (counts, gets), which must see every finished write.

        A Milvus server's default, Bounded, serves what its query node has consumed so far: on 2.3.5 a count
        a few ms after a delete still saw the deleted rows. Strong waits for the next time tick instead
        (0.2-0.5 s per call on 2.3.5). Milvus Lite is always up to date.
        """
        return {"consistency_level": self.consistency}

    @property
    def search_options(self) -> dict[str, str]:
        """Options of similarity searches: Bounded by default, so a query does not wait a time tick per call.

        A frame written less than about a second ago (at most Milvus's ``gracefulTime``, 5 s) may be missed or
        still be found; the query path checks candidates against the database anyway. On 2.3.5 at 100k frames,
        ``search`` of 300 query vectors took 0.17-0.18 s Bounded, 0.42 s (one call) to 0.61 s (two) Strong.
        """
        return {"consistency_level": self.search_consistency}

    def search_params(self, limit: int) -> dict:
        return {"metric_type": "IP", "params": self.index.search_params(limit)}

    def _add_fields(self, schema, data_type) -> None:  # noqa: ANN001 - pymilvus schema and DataType
        """Declare the collection's fields; every collection has a float vector field named ``embedding``."""
        raise NotImplementedError

    def _add_indexes(self, index, features: MilvusFeatures) -> None:  # noqa: ANN001 - pymilvus IndexParams
        """Scalar indexes beyond the vector index (none by default), of the types ``features`` offers."""

    def _create(self, features: MilvusFeatures) -> None:
        from pymilvus import DataType

        client = self.client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        self._add_fields(schema, DataType)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self.dim)
        properties = {MODEL_PROPERTY: self.model, DIM_PROPERTY: str(self.dim)}
        try:
            call(lambda: client.create_collection(self.collection, schema=schema, properties=properties,
                                                  consistency_level=self.consistency), "create_collection")
        except VectorStoreUnavailable:
            if not client.has_collection(self.collection):  # not a lost race with another worker
                raise
        log.info("created Milvus collection %s for model %s (dim %d, %s) on Milvus %s", self.collection, self.model,
                 self.dim, self.index.index_type, features.version)

    def _ensure_indexes(self, features: MilvusFeatures) -> None:
        """Every index exists before anyone loads the collection: Milvus 2.3 cannot add one to a loaded
        collection, and a collection loaded with fewer indexes refuses the next load. Several workers may
        get here at once; an index another one created meanwhile counts as created."""
        client = self.client
        wanted = client.prepare_index_params()
        wanted.add_index(field_name="embedding", index_type=self.index.index_type, metric_type="IP",
                         params=self.index.build_params())
        self._add_indexes(wanted, features)
        present = set(call(lambda: client.list_indexes(self.collection), "list_indexes"))
        for param in wanted:
            if param.field_name in present:  # index names default to the field's name
                continue
            single = client.prepare_index_params()
            single.append(param)
            try:
                call(lambda single=single: client.create_index(self.collection, single), "create_index")
            except VectorStoreUnavailable:
                if param.field_name not in call(lambda: client.list_indexes(self.collection), "list_indexes"):
                    raise

    def _check_model(self, description: dict) -> None:
        props = description.get("properties") or {}
        dims = [f["params"].get("dim") for f in description.get("fields", []) if f.get("name") == "embedding"]
        built_by = props.get(MODEL_PROPERTY)
        if built_by and built_by != self.model:
            raise ModelMismatch(f"Milvus collection {self.collection} was built by model {built_by!r}; this worker "
                                f"uses {self.model!r}. Use the same model or another "
                                "COPYCAT_MILVUS__COLLECTION_PREFIX")
        if dims and int(dims[0]) != self.dim:
            raise ModelMismatch(f"Milvus collection {self.collection} holds {dims[0]}-d vectors; model "
                                f"{self.model!r} makes {self.dim}-d vectors")

    def _check_vectors(self, matrix: np.ndarray) -> None:
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ModelMismatch(f"vectors of shape {matrix.shape} do not fit collection {self.collection} "
                                f"(model {self.model!r}, dim {self.dim})")


def check_video_id(video_id: str) -> None:
    """Ids go into filter expressions: only our own id characters are allowed."""
    if not video_id or len(video_id) > VIDEO_ID_MAX or not all(c.isalnum() or c in "-_." for c in video_id):
        raise ValueError(f"invalid video id {video_id!r} (1-{VIDEO_ID_MAX} letters, digits, '-', '_', '.')")


def collection_name(prefix: str, model: str) -> str:
    """Milvus names allow letters, digits and underscores only."""
    safe = "".join(c if c.isalnum() else "_" for c in model)
    return f"{prefix}_{safe}"


def call[T](fn: Callable[[], T], what: str) -> T:
    """Run a Milvus call; failures become ``VectorStoreUnavailable`` (retried by tasks with backoff)."""
    from pymilvus.exceptions import MilvusException

    started = time.perf_counter()
    try:
        return fn()
    except (MilvusException, ConnectionError, TimeoutError, OSError) as exc:
        raise VectorStoreUnavailable(f"Milvus {what} failed: {exc}") from exc
    finally:
        log.debug("milvus %s took %.3f s", what, time.perf_counter() - started)
