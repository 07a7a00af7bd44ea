"""Render a benchmark result (`benchmarks/results/<tier>.json`) as the markdown tables of BENCHMARKS.md.

    python -m benchmarks.report benchmarks/results/cpu.json [--work_dir runs/bench-cpu] [--plots]

`--work_dir` adds each LDLM run's final training metrics (reconstruction accuracy, latent variance share) when the
result file does not carry them. `--plots` (re)draws the result's two figures next to it (benchmarks/plots.py):
`<name>_frontier.png` (gen-PPL against entropy) and `<name>_speed_frontier.png` (gen-PPL at the data's entropy
against seconds per sequence and batch-1 latency).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ldlm_metrics.bootstrap import interpolate_at_entropy

from .frontier import throughput_batch
from .plots import plot_result


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def train_metrics(result: dict, work_dir: Path | None) -> dict[str, dict]:
    if "train_metrics" in result:
        return result["train_metrics"]
    found = {}
    if work_dir is not None:
        for run in sorted(work_dir.glob("*/ldlm_run.json")):
            found[run.parent.name] = json.loads(run.read_text())["metrics"]
    return found


def versus(entry: dict, key: str) -> str:
    """'3.1× (MDLM 64 steps)', or what the competitor's best is when none of its points reaches this quality."""
    if entry["match"] is None:
        best = entry.get("best_gen_ppl")
        return f"none reaches it (best {fmt(best)})" if best is not None else "no matched point"
    steps = entry["match"]["steps"] if key == "throughput_ratio" else entry["latency_steps"]
    return f"{entry[key]:.2f}× ({'steps ' + str(steps) if steps else 'its only point'})"


def speed_at_quality_table(points: list[dict], batch: int, measured: set[str] = frozenset({"mdlm", "ar"})) -> str:
    """Every LDLM point against the cheapest MDLM/AR point of equal or better gen-PPL at matched entropy; `measured`:
    the competitors the result has rows of (a run of some arms may have neither)."""
    def against(p: dict, name: str) -> list[str]:
        if name not in measured:
            return ["not measured"] * 2
        return [versus(p[name], "throughput_ratio"), versus(p[name], "latency_ratio")]

    def ratios(p: dict) -> list[str]:
        if not p["matched"]:  # the nearest point's gen-PPL is at another entropy: no quality to match against
            return ["not comparable (unmatched)"] * 4
        return [*against(p, "mdlm"), *against(p, "ar")]

    rows = [[p["arm"], p["steps"], p["network_calls"], p["gen_ppl"], "yes" if p["matched"] else "no (nearest)",
             p["latency_batch1_s"], p["throughput"], *ratios(p)] for p in points]
    return table(["arm", "steps", "calls", "gen-PPL (matched)", "matched", "latency b=1 (s)",
                  f"throughput b={batch}", "vs MDLM throughput", "vs MDLM latency", "vs AR throughput",
                  "vs AR latency"], rows)


def provenance(result: dict) -> list[str]:
    """Where the distilled students and any reused rows came from, and what they cost."""
    out = []
    d = result.get("distillation")
    if d:
        out.append(f"\nDistilled students: stages {d['stages']}, {fmt(d['distill_seconds'])} s of distillation against "
                   f"the teacher's {fmt(d['teacher_train_seconds'])} s of training.")
    reuse = result.get("baselines_from")
    if reuse:
        r = reuse["reproducibility"]
        arms = ", ".join(reuse.get("arms", ["ar", "mdlm"]))  # results before 2026-12-06 reused AR and MDLM only
        out.append(f"\n{arms} rows reused from `{reuse['file']}` (trained for {fmt(reuse['train_seconds_per_arm'])} s "
                   f"of LDLM training; not re-measured). LDLM against that file: largest gen-PPL difference "
                   f"{fmt(r['max_relative_gen_ppl_difference'])} over {r['quality_points_compared']} points, median "
                   f"speed ratio new/old {fmt(r['median_latency_ratio_new_over_old'])} (batch-1 latency) and "
                   f"{fmt(r['median_throughput_ratio_new_over_old'])} (throughput).")
    return out


