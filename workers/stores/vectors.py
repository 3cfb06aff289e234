"""Frame vectors in Milvus: one collection per embedding model, inner-product metric.

Rows are keyed ``"<video_id>:<frame>"`` and written with ``upsert``, so running an ingest twice, or two
ingests of the same video at once, can never leave duplicates; frames past a re-ingested video's new end
are deleted. The collection records the model and dimension that built it, and vectors from any other
model are refused.

``uri`` is a Milvus server (``http://host:19530``) or a Milvus Lite file. Milvus Lite lets one process
open a file; several worker processes share it through ``milvus-lite server`` and its URL. Milvus Lite
searches unsealed (growing) rows slowly, ~0.8 s per call at 10k rows against ~0.06 s once sealed, so on
Milvus Lite a search first flushes (a no-op costing ~2 ms when nothing was written since).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workers.errors import ModelMismatch, VectorStoreUnavailable

log = logging.getLogger(__name__)

MODEL_PROPERTY = "copycat.model"
DIM_PROPERTY = "copycat.dim"
VIDEO_ID_MAX = 64


@dataclass(frozen=True)
class SearchHits:
    """Flat, parallel arrays of every hit of a batch search: query row, video, frame, score."""

    query_frame: np.ndarray  # int32 [H]
    video_id: np.ndarray  # object (str) [H]
    frame: np.ndarray  # int32 [H]
    score: np.ndarray  # float32 [H]

    def __len__(self) -> int:
        return int(self.score.shape[0])


class VectorIndex:
    """The Milvus collection of one embedding model."""

    def __init__(self, uri: str, model: str, dim: int, *, token: str = "", prefix: str = "copycat_frames",
                 index_type: str = "HNSW", hnsw_m: int = 16, hnsw_ef_construction: int = 200,
                 search_ef: int = 128, insert_batch: int = 5000, search_batch: int = 256) -> None:
        self.uri = uri
        self.model = model
        self.dim = dim
        self.collection = collection_name(prefix, model)
        self.index_type = index_type
        self.hnsw_m, self.hnsw_ef_construction, self.search_ef = hnsw_m, hnsw_ef_construction, search_ef
        self.insert_batch, self.search_batch = insert_batch, search_batch
        self._token = token
        self._client = None
        self._ready = False
        self._lite = False

    @property
    def client(self):  # noqa: ANN201 - pymilvus.MilvusClient, imported lazily
        if self._client is None:
            from pymilvus import MilvusClient

            self._client = _call(lambda: MilvusClient(self.uri, token=self._token), f"connect to {self.uri}")
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._ready = False

    def ensure_collection(self) -> None:
        """Create the collection on first use; refuse one that another model built."""
        if self._ready:
            return
        client = self.client
        if _call(lambda: client.has_collection(self.collection), "has_collection"):
            self._check_model(_call(lambda: client.describe_collection(self.collection), "describe_collection"))
        else:
            self._create()
        _call(lambda: client.load_collection(self.collection), "load_collection")
        self._lite = str(_call(client.get_server_version, "get_server_version")).startswith("milvus_lite")
        self._ready = True

    def replace_video(self, video_id: str, matrix: np.ndarray) -> int:
        """Make the collection hold exactly the rows of ``matrix`` [T, D] for ``video_id``; returns T."""
        self._check_vectors(matrix)
        if len(video_id) > VIDEO_ID_MAX:
            raise ValueError(f"video id longer than {VIDEO_ID_MAX} characters: {video_id!r}")
        self.ensure_collection()
        vectors = np.ascontiguousarray(matrix, dtype=np.float32)
        for start in range(0, vectors.shape[0], self.insert_batch):
            rows = [
                {"pk": f"{video_id}:{i}", "video_id": video_id, "frame": i, "embedding": vectors[i].tolist()}
                for i in range(start, min(start + self.insert_batch, vectors.shape[0]))
            ]
            _call(lambda rows=rows: self.client.upsert(self.collection, rows), "upsert")
        _call(lambda: self.client.delete(self.collection, filter=f'video_id == "{video_id}" and frame >= '
                                         f"{vectors.shape[0]}"), "delete stale frames")
        return int(vectors.shape[0])

    def delete_video(self, video_id: str) -> None:
        self.ensure_collection()
        _call(lambda: self.client.delete(self.collection, filter=f'video_id == "{video_id}"'), "delete")

    def count(self, video_id: str | None = None) -> int:
        """Rows of one video, or of the whole collection."""
        self.ensure_collection()
        expr = f'video_id == "{video_id}"' if video_id else ""
        result = _call(lambda: self.client.query(self.collection, filter=expr, output_fields=["count(*)"]), "count")
        return int(result[0]["count(*)"]) if result else 0

    def search(self, vectors: np.ndarray, limit: int) -> SearchHits:
        """Top ``limit`` frames for each query row of ``vectors`` [N, D], in batched calls."""
        self._check_vectors(vectors)
        self.ensure_collection()
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        if self._lite:
            _call(lambda: self.client.flush(self.collection), "flush")
        q_idx, vids, frames, scores = [], [], [], []
        params = {"metric_type": "IP", "params": {"ef": max(self.search_ef, limit), "nprobe": 32}}
        for start in range(0, queries.shape[0], self.search_batch):
            batch = queries[start : start + self.search_batch]
            results = _call(
                lambda batch=batch: self.client.search(
                    self.collection, data=batch.tolist(), limit=limit, output_fields=["video_id", "frame"],
                    search_params=params,
                ),
                "search",
            )
            for offset, hits in enumerate(results):
                for hit in hits:
                    entity = hit["entity"]
                    q_idx.append(start + offset)
                    vids.append(entity["video_id"])
                    frames.append(entity["frame"])
                    scores.append(hit["distance"])
        return SearchHits(
            np.asarray(q_idx, np.int32), np.asarray(vids, dtype=object), np.asarray(frames, np.int32),
            np.asarray(scores, np.float32),
        )

    def _create(self) -> None:
        from pymilvus import DataType

        client = self.client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=VIDEO_ID_MAX + 12)
        schema.add_field("video_id", DataType.VARCHAR, max_length=VIDEO_ID_MAX)
        schema.add_field("frame", DataType.INT32)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self.dim)
        index = client.prepare_index_params()
        params = {"M": self.hnsw_m, "efConstruction": self.hnsw_ef_construction} if self.index_type == "HNSW" else {}
        index.add_index(field_name="embedding", index_type=self.index_type, metric_type="IP", params=params)
        index.add_index(field_name="video_id", index_type="INVERTED")
        properties = {MODEL_PROPERTY: self.model, DIM_PROPERTY: str(self.dim)}
        try:
            _call(lambda: client.create_collection(self.collection, schema=schema, index_params=index,
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
                                f"embeds with {self.model!r}. Use the same COPYCAT_EMBED__MODEL or another "
                                "COPYCAT_MILVUS__COLLECTION_PREFIX")
        if dims and int(dims[0]) != self.dim:
            raise ModelMismatch(f"Milvus collection {self.collection} holds {dims[0]}-d vectors; model "
                                f"{self.model!r} makes {self.dim}-d vectors")

    def _check_vectors(self, matrix: np.ndarray) -> None:
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ModelMismatch(f"vectors of shape {matrix.shape} do not fit collection {self.collection} "
                                f"(model {self.model!r}, dim {self.dim})")


def collection_name(prefix: str, model: str) -> str:
    """Milvus names allow letters, digits and underscores only."""
    safe = "".join(c if c.isalnum() else "_" for c in model)
    return f"{prefix}_{safe}"


def _call[T](fn: Callable[[], T], what: str) -> T:
    """Run a Milvus call; connection-level failures become ``VectorStoreUnavailable`` (retried by tasks)."""
    from pymilvus.exceptions import MilvusException

    started = time.perf_counter()
    try:
        return fn()
    except MilvusException as exc:
        raise VectorStoreUnavailable(f"Milvus {what} failed: {exc}") from exc
    except (ConnectionError, TimeoutError, OSError) as exc:
        raise VectorStoreUnavailable(f"Milvus {what} failed: {exc}") from exc
    finally:
        log.debug("milvus %s took %.3f s", what, time.perf_counter() - started)
