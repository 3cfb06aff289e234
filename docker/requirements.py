"""Print the project's runtime dependencies (pyproject.toml) as pip requirements, for the image's deps layer.

The Dockerfile installs these before copying the source, so the heavy layer (torch, onnxruntime) is rebuilt
only when pyproject.toml changes. The onnxruntime line is the one thing rewritten:

- GPU=0: ``onnxruntime==VERSION``
- GPU=1: ``onnxruntime-gpu[cuda,cudnn]==VERSION``: the same runtime built with the CUDA provider, plus the
  CUDA 13 / cuDNN 9 wheels it loads (torch from PyPI is a CUDA 13 build too, so both share one CUDA major).

Both wheels install the same ``onnxruntime`` module, so only one may ever be installed.

Usage: python docker/requirements.py PYPROJECT GPU ONNXRUNTIME_VERSION
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(requirement: str) -> str:
    match = NAME.match(requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def requirements(pyproject: Path, gpu: bool, onnxruntime_version: str) -> list[str]:
    """The dependency list with onnxruntime pinned to ``onnxruntime_version`` (GPU or CPU build)."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    runtime = f"onnxruntime-gpu[cuda,cudnn]=={onnxruntime_version}" if gpu else f"onnxruntime=={onnxruntime_version}"
    out = [runtime if canonical(dep) == "onnxruntime" else dep for dep in dependencies]
    if runtime not in out:
        raise SystemExit("pyproject.toml has no onnxruntime dependency to pin")
    return out


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[1] not in {"0", "1"}:
        raise SystemExit("usage: requirements.py PYPROJECT GPU(0|1) ONNXRUNTIME_VERSION")
    print("\n".join(requirements(Path(argv[0]), argv[1] == "1", argv[2])))


if __name__ == "__main__":
    main(sys.argv[1:])
