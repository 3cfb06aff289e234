"""``workers.signals.base.Arrays`` in one bucket of an object store: ``.npy`` for one array, ``.npz`` for several."""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np

from workers.stores.objects import ObjectStore, load_matrix, save_matrix


class BucketArrays:
    """``Arrays`` in one bucket: ``.npy`` objects for one array, ``.npz`` for several."""

    def __init__(self, store: ObjectStore, bucket: str) -> None:
        self.store, self.bucket = store, bucket

    def put(self, key: str, array: np.ndarray) -> None:
        save_matrix(self.store, self.bucket, key, array)

    def get(self, key: str) -> np.ndarray:
        return load_matrix(self.store, self.bucket, key)

    def put_all(self, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        self.store.put_bytes(self.bucket, key, buffer.getvalue())

    def get_all(self, key: str) -> dict[str, np.ndarray]:
        with np.load(io.BytesIO(self.store.get_bytes(self.bucket, key)), allow_pickle=False) as data:
            return {name: data[name] for name in data.files}

    def remove(self, key: str) -> None:
        self.store.remove(self.bucket, key)
