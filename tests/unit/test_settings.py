"""The settings object: environment parsing, clear errors, and the table in docs/configuration.md kept in step."""

from __future__ import annotations

import re
from dataclasses import fields, replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from service.settings import (
    DecodeSettings,
    LocaliseSettings,
    MilvusSettings,
    QuerySettings,
    SelectSettings,
    Settings,
    load_settings,
)
from workers.decode import DecodeOptions
from workers.errors import ConfigError
from workers.localise import TNParams
from workers.stores.milvus import IndexSpec
from workers.types import QueryParams

CONFIGURATION_PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@pytest.fixture(autouse=True)
def no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults are tested, not whatever COPYCAT_* the shell running the tests has set."""
    import os

    for key in list(os.environ):
        if key.startswith("COPYCAT_"):
            monkeypatch.delenv(key)


def test_nested_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COPYCAT_EMBED__MODEL", "sscd")
    monkeypatch.setenv("COPYCAT_SELECT__TOP_K", "7")
    monkeypatch.setenv("COPYCAT_HOME", "/data/copycat")
    cfg = load_settings()
    assert (cfg.embed.model, cfg.select.top_k) == ("sscd", 7)
    assert cfg.database_url == "sqlite:////data/copycat/copycat.db"
    assert cfg.milvus_uri == "/data/copycat/milvus.db"
    assert cfg.embedded


def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COPYCAT_SELECT__TOP_K", "zero")
    with pytest.raises(ConfigError, match="COPYCAT_SELECT__TOP_K"):
        load_settings()


def test_the_configuration_page_lists_every_setting_with_its_default() -> None:
    table = CliRunner().invoke(cli, ["config", "--markdown"]).output
    page = CONFIGURATION_PAGE.read_text()
    block = re.search(r"<!-- settings-table:start -->\n(.*)<!-- settings-table:end -->", page, re.S)
    assert block is not None, "docs/configuration.md lost its settings table markers"
    assert block.group(1) == table, ("the settings table in docs/configuration.md is stale: paste "
                                     "`copycat config --markdown`")
    groups = [name for name, f in Settings.model_fields.items() if hasattr(f.annotation, "model_fields")]
    assert all(f"COPYCAT_{g.upper()}__" in table for g in groups)


def test_every_index_setting_reaches_the_collections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each COPYCAT_MILVUS__ index variable is passed on (a new IndexSpec field needs its setting), and an
    index type Copycat does not build is refused at start, not at the first ingest."""
    assert set(IndexSpec.__dataclass_fields__) <= set(MilvusSettings.model_fields)
    assert Settings().index_spec() == IndexSpec()
    monkeypatch.setenv("COPYCAT_MILVUS__INDEX_TYPE", "IVF_SQ8")
    monkeypatch.setenv("COPYCAT_MILVUS__IVF_NLIST", "4096")
    monkeypatch.setenv("COPYCAT_MILVUS__IVF_NPROBE", "64")
    spec = load_settings().index_spec()
    assert (spec.index_type, spec.ivf_nlist, spec.ivf_nprobe) == ("IVF_SQ8", 4096, 64)
    monkeypatch.setenv("COPYCAT_MILVUS__INDEX_TYPE", "DISKANN")
    with pytest.raises(ConfigError, match="COPYCAT_MILVUS__INDEX_TYPE"):
        load_settings()


def test_the_localiser_settings_are_its_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    """``COPYCAT_LOCALISE__*`` are ``TNParams``'s fields with its defaults: the localiser a bare
    ``TemporalNetwork()`` builds is the one the product runs."""
    assert list(LocaliseSettings.model_fields) == [f.name for f in fields(TNParams)]
    assert Settings().tn_params() == TNParams()
    monkeypatch.setenv("COPYCAT_LOCALISE__TN_TOP_K", "5")
    monkeypatch.setenv("COPYCAT_LOCALISE__SCORE", "tn")
    assert load_settings().tn_params() == replace(TNParams(), tn_top_k=5, score="tn")
    monkeypatch.setenv("COPYCAT_LOCALISE__TN_MAX_STEP", "1")
    with pytest.raises(ConfigError, match="COPYCAT_LOCALISE__TN_MAX_STEP"):
        load_settings()


def test_decode_and_query_settings_reach_their_dataclasses(monkeypatch: pytest.MonkeyPatch) -> None:
    """``COPYCAT_DECODE__*`` defaults are ``DecodeOptions``'s; every ``DecodeOptions`` and ``QueryParams`` field
    has its setting, and a set variable arrives."""
    decode_fields = {f.name for f in fields(DecodeOptions)}
    assert decode_fields - {"limits", "cores"} <= set(DecodeSettings.model_fields)  # cores: Resources.decode_options
    assert Settings().decode_options() == DecodeOptions()
    assert {f.name for f in fields(QueryParams)} <= set(SelectSettings.model_fields) | set(QuerySettings.model_fields)
    monkeypatch.setenv("COPYCAT_DECODE__HWACCEL", "none")
    monkeypatch.setenv("COPYCAT_QUERY__EXTRA_VIEWS", '["flip"]')
    monkeypatch.setenv("COPYCAT_SELECT__REDUCE", "sum")
    cfg = load_settings()
    assert cfg.decode_options() == replace(DecodeOptions(), hwaccel="none")
    params = cfg.query_params({"top_k": "3", "crop_grid": None})
    assert (params.top_k, params.reduce, params.crop_grid, params.extra_views) == (3, "sum", 2, ("flip",))


def test_the_query_parameters_have_one_home() -> None:
    """The settings' query defaults are ``QueryParams``'s own: a bare ``QueryParams()`` is what the product runs."""
    from workers.types import QueryParams

    assert Settings().query_params() == QueryParams()
