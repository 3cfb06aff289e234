"""What every Copycat collection in Milvus shares: connection, creation, model check, error mapping.

A collection belongs to one model. It records the model and dimension that built it (collection
properties) and refuses vectors from any other. ``uri`` is a Milvus server (``http://host:19530``) or a
Milvus Lite file; Milvus Lite lets one process open a file, and several worker processes share it through
``milvus-lite server`` and its URL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from workers.errors import ModelMismatch, VectorStoreUnavailable

log = logging.getLogger(__name__)

MODEL_PROPERTY = "copycat.model"
DIM_PROPERTY = "copycat.dim"
VIDEO_ID_MAX = 64


class MilvusCollection:
    """One model's collection; subclasses declare their fields in ``_add_fields`` and add the data calls."""

    def __init__(self, uri: str, model: str, dim: int, *, token: str = "", prefix: str = "copycat_frames",
                 index_type: str = "HNSW", hnsw_m: int = 16, hnsw_ef_construction: int = 200,
                 search_ef: int = 128) -> None:
        self.uri = uri
        self.model = model
        self.dim = dim
        self.collection = collection_name(prefix, model)
        self.index_type = index_type
        self.hnsw_m, self.hnsw_ef_construction, self.search_ef = hnsw_m, hnsw_ef_construction, search_ef
        self._token = token
        self._client = None
        self._ready = False
        self._lite = False

    @property
    def client(self):  # noqa: ANN201 - pymilvus.MilvusClient, imported lazily
        if self._client is None:
            from pymilvus import MilvusClient

            self._client = call(lambda: MilvusClient(self.uri, token=self._token), f"connect to {self.uri}")
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._ready = False

    def exists(self) -> bool:
        """Whether the collection has been created (without creating it)."""
        return self._ready or bool(call(lambda: self.client.has_collection(self.collection), "has_collection"))

    def ensure_collection(self) -> None:
        """Create the collection on first use; refuse one built by another model or for another size."""
        if self._ready:
            return
        client = self.client
        if call(lambda: client.has_collection(self.collection), "has_collection"):
            self._check_model(call(lambda: client.describe_collection(self.collection), "describe_collection"))
        else:
            self._create()
        call(lambda: client.load_collection(self.collection), "load_collection")
        self._lite = str(call(client.get_server_version, "get_server_version")).startswith("milvus_lite")
        self._ready = True

    def search_params(self, limit: int) -> dict:
        return {"metric_type": "IP", "params": {"ef": max(self.search_ef, limit), "nprobe": 32}}

    def _add_fields(self, schema, data_type) -> None:  # noqa: ANN001 - pymilvus schema and DataType
        """Declare the collection's fields; every collection has a float vector field named ``embedding``."""
        raise NotImplementedError

    def _add_indexes(self, index) -> None:  # noqa: ANN001 - pymilvus IndexParams
        """Scalar indexes beyond the vector index (none by default)."""

    def _create(self) -> None:
        from pymilvus import DataType

        client = self.client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        self._add_fields(schema, DataType)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self.dim)
        index = client.prepare_index_params()
        params = {"M": self.hnsw_m, "efConstruction": self.hnsw_ef_construction} if self.index_type == "HNSW" else {}
        index.add_index(field_name="embedding", index_type=self.index_type, metric_type="IP", params=params)
        self._add_indexes(index)
        properties = {MODEL_PROPERTY: self.model, DIM_PROPERTY: str(self.dim)}
        try:
            call(lambda: client.create_collection(self.collection, schema=schema, index_params=index,
                                                  properties=properties), "create_collection")
        except VectorStoreUnavailable:
            if not client.has_collection(self.collection):  # not a lost race with another worker
                raise
        log.info("created Milvus collection %s for model %s (dim %d, %s)", self.collection, self.model, self.dim,
                 self.index_type)

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
