"""Speed at matched quality, as a frontier rather than one ratio.

Every (arm, step count) is one point: its gen-PPL at the data's unigram entropy (interpolated along its knob sweep)
and its measured speed (batch-1 latency, large-batch throughput). For each point of an LDLM arm, each competitor
(MDLM, AR) is represented by its cheapest point whose quality is equal or better (gen-PPL at matched entropy no
higher); the ratios compare LDLM's speed with that point's. Where no competitor point reaches the LDLM point's
quality, the entry says so (`match: null`) and gives the competitor's best quality instead: LDLM is then better
than every setting of that competitor, and a speed ratio at equal quality does not exist.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .evaluate_arms import gen_ppl_at_entropy


def throughput_batch(speed_row: dict) -> int:
    """The batch size of a speed row's throughput, read from its `throughput_batch<B>_seq_per_s` key."""
    key = next(k for k in speed_row if k.startswith("throughput_batch") and k.endswith("_seq_per_s"))
    return int(key[len("throughput_batch"):-len("_seq_per_s")])


def matched_points(quality: Sequence[dict], speed: Sequence[dict], ref_entropy: float, batch: int) -> list[dict]:
    """One point per (arm, steps) with a speed row: gen-PPL at `ref_entropy`, whether that was inside the sweep,
    latency, throughput and network calls."""
    by: dict[tuple[str, int], list[dict]] = {}
    for row in quality:
        by.setdefault((row["arm"], row["steps"]), []).append(row)
    key = f"throughput_batch{batch}_seq_per_s"
    points = []
    for r in speed:
        rows = by.get((r["arm"], r["steps"]))
        if not rows:
            continue
        at = gen_ppl_at_entropy(rows, ref_entropy)
        points.append({"arm": r["arm"], "steps": r["steps"], "gen_ppl": at["gen_ppl"], "matched": at["matched"],
                       "network_calls": r["network_calls"], "latency_batch1_s": r["latency_batch1_s"],
                       "throughput": r[key]})
    return points


def _against(point: dict, others: list[dict]) -> dict:
    usable = [q for q in others if q["matched"] and math.isfinite(q["gen_ppl"])]
    good = [q for q in usable if q["gen_ppl"] <= point["gen_ppl"]]
    if not good:
        best = min(usable, key=lambda q: q["gen_ppl"], default=None)
        return {"match": None, "best_gen_ppl": best["gen_ppl"] if best else None,
                "best_steps": best["steps"] if best else None}
    cheapest = max(good, key=lambda q: q["throughput"])
    fastest = min(good, key=lambda q: q["latency_batch1_s"])
    return {"match": {"steps": cheapest["steps"], "gen_ppl": cheapest["gen_ppl"]},
            "throughput_ratio": point["throughput"] / cheapest["throughput"],
            "latency_ratio": fastest["latency_batch1_s"] / point["latency_batch1_s"], "latency_steps": fastest["steps"]}


def speed_at_quality(points: Sequence[dict], ldlm_arms: Sequence[str],
                     competitors: Sequence[str] = ("mdlm", "ar")) -> list[dict]:
    """For every point of an LDLM arm: its figures and, per competitor, the cheapest point of equal or better
    quality with the speed ratios (> 1: LDLM faster), or `match: None` where no such point exists."""
    out = []
    for p in points:
        if p["arm"] not in ldlm_arms:
            continue
        row = dict(p)
        for name in competitors:
            row[name] = _against(p, [q for q in points if q["arm"] == name])
        out.append(row)
    return out


__all__ = ["matched_points", "speed_at_quality"]
