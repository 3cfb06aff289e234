"""VSC22-style score normalisation, measured against the product's localiser on the fixture benchmark.

The VSC22 baseline lowers each query descriptor's similarities by ``beta`` times its similarity to its
``k``-th nearest neighbour in a background set, carried as one extra dimension (query ``[q, -beta * s_k]``,
reference ``[r, 1]``) so inner-product search stays exact. Frames that resemble everything (sky, asphalt,
dark scenes) then count for less. Here the background is the library itself: every indexed frame except
those of the candidate being localised (nothing is downloaded). Each (beta, k) runs the product's query path
(``bench.tune.predict``) with the normalised similarities, next to the defaults, in one run.

    python -m bench.score_norm [--fixtures .cache/fixtures]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from bench.fixtures import build_fixtures
from bench.sets import CLIPS
from bench.tune import embed_set, evaluate, predict, separation
from service.settings import Settings
from workers.evaluate import load_ground_truth
from workers.localise import TemporalNetwork
from workers.matching import informative
from workers.types import Segment


@dataclass(frozen=True)
class NormalisedTN(TemporalNetwork):
    """``TemporalNetwork`` on similarities minus ``beta`` x each query view's k-th neighbour similarity among
    the ``background`` frames of other videos (``owner`` names each background frame's video)."""

    beta: float = 0.0
    k: int = 10
    background: dict[int, np.ndarray] = field(default_factory=dict)  # id(reference matrix) -> other frames

    def localise(self, query: np.ndarray, reference: np.ndarray, fps: float, *,
                 query_informative: np.ndarray | None = None,
                 reference_informative: np.ndarray | None = None) -> list[Segment]:
        if self.beta:
            q = np.asarray(query, np.float32)
            sims = q @ self.background[id(reference)].T
            kth = -np.partition(-sims, self.k - 1, axis=-1)[..., self.k - 1]
            query = np.concatenate([q, (-self.beta * kth)[..., None]], -1)
            query[~informative(q)] = 0.0
            reference = np.concatenate([reference.astype(np.float32), np.ones((len(reference), 1), np.float32)], -1)
            reference[~informative(reference[:, :-1])] = 0.0
        return super().localise(query, reference, fps, query_informative=query_informative,
                                reference_informative=reference_informative)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fixtures", type=Path, default=Path(".cache/fixtures"))
    args = parser.parse_args(argv)
    settings = Settings()
    gt = load_ground_truth(build_fixtures(CLIPS, args.fixtures))
    feats = embed_set(gt, settings.embed.model, args.fixtures / "cache", mask=True, extra=True)
    references = [feats[r["name"]] for r in gt["references"]]
    bank = np.concatenate(references).astype(np.float32)
    owner = np.concatenate([np.full(len(m), i) for i, m in enumerate(references)])
    background = {id(m): bank[(owner != i) & informative(bank)] for i, m in enumerate(references)}
    tn_params = replace(settings.tn_params(), device="cpu")
    params = settings.query_params()
    for beta, k in [(0.0, 10), (0.5, 10), (1.0, 10), (0.5, 32), (1.0, 32)]:
        tn = NormalisedTN(tn_params, beta=beta, k=k, background=background)
        raw = predict(gt, feats, tn, params)
        low_true, high_false = separation(gt, raw)
        for threshold in (0.2, settings.query.min_score):
            print(json.dumps({"beta": beta, "k": k, "threshold": threshold, "min_true": round(low_true, 3),
                              "max_false": round(high_false, 3),
                              **{key: round(v, 4) for key, v in evaluate(gt, raw, threshold).items()}}), flush=True)


if __name__ == "__main__":
    main()
