"""Fusing the matches of several locating signals (``workers.query.fuse``)."""

from __future__ import annotations

from workers.query import fuse
from workers.types import Match, Segment


def seg(qs: float, qe: float, rs: float, score: float, *signals: str) -> Segment:
    return Segment(qs, qe, rs, rs + (qe - qs), score, signals)


def test_one_signal_passes_through_unchanged() -> None:
    matches = [Match("a", 0.9, [seg(0, 5, 10, 0.9, "video")])]
    assert fuse([matches, []]) == matches
    assert fuse([]) == []


def test_agreeing_segments_of_two_signals_become_one_found_by_both() -> None:
    """Same offset within a second, overlapping spans: one copy, over both spans, with the better score."""
    video = [Match("a", 0.7, [seg(2, 8, 12, 0.7, "video")])]
    audio = [Match("a", 0.8, [seg(1.5, 9, 11.8, 0.8, "audio")])]
    [match] = fuse([video, audio])
    [segment] = match.segments
    assert segment.signals == ("audio", "video")
    assert (segment.query_start, segment.query_end, segment.ref_start, segment.score) == (1.5, 9, 11.8, 0.8)
    assert match.score == 0.8 and match.signals == ["audio", "video"]


def test_segments_at_other_offsets_or_times_stay_single_signal() -> None:
    video = [Match("a", 0.7, [seg(0, 5, 10, 0.7, "video")]), Match("b", 0.6, [seg(0, 4, 0, 0.6, "video")])]
    audio = [Match("a", 0.5, [seg(0, 5, 30, 0.5, "audio"), seg(20, 25, 30, 0.5, "audio")])]
    fused = {m.video_id: m for m in fuse([video, audio])}
    assert [s.signals for s in fused["a"].segments] == [("video",), ("audio",), ("audio",)]
    assert fused["a"].score == 0.7 and fused["b"].signals == ["video"]
    assert [m.video_id for m in fuse([video, audio])] == ["a", "b"]  # best first
