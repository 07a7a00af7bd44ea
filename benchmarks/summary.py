"""What a result file says besides its rows: the headline figures, the tier settings it was measured under and
the machine it ran on."""

from __future__ import annotations

import os
import platform

import torch

from .evaluate_arms import gen_ppl_at_entropy
from .frontier import matched_points, speed_at_quality
from .intervals import frontiers

# Recorded in this order (that of earlier result files), then any other setting; the data's line caps are recorded
# as the sequence counts they gave, and the ablations' training arguments and the MAUVE switch are not recorded.
SETTINGS_ORDER = ("max_length", "data_mode", "drop_long_lines", "ldlm_config", "ldlm_args", "baseline", "ldlm_steps",
                  "mdlm_steps", "knobs", "arm_knobs", "samples", "batch", "speed_repeats", "ablations", "distill")
NOT_RECORDED = ("train_lines", "val_lines", "ablation_args", "mauve")


def summarise(quality: list[dict], speed: list[dict], ref_entropy: float, default_steps: int, batch: int,
              headline_arm: str, ldlm_arms: list[str]) -> dict:
    """The headline figures. `speed_at_quality`: every point of the LDLM-side arms (arm x steps) against the cheapest
    MDLM and AR point of equal or better gen-PPL at matched entropy (benchmarks/frontier.py). The single ratios are
    those of `headline_arm` at its default step count; `speed_vs_mdlm` is None when no MDLM point reaches its
    quality."""
    matched = {f"{arm}@{steps}": gen_ppl_at_entropy(rows, ref_entropy)
               for (arm, steps), rows in frontiers(quality).items()}
    key = f"throughput_batch{batch}_seq_per_s"
    speed_of = {(r["arm"], r["steps"]): r for r in speed}
    frontier = speed_at_quality(matched_points(quality, speed, ref_entropy, batch), ldlm_arms)
    headline = next(r for r in frontier if r["arm"] == headline_arm and r["steps"] == default_steps)
    # a run of some arms (--arms) may measure neither competitor: their ratios are then None
    ldlm_speed, ar_speed = speed_of[(headline_arm, default_steps)], speed_of.get(("ar", 0))
    mdlm = headline["mdlm"]
    return {
        "ldlm_arm": headline_arm,
        "ldlm_default_steps": default_steps,
        "mdlm_matching_steps": mdlm["match"]["steps"] if mdlm["match"] else None,
        "mdlm_matches_ldlm_quality": mdlm["match"] is not None,
        "speed_vs_mdlm": mdlm.get("throughput_ratio"),
        "mdlm_measured": any(r["arm"] == "mdlm" for r in speed),
        "latency_vs_ar_batch1": ar_speed["latency_batch1_s"] / ldlm_speed["latency_batch1_s"] if ar_speed else None,
        "throughput_vs_ar": ldlm_speed[key] / ar_speed[key] if ar_speed else None,
        "ar_matches_ldlm_quality": headline["ar"]["match"] is not None,
        "speed_at_quality": frontier,
        "genppl_at_matched_entropy": {k: v["gen_ppl"] for k, v in matched.items()},
        # False: the arm's sweep never reached the data's entropy, and its figure is the nearest point's gen-PPL.
        "entropy_matched_within_sweep": {k: v["matched"] for k, v in matched.items()},
        "reference_entropy": ref_entropy,
    }


def tier_settings(tier: dict, data: dict) -> dict:
    """What a result was measured under, written next to its rows: the tier's settings and its data's size."""
    settings = {k: tier[k] for k in SETTINGS_ORDER if k in tier}
    settings.update({k: v for k, v in tier.items() if k not in settings and k not in NOT_RECORDED})
    settings.setdefault("data_mode", "sentence")
    settings.update({f"{name}_sequences": len(data[f"{name}_ids"]) for name in ("train", "val")})
    settings.update({f"{name}_mean_tokens": float(data[f"{name}_mask"].sum(1).float().mean())
                     for name in ("train", "val")})
    return settings


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
