"""The settings object: environment parsing, clear errors, and the README's table kept in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from tasks.settings import Settings, load_settings
from workers.errors import ConfigError

README = Path(__file__).resolve().parents[2] / "README.md"


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


def test_readme_lists_every_setting_with_its_default() -> None:
    table = CliRunner().invoke(cli, ["config", "--markdown"]).output
    readme = README.read_text()
    block = re.search(r"<!-- settings-table:start -->\n(.*)<!-- settings-table:end -->", readme, re.S)
    assert block is not None, "README lost its settings table markers"
    assert block.group(1) == table, "README's settings table is stale: paste `copycat config --markdown`"
    groups = [name for name, f in Settings.model_fields.items() if hasattr(f.annotation, "model_fields")]
    assert all(f"COPYCAT_{g.upper()}__" in table for g in groups)
