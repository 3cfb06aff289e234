"""DnS outputs as the product stores them, and the names they depend on: torch-free.

A video's DnS representation (coarse vector, fine index, selector statistic), the fine index packed for
storage, the sampling DnS needs, and the weight files a student needs. Kept apart from the networks
(``workers.dns.video``) so that the ingest and query tasks, which only move these arrays, start without
importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workers.dns.files import MODEL_FILES, PCA_WHITENING, RESNET50, WeightFile
from workers.types import FrameGeometry

DNS_GEOMETRY = FrameGeometry(224, "crop", short_side=256)
"""The reference ViSiL/DnS preprocessing (spec §1.1), done inside ffmpeg."""
DNS_FPS = 1.0
"""The students were trained on features of one frame per second, whatever the product's sampling rate."""
STUDENTS = ("fg_att_student", "fg_bin_student")
SELECTOR_FOR = {"fg_att_student": "selector_att", "fg_bin_student": "selector_bin"}
FINE_FLOAT, FINE_PACKED = "float32", "packbits"
"""``fine_dtype`` of a stored fine index: float32 [T, R, 512], or ±1 codes as ``np.packbits`` uint8 [T, R, 64]."""


def required_files(student: str) -> tuple[WeightFile, ...]:
    """Every weight file DnS needs with ``student``: extractor, coarse student, that student, its selector."""
    check_student(student)
    return (RESNET50, PCA_WHITENING, MODEL_FILES["cg_student"], MODEL_FILES[student],
            MODEL_FILES[SELECTOR_FOR[student]])


@dataclass(frozen=True)
class DnsRepresentation:
    """One video in DnS form.

    ``coarse`` float32 [1024] unit L2; ``fine`` float32 [T, R, 512] (±1 values for ``fg_bin_student``);
    ``selector_stat`` the selector's per-video ``f``; ``frames`` = T, the decoded frames.
    """

    coarse: np.ndarray
    fine: np.ndarray
    selector_stat: float

    @property
    def frames(self) -> int:
        return int(self.fine.shape[0])


def pack_fine(fine: np.ndarray, student: str) -> tuple[np.ndarray, str]:
    """The array to store for a fine index [T, R, 512] and its ``fine_dtype``.

    ``fg_att_student``: float32 as is. ``fg_bin_student``: the ±1 codes as bits, uint8 [T, R, 64]; a code
    of exactly 0 (possible only in theory) is stored as +1 (spec §9).
    """
    check_student(student)
    if student == "fg_bin_student":
        return np.packbits(fine >= 0, axis=-1), FINE_PACKED
    return np.ascontiguousarray(fine, dtype=np.float32), FINE_FLOAT


def unpack_fine(stored: np.ndarray, fine_dtype: str) -> np.ndarray:
    """Inverse of ``pack_fine``: float32 [T, R, 512] (±1.0 for packed codes)."""
    if fine_dtype == FINE_PACKED:
        return np.unpackbits(stored, axis=-1).astype(np.float32) * 2.0 - 1.0
    if fine_dtype == FINE_FLOAT:
        return stored.astype(np.float32, copy=False)
    raise ValueError(f"unknown fine_dtype {fine_dtype!r}; expected {FINE_FLOAT!r} or {FINE_PACKED!r}")


def check_student(student: str) -> None:
    if student not in STUDENTS:
        raise ValueError(f"unknown fine-grained student {student!r}; expected one of {', '.join(STUDENTS)}")
