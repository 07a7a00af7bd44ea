"""Intervals of a result's headline quality figure, and the claims they can carry.

Each (arm, step count) frontier's gen-PPL at the data's entropy gets a 95% bootstrap interval
(`ldlm_metrics.bootstrap.bootstrap_matched_gen_ppl`: every knob point's samples and the held-out texts' entropies
resampled). A claim compares the best matched frontier of some LDLM arms (the step count and decoding with the
lowest gen-PPL at the data's entropy) with another arm's best: it holds or fails only where the two intervals do not
overlap; otherwise the two are "not distinguishable" at this number of samples. Joint and fixed latent spaces are
compared decoding by decoding (argmax with the noise-scale knob, sampled tokens with the temperature knob).
"""

from __future__ import annotations

import math

from ldlm_metrics.bootstrap import SampleScores, bootstrap_matched_gen_ppl, distinguishable


def frontiers(quality: list[dict]) -> dict[tuple[str, int], list[dict]]:
    by: dict[tuple[str, int], list[dict]] = {}
    for row in quality:
        by.setdefault((row["arm"], row["steps"]), []).append(row)
    return by


def matched_intervals(quality: list[dict], control: dict, seed: int = 0) -> dict[str, dict]:
    """`{"<arm>@<steps>": {value, low, high, level, matched_share}}` for every frontier whose rows kept their
    per-sample scores (rows of older results did not: they get no interval)."""
    out = {}
    for (arm, steps), rows in frontiers(quality).items():
        kept = [r for r in rows if "text_nll" in r]
        if kept and "text_entropy" in control:
            scores = [SampleScores.from_row(r) for r in kept]
            out[f"{arm}@{steps}"] = bootstrap_matched_gen_ppl(scores, control["text_entropy"], seed=seed)
    return out


def best_frontier(intervals: dict[str, dict], arms: tuple[str, ...]) -> tuple[str, dict] | None:
    """The (arm, step count) of `arms` with the lowest matched gen-PPL (None when none reaches the entropy)."""
    own = [(k, v) for k, v in intervals.items() if k.split("@")[0] in arms and math.isfinite(v["value"])]
    return min(own, key=lambda kv: kv[1]["value"]) if own else None


def verdict(ours: dict, theirs: dict) -> str:
    """'better' / 'worse' (lower gen-PPL is better) when the intervals separate, else 'not distinguishable'."""
    if not distinguishable(ours, theirs):
        return "not distinguishable"
    return "better" if ours["value"] < theirs["value"] else "worse"


def claims(intervals: dict[str, dict], comparisons: list[tuple[tuple[str, ...], str]]) -> list[dict]:
    """One claim per (LDLM arms, competitor arm): the best matched frontier of each side, compared."""
    out = []
    for ours_arms, theirs_arm in comparisons:
        ours, theirs = best_frontier(intervals, ours_arms), best_frontier(intervals, (theirs_arm,))
        claim = {"ldlm": ours[0] if ours else "/".join(ours_arms), "versus": theirs[0] if theirs else theirs_arm}
        if ours is None or theirs is None:
            claim["verdict"] = "LDLM has no matched point" if ours is None else "no matched point"
        else:
            claim.update(verdict=verdict(ours[1], theirs[1]), ldlm_interval=[ours[1]["low"], ours[1]["high"]],
                         versus_interval=[theirs[1]["low"], theirs[1]["high"]], ratio=ours[1]["value"] / theirs[1]["value"])
        out.append(claim)
    return out


def interval_summary(quality: list[dict], control: dict, comparisons: list[tuple[tuple[str, ...], str]],
                     seed: int) -> dict:
    """What a result's summary adds: every frontier's matched interval, and the claims (empty for rows without
    per-sample scores)."""
    intervals = matched_intervals(quality, control, seed)
    return {"matched_intervals": intervals, "claims": claims(intervals, comparisons)} if intervals else {}