def render(result: dict, work_dir: Path | None = None) -> str:
    """Every table of one result, in BENCHMARKS.md's order."""
    summary = result["summary"]
    batch = throughput_batch(result["speed"][0])
    parts = [*prompted_line(result), arms_table(result, batch), control_line(result["control"]),
             *ratio_lines(summary, batch)]
    if summary.get("claims"):
        parts.append("\n" + claims_table(result))
    if "speed_at_quality" in summary:
        measured = {r["arm"] for r in result["speed"]} & {"mdlm", "ar"}
        parts.append("\n" + speed_at_quality_table(summary["speed_at_quality"], batch, measured))
    parts += ["\n" + frontier_table(result["quality"]), "\n" + ldlm_runs_table(result, work_dir), *provenance(result),
              "\n" + samples(result["quality"])]
    return "\n".join(parts)


def prompted_line(result: dict) -> list[str]:
    """What every figure of a prompted tier means (benchmarks/continuations.py)."""
    if not result.get("tier_settings", {}).get("prompted"):  # older results have no settings: not prompted
        return []
    return [f"Prompted tier: every arm continues the same {result['control']['num_samples']} held-out prompts; gen-PPL "
            "is the perplexity of the continuations given their prompts, entropy the continuations' own, MAUVE "
            "compares [prompt | continuation] with [prompt | real continuation], and the held-out line is the real "
            "continuations. Speed: batch-1 latency with the first prompt, throughput over the first prompts.\n"]


def claims_table(result: dict) -> str:
    """The headline LDLM point against each competitor's best frontier, with 95% bootstrap intervals: a claim holds
    or fails only where the intervals separate. Each side's corpus-pooled entropy at the same matched point says
    whether the two compare texts of like vocabulary: matching the per-sample entropy does not match it."""
    s, quality = result["summary"], result["quality"]

    def interval(pair: list | None) -> str:
        return "–" if not pair else f"[{fmt(pair[0])}, {fmt(pair[1])}]"

    def pooled(frontier: str | None) -> float | None:
        return pooled_entropy_at(quality, frontier, s["reference_entropy"])

    rows = [[c.get("ldlm", "–"), c["versus"], interval(c.get("ldlm_interval")), interval(c.get("versus_interval")),
             c.get("ratio"), c["verdict"], pooled(c.get("ldlm")), pooled(c["versus"])] for c in s["claims"]]
    data_pooled = fmt(result["control"].get("pooled_entropy"))
    return table(["LDLM (best frontier)", "versus (best frontier)",
                  f"LDLM gen-PPL at entropy {s['reference_entropy']:.2f}, 95%", "theirs, 95%", "LDLM / theirs",
                  "LDLM is", f"LDLM pooled entropy there (data {data_pooled})", "theirs"], rows)


def pooled_entropy_at(quality: list[dict], frontier: str | None, entropy: float) -> float | None:
    """The corpus-pooled entropy of frontier `arm@steps` interpolated at per-sample `entropy`, as its gen-PPL is;
    None where the frontier is unnamed, has no pooled entropy (results before 2026-12-04) or does not bracket it."""
    if not frontier or "@" not in frontier:
        return None
    arm, steps = frontier.split("@")
    points = [(r["entropy"], r["pooled_entropy"]) for r in quality
              if r["arm"] == arm and str(r["steps"]) == steps and "pooled_entropy" in r]
    value = interpolate_at_entropy(points, entropy, log=False)
    return None if math.isnan(value) else value


