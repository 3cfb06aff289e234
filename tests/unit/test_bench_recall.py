"""The measures of bench.search_scale: ann-benchmarks' tie-aware recall, exact search, unrelated frames."""

import numpy as np

from bench.search_scale import LIMIT, cross_video_cosines, exact_top, tie_recall, unit


def test_the_other_copy_of_a_tied_64th_frame_is_no_miss_and_a_lower_frame_is() -> None:
    rng = np.random.default_rng(0)
    library = unit(rng.standard_normal((500, 16)))
    query = unit(library[0] + 0.3 * rng.standard_normal(16))[None]
    order = np.argsort(-(library @ query[0]))
    last, below = int(order[LIMIT - 1]), order[LIMIT + 5 :]
    library[below[0]] = library[last]  # a frame held still: the 64th descriptor twice, one row outside the top
    rows, scores = exact_top(query, library, LIMIT)
    assert np.allclose(scores[0], np.sort(library @ query[0])[::-1][:LIMIT])
    exact = rows[0].tolist()
    chosen, twin = (last, int(below[0])) if last in exact else (int(below[0]), last)

    other_copy = [twin if r == chosen else r for r in exact]
    assert len(set(other_copy) & set(exact)) == LIMIT - 1, "an id overlap counts it as a miss"
    assert tie_recall(query, [other_copy], scores[:, -1], library) == [1.0]

    two_lower = exact[:-2] + below[1:3].tolist()
    assert tie_recall(query, [two_lower], scores[:, -1], library) == [(LIMIT - 2) / LIMIT]


def test_unrelated_frames_are_pairs_of_different_videos_only() -> None:
    rng = np.random.default_rng(0)
    frames = unit(rng.standard_normal((2000, 512)))
    owner = np.repeat(np.arange(20), 100)
    frames[100:200] = frames[100]  # one video held still: its own pairs would all be 1.0
    cosines = cross_video_cosines(frames, owner, rng)
    assert len(cosines) > 15_000 and cosines.max() < 0.5
    assert abs(cosines.mean()) < 0.01 and 0.03 < cosines.std() < 0.06  # random directions: 0 and 1/sqrt(512)
