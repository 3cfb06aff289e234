"""Which Milvus features Copycat uses, chosen from the version string the server reports."""

from __future__ import annotations

import pytest

from workers.errors import ConfigError, UnsupportedMilvusVersion
from workers.stores.milvus import IndexSpec, milvus_features
from workers.stores.vectors import VectorIndex


def test_milvus_2_3_uses_trie_and_no_grouping() -> None:
    """The PyPI standalone server 2.3.5 reports 'v2.3.5-lite' but is a real server, not Milvus Lite."""
    features = milvus_features("v2.3.5-lite")
    assert not features.lite
    assert features.varchar_index == "Trie"
    assert features.upsert and features.delete_by_expression and features.supported
    assert not features.grouping_search and not features.float16_vectors


@pytest.mark.parametrize("version", ["v2.4.0", "v2.4.13-hotfix", "2.4.5"])
def test_milvus_2_4_brings_inverted_grouping_and_float16(version: str) -> None:
    features = milvus_features(version)
    assert features.varchar_index == "INVERTED"
    assert features.grouping_search and features.float16_vectors and features.supported
    assert not features.lite


@pytest.mark.parametrize("version", ["v2.5.4", "v2.6.22", "v2.6.0-rc1", "v3.0.0"])
def test_later_versions_keep_every_feature(version: str) -> None:
    features = milvus_features(version)
    assert (features.varchar_index, features.grouping_search, features.float16_vectors) == ("INVERTED", True, True)


def test_milvus_lite_has_inverted_and_grouping_but_no_float16() -> None:
    features = milvus_features("milvus_lite-3.2.2")
    assert features.lite
    assert features.varchar_index == "INVERTED" and features.grouping_search
    assert not features.float16_vectors
    assert features.version == "milvus_lite-3.2.2"


@pytest.mark.parametrize("version", ["v2.2.16", "v2.0.2", "1.1.1"])
def test_versions_before_2_3_are_refused_by_name(version: str) -> None:
    with pytest.raises(UnsupportedMilvusVersion, match=rf"Milvus {version} is too old.*2\.3 or newer") as caught:
        milvus_features(version)
    assert isinstance(caught.value, ConfigError) and caught.value.code == "milvus_version"


def test_an_unreadable_version_is_refused() -> None:
    with pytest.raises(UnsupportedMilvusVersion, match="cannot read the Milvus version 'nightly'"):
        milvus_features("nightly")


@pytest.mark.parametrize(("index_type", "build"), [("HNSW", {"M": 24, "efConstruction": 300}),
                                                   ("IVF_FLAT", {"nlist": 512}), ("IVF_SQ8", {"nlist": 512}),
                                                   ("FLAT", {})])
def test_vector_index_parameters(index_type: str, build: dict[str, int]) -> None:
    """IVF indexes need a cluster count: Milvus 2.3 refuses one without ("nlist out of range"). Searches carry
    HNSW's breadth, at least the hits asked for, and IVF's probes, whichever index the collection has."""
    spec = IndexSpec(index_type=index_type, hnsw_m=24, hnsw_ef_construction=300, search_ef=128, ivf_nlist=512,
                     ivf_nprobe=48)
    index = VectorIndex("unused.db", "m", 8, index=spec)
    assert spec.build_params() == build
    assert index.search_params(64) == {"metric_type": "IP", "params": {"ef": 128, "nprobe": 48}}
    assert index.search_params(200)["params"]["ef"] == 200