def arms_table(result: dict, batch: int) -> str:
    """One row per (arm, steps): cost, gen-PPL at the data's entropy, MAUVE, latency, throughput and memory."""
    s = result["summary"]
    matched = s["genppl_at_matched_entropy"]
    mauve = {(r["arm"], r["steps"]): r["mauve"] for r in result["quality"] if "mauve" in r}
    rows = [[r["arm"], r["steps"] or "–", r["network_calls"], r.get("gflop_per_sequence"),
             with_interval(matched.get(f"{r['arm']}@{r['steps']}"), s.get("matched_intervals", {}).get(
                 f"{r['arm']}@{r['steps']}")), mauve.get((r["arm"], r["steps"])), r["latency_batch1_s"],
             r[f"throughput_batch{batch}_seq_per_s"], r["peak_memory_mib"]] for r in result["speed"]]
    return table(["arm", "steps", "network calls", "GFLOP per sequence",
                  f"gen-PPL at entropy {s['reference_entropy']:.2f}", "MAUVE (knob 1.0)", "latency b=1 (s)",
                  f"throughput b={batch} (seq/s)", "peak memory (MiB)"], rows)


def with_interval(value, interval: dict | None):
    """A figure, followed by its 95% interval where the result has one."""
    if interval is None or value is None:
        return value
    return f"{fmt(value)} [{fmt(interval['low'])}, {fmt(interval['high'])}]"


def control_line(c: dict) -> str:
    """The held-out data through the same metrics: the figures every arm is compared with."""
    pooled = f"pooled entropy {fmt(c['pooled_entropy'])}, " if "pooled_entropy" in c else ""
    return (f"\nHeld-out data through the same metrics: gen-PPL {fmt(c['gen_ppl'])}, entropy {fmt(c['entropy'])}, "
            f"{pooled}distinct-1 {fmt(c.get('distinct_1'))}, rep-2 {fmt(c['rep_2'])}, distinct-2 {fmt(c['distinct_2'])}, "
            f"mean length {fmt(c['mean_length'])} tokens.")


def ratio_lines(s: dict, batch: int) -> list[str]:
    """The headline ratios, after a note on every sweep that missed the data's entropy and before a warning when
    the headline point itself is one of them."""
    ldlm_arm = s.get("ldlm_arm", "ldlm")
    unmatched = [k for k, ok in s.get("entropy_matched_within_sweep", {}).items() if not ok]
    out = []
    if unmatched:
        out.append(f"\nNot matched: the knob sweep of {', '.join(unmatched)} does not bracket entropy "
                   f"{s['reference_entropy']:.2f}; the figure above is the gen-PPL of the nearest point, which is not "
                   "comparable.")
    ar = ([f"AR/LDLM batch-1 latency = **{s['latency_vs_ar_batch1']:.2f}×**",
           f"LDLM/AR batch-{batch} throughput = **{s['throughput_vs_ar']:.2f}×**"]
          if s.get("latency_vs_ar_batch1") is not None else ["AR not measured in this run"])
    out.append("\n**Ratios** (LDLM = `" + ldlm_arm + "`): " + ", ".join([mdlm_ratio(s), *ar]) + ".")
    headline = f"{ldlm_arm}@{s.get('ldlm_default_steps')}"
    if headline in unmatched:
        out.append(f"These ratios compare unequal quality: {headline} is not matched at the data's entropy. The "
                   "per-point table below says where a comparison at matched quality exists.")
    return out


def mdlm_ratio(s: dict) -> str:
    if not s.get("mdlm_measured", True):  # results before 2026-12-06 always measured MDLM
        return "MDLM not measured in this run"
    if s.get("speed_vs_mdlm") is None:
        return "no MDLM step count reaches LDLM's gen-PPL (LDLM is better at every MDLM setting)"
    return (f"LDLM/MDLM throughput (LDLM {s['ldlm_default_steps']} steps vs MDLM {s['mdlm_matching_steps']} "
            f"steps, which {'matches' if s['mdlm_matches_ldlm_quality'] else 'is MDLM’s best and does not match'}"
            f" LDLM's gen-PPL) = **{s['speed_vs_mdlm']:.2f}×**")


