"""The benchmark's two figures, drawn from a result's quality and speed rows (matplotlib, optional).

- `plot_entropy_frontier`: gen-PPL against mean unigram entropy along each arm's knob sweep, one curve per
  (arm, step count), with the held-out data's point; gen-PPL is compared where a curve crosses the data's entropy.
- `plot_speed_frontier`: quality against cost. Each (arm, step count) is one point: its gen-PPL at the data's
  entropy (benchmarks/frontier.py) against seconds per sequence at the large batch (1 / throughput) and against
  batch-1 latency. Lower-left is better; a point whose sweep never reached the data's entropy is drawn hollow (its
  gen-PPL is the nearest point's, not a matched one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from .arms import ARMS
from .frontier import matched_points, throughput_batch

# One hue per arm, its record's colour (paler = fewer steps); black for an arm no record names.
COLOURS = {arm.name: arm.colour for arm in ARMS}
DASHED = tuple(arm.name for arm in ARMS if arm.dashed)  # argmax decoding: the knob is the initial noise scale


def _pyplot():
    """matplotlib's pyplot on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colour(arm: str, index: int, count: int) -> tuple[float, float, float]:
    """The arm's colour for its `index`-th of `count` step counts: the most steps in the full colour, fewer ones
    mixed with up to 55% white."""
    from matplotlib.colors import to_rgb

    white = 0.55 * (1 - index / (count - 1)) if count > 1 else 0.0
    return tuple(c + (1 - c) * white for c in to_rgb(COLOURS.get(arm, "black")))


def _error_bars(ax, points: list[tuple[float, float, list | None]], colour) -> None:
    """Vertical 95% bootstrap intervals (x, value, [low, high]) where a result has them."""
    kept = [(x, y, ci) for x, y, ci in points if ci and all(math.isfinite(v) for v in (y, *ci))]
    if kept:
        ax.errorbar([x for x, _, _ in kept], [y for _, y, _ in kept], fmt="none", ecolor=colour, elinewidth=1,
                    capsize=2, yerr=[[y - ci[0] for _, y, ci in kept], [ci[1] - y for _, y, ci in kept]])


def plot_entropy_frontier(quality: Sequence[dict], control: dict, path: Path) -> bool:
    """gen-PPL vs entropy over each arm's knob; returns False (and draws nothing) without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(8, 5.5))
    curves = sorted({(r["arm"], r["steps"]) for r in quality})
    for arm, steps in curves:
        rows = sorted((r for r in quality if r["arm"] == arm and r["steps"] == steps), key=lambda r: r["entropy"])
        arm_steps = [s for a, s in curves if a == arm]
        colour = _colour(arm, arm_steps.index(steps), len(arm_steps))
        ax.plot([r["entropy"] for r in rows], [r["gen_ppl"] for r in rows], marker="o", color=colour,
                linestyle="--" if arm in DASHED else "-", label=f"{arm} ({steps} steps)" if steps else arm)
        _error_bars(ax, [(r["entropy"], r["gen_ppl"], r.get("gen_ppl_interval")) for r in rows], colour)
    if math.isfinite(control["gen_ppl"]):
        ax.scatter([control["entropy"]], [control["gen_ppl"]], marker="*", s=200, c="k", label="held-out data")
    ax.axvline(control["entropy"], color="k", linestyle=":", linewidth=1)  # gen-PPL is compared on this line
    ax.set_xlabel("mean unigram entropy (nats)")
    ax.set_ylabel(f"gen-PPL ({control['scorer']})")
    ax.set_yscale("log")
    ax.set_title("gen-PPL vs entropy over each arm's knob (darker = more steps)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_speed_frontier(quality: Sequence[dict], speed: Sequence[dict], control: dict, batch: int,
                        path: Path, intervals: dict[str, dict] | None = None) -> bool:
    """gen-PPL at the data's entropy against seconds per sequence (batch `batch`) and batch-1 latency, one point
    per (arm, step count), log-log, with its 95% interval where `intervals` ("<arm>@<steps>" -> {low, high}) has
    one; returns False (and draws nothing) without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return False
    from matplotlib.ticker import NullFormatter

    points = [p for p in matched_points(quality, speed, control["entropy"], batch) if math.isfinite(p["gen_ppl"])]
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    panels = ((axes[0], lambda p: 1.0 / p["throughput"], f"seconds per sequence at batch {batch} (1 / throughput)"),
              (axes[1], lambda p: p["latency_batch1_s"], "batch-1 latency (s)"))
    for ax, cost, label in panels:
        for arm in sorted({p["arm"] for p in points}):
            mine = sorted((p for p in points if p["arm"] == arm), key=cost)
            colour = _colour(arm, 1, 2)
            ax.plot([cost(p) for p in mine], [p["gen_ppl"] for p in mine], color=colour,
                    linestyle="--" if arm in DASHED else "-", linewidth=1, label=arm)
            bars = (intervals or {})
            # the interval is that of the figure at the data's entropy: a point outside its sweep has none
            _error_bars(ax, [(cost(p), p["gen_ppl"], _pair(bars.get(f"{p['arm']}@{p['steps']}"))) for p in mine
                             if p["matched"]], colour)
            for p in mine:
                ax.scatter([cost(p)], [p["gen_ppl"]], s=36, color=colour, zorder=3,
                           facecolors=colour if p["matched"] else "none")
                ax.annotate(str(p["steps"]) if p["steps"] else "", (cost(p), p["gen_ppl"]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        if math.isfinite(control["gen_ppl"]):
            ax.axhline(control["gen_ppl"], color="k", linestyle=":", linewidth=1, label="held-out data")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a log axis collide
        ax.set_xlabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"gen-PPL at entropy {control['entropy']:.2f} ({control['scorer']})")
    axes[0].legend(fontsize=7)
    fig.suptitle("Quality against cost: one point per arm and step count (label = steps; hollow = not matched "
                 "at the data's entropy; lower-left is better)" + ("\nbars: 95% bootstrap intervals; overlapping "
                                                                   "bars are not distinguishable" if intervals else ""),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _pair(interval: dict | None) -> list | None:
    return None if interval is None else [interval["low"], interval["high"]]


def plot_result(result: dict, out_dir: Path, name: str) -> list[Path]:
    """Both figures of one result file, as `<name>_frontier.png` and `<name>_speed_frontier.png`; the paths
    drawn (none without matplotlib)."""
    batch = throughput_batch(result["speed"][0])
    entropy_png, speed_png = out_dir / f"{name}_frontier.png", out_dir / f"{name}_speed_frontier.png"
    drawn = []
    if plot_entropy_frontier(result["quality"], result["control"], entropy_png):
        drawn.append(entropy_png)
    if plot_speed_frontier(result["quality"], result["speed"], result["control"], batch, speed_png,
                           result["summary"].get("matched_intervals")):
        drawn.append(speed_png)
    return drawn


__all__ = ["plot_entropy_frontier", "plot_result", "plot_speed_frontier"]
