"""The DnS weight files: their names, where they come from, whether a folder has them, and explicit download.

Nothing here downloads on its own: ``download_weights`` runs only when an operator asks for it (the
``copycat weights`` command). Torch-free, so that what only names or checks files (the CLI, ingest workers
that store DnS outputs) does not pay torch's import.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workers.errors import WeightsMissing

_DNS_URL = "https://mever.iti.gr/distill-and-select/models/"


@dataclass(frozen=True)
class WeightFile:
    """One downloadable weight file.

    ``used_by`` names the towhee models it holds weights for; the ResNet and PCA files also serve every model
    that is given frames rather than features. ``sha256_prefix`` is torchvision's hash-in-the-name check.
    """

    name: str
    url: str
    used_by: tuple[str, ...]
    sha256_prefix: str | None = None


RESNET50 = WeightFile(
    "resnet50-0676ba61.pth",
    "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    ("feature_extractor",),
    sha256_prefix="0676ba61",
)
PCA_WHITENING = WeightFile(
    "pca_resnet50_vcdb_1M.pth", "http://ndd.iti.gr/visil/pca_resnet50_vcdb_1M.pth", ("feature_extractor",)
)
MODEL_FILES: dict[str, WeightFile] = {
    name: WeightFile(file, _DNS_URL + file, (name,))
    for name, file in (
        ("fg_att_student", "dns_fg_att_student.pth"),
        ("fg_bin_student", "dns_fg_bin_student.pth"),
        ("cg_student", "dns_cg_student.pth"),
        ("selector_att", "dns_selector_cg-fg_att.pth"),
        ("selector_bin", "dns_selector_cg-fg_bin.pth"),
    )
}
"""The official DnS checkpoint of each trained model (spec §10)."""
ALL_FILES: tuple[WeightFile, ...] = (RESNET50, PCA_WHITENING, *MODEL_FILES.values())


class WeightsNotFound(WeightsMissing):
    """A DnS weight file is neither at the given path nor in the weights folder."""


def resolve_weight_file(
    file: WeightFile, path: str | os.PathLike[str] | None = None, weights_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The explicit ``path`` if given, else ``weights_dir / file.name``; raise ``WeightsNotFound`` if absent."""
    hint = f"download {file.url} (`copycat weights` lists every file)"
    if path is not None:
        candidate = Path(path)
        if not candidate.is_file():
            raise WeightsNotFound(f"{file.name}: no file at {candidate}; {hint} and point the path at it")
        return candidate
    if weights_dir is None:
        raise WeightsNotFound(f"{file.name}: no path and no weights folder given; {hint} into the weights folder")
    candidate = Path(weights_dir) / file.name
    if not candidate.is_file():
        raise WeightsNotFound(f"{file.name} is missing from {Path(weights_dir)}; {hint} to {candidate}")
    return candidate


@dataclass(frozen=True)
class WeightStatus:
    """Whether one weight file is present in a folder."""

    file: WeightFile
    path: Path
    present: bool


def weights_status(folder: str | os.PathLike[str]) -> list[WeightStatus]:
    """Every file DnS inference needs, with where it should be and whether it is there."""
    return [WeightStatus(f, Path(folder) / f.name, (Path(folder) / f.name).is_file()) for f in ALL_FILES]


@dataclass(frozen=True)
class DownloadResult:
    """Outcome for one file: ``present`` (already there), ``downloaded`` or ``failed`` (with ``error``)."""

    file: WeightFile
    path: Path
    outcome: str
    error: str | None = None


def download_weights(
    folder: str | os.PathLike[str], files: Iterable[WeightFile] = ALL_FILES, timeout: float = 60.0
) -> list[DownloadResult]:
    """Fetch the missing files into ``folder``; failures are reported, never raised.

    Each file is written to ``<name>.part`` and renamed only when complete (and its hash prefix matches,
    where the name carries one), so an interrupted download never looks like a weight file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for file in files:
        target = folder / file.name
        if target.is_file():
            results.append(DownloadResult(file, target, "present"))
            continue
        try:
            _fetch(file, target, timeout)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            results.append(DownloadResult(file, target, "failed", f"{file.url}: {exc}"))
        else:
            results.append(DownloadResult(file, target, "downloaded"))
    return results


def _fetch(file: WeightFile, target: Path, timeout: float) -> None:
    part = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(file.url, timeout=timeout) as response, part.open("wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if file.sha256_prefix and not digest.hexdigest().startswith(file.sha256_prefix):
            raise ValueError(f"sha256 {digest.hexdigest()[:8]} does not match {file.sha256_prefix}")
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)
