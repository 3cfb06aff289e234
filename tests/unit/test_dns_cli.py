"""``copycat weights`` (present / missing / official URLs, offline downloads) and when DnS counts as enabled."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.dns_commands import weights
from workers.dns.files import ALL_FILES
from workers.dns.representation import required_files


def configure(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    from service import resources

    for name, value in values.items():
        monkeypatch.setenv(f"COPYCAT_DNS__{name.upper()}", value)
    resources.reset()


@pytest.fixture
def weights_dir(copycat_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    configure(monkeypatch, weights_dir=str(folder))
    return folder


def test_lists_every_file_with_its_url_and_what_is_missing(weights_dir: Path):
    result = CliRunner().invoke(weights, [])
    assert result.exit_code == 0, result.output
    for file in ALL_FILES:
        assert file.name in result.output and file.url in result.output
    assert "missing 5 needed file(s)" in result.output
    assert "dns_cg_student.pth *" in result.output and "dns_fg_bin_student.pth *" not in result.output


def test_json_marks_present_files_and_readiness(weights_dir: Path):
    weights_dir.mkdir()
    for file in required_files("fg_att_student"):
        (weights_dir / file.name).write_bytes(b"x")
    result = CliRunner().invoke(weights, ["--json"])
    data = json.loads(result.output)
    assert data["ready"] is True and data["folder"] == str(weights_dir)
    status = {f["file"]: f["status"] for f in data["files"]}
    assert status["dns_cg_student.pth"] == "present" and status["dns_fg_bin_student.pth"] == "missing"
    assert "all files DnS needs are present" in CliRunner().invoke(weights, []).output


def test_download_without_network_reports_each_failure(weights_dir: Path, monkeypatch: pytest.MonkeyPatch):
    def offline(url: str, timeout: float):  # noqa: ARG001
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    result = CliRunner().invoke(weights, ["--download", "--timeout", "1"])
    assert result.exit_code == 1
    assert result.output.count("download failed:") == len(ALL_FILES)
    assert "Temporary failure in name resolution" in result.output
    assert "https://mever.iti.gr/distill-and-select/models/dns_cg_student.pth" in result.output
    assert list(weights_dir.iterdir()) == []  # no partial files left behind


def test_enabled_follows_the_switch_and_missing_weights_are_named(weights_dir: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Switched on without weights, DnS fails loudly (naming the file) instead of being skipped silently."""
    from service import resources
    from workers.errors import WeightsMissing
    from workers.signals.dns import DnsSignal, missing_weights

    assert "dns" not in [s.name for s in resources.current().signals]
    configure(monkeypatch, enabled="true")
    cfg = resources.current().settings
    [dns] = [s for s in resources.current().signals if isinstance(s, DnsSignal)]
    assert [f.name for f in missing_weights(cfg)] == [f.name for f in required_files("fg_att_student")]
    with pytest.raises(WeightsMissing, match=required_files("fg_att_student")[0].name):
        dns.models  # noqa: B018
    weights_dir.mkdir()
    for file in required_files("fg_att_student"):
        (weights_dir / file.name).write_bytes(b"x")
    assert missing_weights(cfg) == []
    configure(monkeypatch, student="fg_bin_student")
    assert [f.name for f in missing_weights(resources.current().settings)] == [
        "dns_fg_bin_student.pth", "dns_selector_cg-fg_bin.pth"]
