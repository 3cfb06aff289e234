"""The fsck comparison, on hand-built inventories: each kind found, busy rows never reported. A second signal
(``s``, like DnS: one vector per video and an object) is checked like the primary."""

from __future__ import annotations

from workers.consistency import KINDS, Inventory, RowState, find_inconsistencies


def row(vid: str, status: str = "indexed", *, vectors: int = 3, signal: bool = False) -> RowState:
    return RowState(vid, f"up/{vid}.mp4", status, "m", status not in {"indexed", "failed"}, vectors,
                    f"videos/m/{vid}/abc.npy", {"s": f"videos/s/{vid}/abc.npz"} if signal else {})


def inventory(rows: list[RowState], **stores) -> Inventory:  # noqa: ANN003
    defaults = dict(
        frame_vectors={r.video_id: r.vector_count for r in rows if r.status == "indexed"},
        signal_vectors={"s": {r.video_id for r in rows if r.signal_keys}},
        matrix_objects={r.matrix_key for r in rows if r.status == "indexed"},
        signal_objects={key for r in rows for key in r.signal_keys.values()},
        query_objects={"queries/m/j1.npy": "j1"}, job_ids={"j1"},
        uploads={r.object_path for r in rows}, enabled_signals={"m", "s"},
    )
    return Inventory(rows={r.video_id: r for r in rows}, model="m", **(defaults | stores))


def test_a_consistent_library_reports_nothing() -> None:
    rows = [row("a"), row("b", signal=True), row("c", "failed", vectors=0)]
    findings = find_inconsistencies(inventory(rows))
    assert findings.consistent and findings.counts() == dict.fromkeys(KINDS, 0)


def test_each_kind_is_found() -> None:
    rows = [row("a"), row("b", signal=True), row("c", "failed"), row("d"), row("e")]
    inv = inventory(rows)
    inv.frame_vectors = {"a": 2, "b": 3, "c": 3, "ghost": 5, "d": 3}  # a short, c failed, ghost without a row
    inv.signal_vectors = {"s": {"ghost2"}}  # b's is missing
    inv.matrix_objects = {"videos/m/a/abc.npy", "videos/m/b/abc.npy", "videos/m/ghost/x.npy"}  # d's and e's gone
    inv.signal_objects = {"videos/s/b/abc.npz", "videos/s/ghost/x.npz"}
    inv.query_objects = {"queries/m/j1.npy": "j1", "queries/m/gone.npy": "gone"}
    inv.uploads = {"up/a.mp4", "up/b.mp4", "up/c.mp4", "up/d.mp4", "up/new.mp4"}  # e's object deleted
    found = find_inconsistencies(inv).items
    assert found == {
        "orphan_vectors": ["c", "ghost"],
        "vector_count_mismatch": ["a", "e"],
        "missing_matrix": ["d", "e"],
        "orphan_matrices": ["videos/m/ghost/x.npy"],
        "orphan_signal_vectors": ["s:ghost2"],
        "missing_signal_vectors": ["s:b"],
        "orphan_signal_objects": ["videos/s/ghost/x.npz"],
        "orphan_query_objects": ["queries/m/gone.npy"],
        "unregistered_uploads": ["up/new.mp4"],
        "rows_without_upload": ["e"],
    }


def test_a_busy_row_and_a_recent_upload_are_not_reported() -> None:
    """A run in progress may be writing vectors and objects its row does not refer to yet."""
    rows = [row("a", "embedding", vectors=0), row("b", "pending")]
    inv = inventory(rows, frame_vectors={"a": 7}, matrix_objects={"videos/m/a/new.npy"},
                    uploads={"up/a.mp4", "up/fresh.mp4"}, recent_uploads={"up/fresh.mp4"})
    assert find_inconsistencies(inv).consistent


def test_rows_of_another_model_are_not_compared_with_this_models_collection() -> None:
    other = RowState("x", "up/x.mp4", "indexed", "other-model", False, 4, "videos/other-model/x/a.npy")
    inv = inventory([other], frame_vectors={}, matrix_objects={"videos/other-model/x/a.npy"})
    assert find_inconsistencies(inv).consistent


def test_a_switched_off_signal_is_not_missing_its_vectors_but_its_orphans_are_found() -> None:
    rows = [row("a", signal=True)]
    inv = inventory(rows, signal_vectors={"s": {"ghost"}}, enabled_signals={"m"})
    assert find_inconsistencies(inv).items["missing_signal_vectors"] == []
    assert find_inconsistencies(inv).items["orphan_signal_vectors"] == ["s:ghost"]
