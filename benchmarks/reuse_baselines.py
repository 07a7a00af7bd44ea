"""Reusing the arms of an earlier result of the same tier (`python -m benchmarks.run --baselines_from FILE`).

Every arm but LDLM's own two (argmax and sampled tokens of the `ldlm` run) depends on LDLM only through its training
seconds (the baselines' budget) or its recipe and steps (the fixed-latent-space arm, the distilled students), so a
rerun that changes only LDLM's generation, or that measures the arms a first run left out (`--arms`), need not train
them again: a long tier can be assembled over several sessions, each committing its rows. LDLM itself is retrained
every time, and a reuse is allowed only when it measures the same thing: same tier, seed, LDLM training (its counted
FLOPs and optimiser steps), scorer (checksum) and held-out control. The result records where the reused rows came
from and how well the rerun reproduced the earlier file's LDLM figures (quality at the same step count and knob; the
speed ratio new / old, which says whether the machine ran as fast as when the reused arms were timed).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .arms import ARMS, LDLM, arms_of

REPRODUCED_ARMS = tuple(arm.name for arm in ARMS if arm.model == LDLM.model)  # the arms of the checked LDLM run
REUSABLE_ARMS = tuple(arm.name for arm in ARMS if arm.name not in REPRODUCED_ARMS)


def load_reused_baselines(path: Path, tier: str, seed: int, ldlm_metrics: dict) -> dict:
    """The earlier result at `path`, after checking it was made for the same tier, seed and LDLM training."""
    if not Path(path).is_file():
        raise ValueError(f"--baselines_from {path}: no such file; pass a result JSON written by benchmarks/run.py.")
    old = json.loads(Path(path).read_text())
    missing = [k for k in ("tier", "seed", "train_metrics", "quality", "speed", "baseline_training") if k not in old]
    if missing:
        raise ValueError(f"--baselines_from {path} is not a benchmarks/run.py result (no {', '.join(missing)}).")
    if old["tier"] != tier or old["seed"] != seed:
        raise ValueError(f"--baselines_from {path} is tier {old['tier']!r} seed {old['seed']}; this run is tier "
                         f"{tier!r} seed {seed}: reuse baselines only from the same tier and seed.")
    old_ldlm = old["train_metrics"].get("ldlm", {})
    for key in ("total_flos", "epoch"):
        if old_ldlm.get(key) != ldlm_metrics.get(key):
            raise ValueError(f"--baselines_from {path}: its LDLM arm trained differently ({key} {old_ldlm.get(key)} "
                             f"against {ldlm_metrics.get(key)} here), so its baselines' training budget does not "
                             "apply; rerun without --baselines_from.")
    if not reused_arms(old):
        raise ValueError(f"--baselines_from {path} has no speed rows for any of {', '.join(REUSABLE_ARMS)}.")
    return old


def check_not_overwritten(baselines_from: Path | None, result_file: Path) -> None:
    """Refuse a run that would write its result over the file whose baselines it reuses."""
    if baselines_from is not None and Path(baselines_from).resolve() == Path(result_file).resolve():
        raise ValueError(f"--baselines_from {baselines_from} is the file this run writes its result to: pass another "
                         "--results_dir (e.g. runs/bench-results) so that the reused result stays as it is.")


def reused_arms(old: dict | None, tier: dict | None = None) -> set[str]:
    """The arms other than LDLM's own that an earlier result measured (and `tier` measures, when given): their rows
    are reused; the tier's other arms train in this run."""
    if old is None:
        return set()
    names = {r["arm"] for r in old["speed"]} & set(REUSABLE_ARMS)
    return names if tier is None else names & {arm.name for arm in arms_of(tier)}


def reused_models(old: dict | None, tier: dict | None = None) -> set[str]:
    """The trained models behind the reused arms (two arms may sample one model)."""
    names = reused_arms(old, tier)
    return {arm.model for arm in ARMS if arm.name in names}


def check_same_scoring(old: dict, scorer_checksum: str, control: dict, path: Path) -> None:
    """Gen-PPL of reused rows is comparable only under the same scorer and the same held-out sentences."""
    if old.get("scorer_checksum") != scorer_checksum:
        raise ValueError(f"--baselines_from {path} was scored by another scorer (checksum "
                         f"{old.get('scorer_checksum')} against {scorer_checksum}); rerun without --baselines_from.")
    if abs(old["control"]["entropy"] - control["entropy"]) > 1e-6:
        raise ValueError(f"--baselines_from {path}: held-out entropy {old['control']['entropy']:.4f} against "
                         f"{control['entropy']:.4f} here; the data differ, so the baselines cannot be reused.")


def reused_rows(old: dict | None, tier: dict | None = None) -> tuple[list[dict], list[dict]]:
    """The earlier file's quality and speed rows of the reused arms (none when nothing is reused)."""
    arms = reused_arms(old, tier)
    if old is None:
        return [], []
    return [r for r in old["quality"] if r["arm"] in arms], [r for r in old["speed"] if r["arm"] in arms]


def reproducibility(old: dict, quality: list[dict], speed: list[dict]) -> dict:
    """How the rerun's LDLM figures compare with the earlier file's, at the points both measured: the largest
    relative gen-PPL difference and the median speed ratio (new / old) of batch-1 latency and batch throughput."""
    def keyed(rows, fields):
        return {tuple(r[f] for f in fields): r for r in rows if r["arm"] in REPRODUCED_ARMS}

    old_q, new_q = keyed(old["quality"], ("arm", "steps", "knob")), keyed(quality, ("arm", "steps", "knob"))
    shared_q = sorted(set(old_q) & set(new_q))
    gen_ppl_diff = [abs(new_q[k]["gen_ppl"] / old_q[k]["gen_ppl"] - 1) for k in shared_q]
    old_s, new_s = keyed(old["speed"], ("arm", "steps")), keyed(speed, ("arm", "steps"))
    shared_s = sorted(set(old_s) & set(new_s))
    throughput = next((k for k in (new_s[shared_s[0]] if shared_s else {}) if k.startswith("throughput_batch")), None)

    def median_ratio(field):
        ratios = [new_s[k][field] / old_s[k][field] for k in shared_s if field in old_s[k]]
        return statistics.median(ratios) if ratios else None

    return {"quality_points_compared": len(shared_q),
            "max_relative_gen_ppl_difference": max(gen_ppl_diff) if gen_ppl_diff else None,
            "speed_points_compared": len(shared_s),
            "median_latency_ratio_new_over_old": median_ratio("latency_batch1_s"),
            "median_throughput_ratio_new_over_old": median_ratio(throughput) if throughput else None}


def reuse_record(old: dict, path: Path, quality: list[dict], speed: list[dict], tier: dict | None = None) -> dict:
    arms = sorted(reused_arms(old, tier))
    return {"file": str(path), "command": old.get("command"), "train_seconds_per_arm": old.get("train_seconds_per_arm"),
            "arms": arms, "note": f"{', '.join(arms)} rows (quality, speed, training) copied from this file; "
                                  "not re-measured in this run",
            "reproducibility": reproducibility(old, quality, speed)}