def frontier_table(quality: list[dict]) -> str:
    """Every point of every arm's knob sweep. Beside the per-sample entropy that the sweeps are matched on, the
    corpus-pooled entropy and distinct-1 say whether the texts share one small vocabulary (a point can match the
    data's per-sample entropy with a far narrower vocabulary than the data's); results from before 2026-12-04 have
    no pooled entropy ("–")."""
    rows = [[r["arm"], r["steps"] or "–", f"{r.get('knob_name', 'knob')} {r['knob']}", r["entropy"],
             r.get("pooled_entropy"), r.get("distinct_1"), r["gen_ppl"], r["rep_2"], r["rep_4"], r["distinct_2"],
             r["mean_length"]] for r in quality]
    return table(["arm", "steps", "knob", "entropy", "pooled entropy", "distinct-1", "gen-PPL", "rep-2", "rep-4",
                  "distinct-2", "mean length"], rows)


def ldlm_runs_table(result: dict, work_dir: Path | None) -> str:
    """The full recipe and each ablation: matched gen-PPL, argmax decoding, reconstruction and the warmup."""
    s = result["summary"]
    ldlm_arm, steps = s.get("ldlm_arm", "ldlm"), s["ldlm_default_steps"]
    metrics = train_metrics(result, work_dir)
    full = metrics.get("ldlm", {})
    rows = [["full recipe", "–", s["genppl_at_matched_entropy"].get(f"{ldlm_arm}@{steps}"),
             *argmax_point([r for r in result["quality"] if r["arm"] == "ldlm"], steps),
             full.get("eval_token_accuracy"), full.get("eval_latent_variance_share"), joint_from(full)]]
    for a in result["ablations"]:
        m = metrics.get(f"ablation-{a['ablation']}", {})
        at = a["at_matched_entropy"]
        ppl = at["gen_ppl"] if at["matched"] else f"{fmt(at['gen_ppl'])} (not matched: nearest point, entropy " \
            f"{fmt(at.get('nearest_entropy'))})"
        rows.append([a["ablation"], a["paper_claim"], ppl, *argmax_point(a.get("argmax_rows", []), steps),
                     m.get("eval_token_accuracy"), m.get("eval_latent_variance_share"), joint_from(m)])
    return table(["LDLM run", "paper's claim", f"gen-PPL at entropy {s['reference_entropy']:.2f} "
                  f"({ldlm_arm}, {steps} steps)", "argmax entropy", "argmax gen-PPL", "reconstruction accuracy",
                  "latent variance share", "gamma = 1 from step"], rows)


def argmax_point(rows: list[dict], steps: int) -> list:
    """Entropy and gen-PPL of argmax decoding at noise_scale 1.0 (a collapsed model shows entropy near 0)."""
    row = next((r for r in rows if r["steps"] == steps and r["knob"] == 1.0), None)
    return [row["entropy"], row["gen_ppl"]] if row else [None, None]


def joint_from(m: dict) -> str:
    """The step where gamma reached 1 and the share of the run trained jointly ('never': the warmup did not
    finish; '–': recorded before runs logged it)."""
    if "gamma_start_step" not in m:
        return "–"
    if m.get("gamma_one_step") is None:
        return "never"
    return f"{m['gamma_one_step']} ({m['gamma_one_fraction']:.0%} of the run)"


def samples(quality: list[dict]) -> str:
    """The first two samples of every point at knob 1.0."""
    examples = [f"- **{r['arm']}** ({r['steps'] or '–'} steps, knob {r['knob']}): " + " / ".join(
        repr(t[:120]) for t in r["examples"][:2]) for r in quality if r["knob"] == 1.0]
    return "Samples (knob 1.0, first two):\n\n" + "\n".join(examples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", type=Path)
    parser.add_argument("--work_dir", type=Path, default=None)
    parser.add_argument("--plots", action="store_true", help="draw the result's frontier figures next to it")
    args = parser.parse_args()
    result = json.loads(args.result.read_text())
    print(render(result, args.work_dir))
    if args.plots:
        drawn = plot_result(result, args.result.parent, args.result.stem)
        print("\n" + ("\n".join(f"drew {p}" for p in drawn) if drawn else "matplotlib not installed: no plots"))


if __name__ == "__main__":
    main()
