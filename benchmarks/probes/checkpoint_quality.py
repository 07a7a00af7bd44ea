"""The quality of one or more trained LDLM folders, side by side, with 95% bootstrap intervals.

    python -m benchmarks.probes.checkpoint_quality runs/quickstart runs/other --samples 256 --steps 10

For each folder, the benchmark's two LDLM decodings: sampled tokens (noise scale 1) swept over token temperatures
(`--temperatures`), and argmax tokens swept over the initial noise scale (`--noise_scales`). Every point is scored
like a benchmark arm (gen-PPL under the offline scorer, per-sample and pooled entropy, repetition), and each sweep's
gen-PPL at the held-out texts' entropy gets its interval (every point's samples and the held-out entropies
resampled). Held-out texts: by default the last 5% of the Brown corpus, which the CPU presets hold out; `--held_out
FILE` reads one text per line instead (a benchmark tier's `validation.txt`, to score at that tier's length:

    python -m benchmarks.probes.checkpoint_quality runs/bench-cpu-packed-thesis/ldlm \
        --held_out runs/bench-cpu-packed-thesis/validation.txt

). Prints one JSON line per folder, and writes them to `--output` when given.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import torch

from ldlm_metrics import load_scorer
from modeling_ldlm import LDLMForDiffusionGeneration

from ..evaluate_arms import quality_rows, text_metrics
from ..intervals import matched_intervals
from ..ldlm_arms import ldlm_sampler
from ..paths import BROWN
from ..tiers import WIDE_KNOBS

TEMPERATURES = NOISE_SCALES = tuple(WIDE_KNOBS)  # the tiers' sweep of both knobs


def brown_held_out() -> list[str]:
    """The last 5% of the Brown corpus's sentences, which the CPU presets hold out."""
    lines = [line.strip() for line in gzip.open(BROWN, "rt", encoding="utf-8") if line.strip()]
    return lines[int(len(lines) * 0.95):]


def read_held_out(path: Path) -> list[str]:
    """One held-out text per non-empty line of a plain-text file."""
    if not path.is_file():
        raise ValueError(f"--held_out {path}: no such file; pass a plain-text file with one held-out text per line "
                         f"(a benchmark tier's validation.txt, for example).")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def held_out(tokenizer, count: int, max_length: int, texts: list[str] | None = None) -> list[list[int]]:
    """Token ids (no special tokens) of the first `count` held-out texts (default: Brown's) that fit the canvas."""
    rows = []
    for line in brown_held_out() if texts is None else texts:
        ids = tokenizer(line, add_special_tokens=False).input_ids
        if len(ids) <= max_length - 2:
            rows.append(ids)
        if len(rows) == count:
            break
    return rows


def evaluate_folder(folder: Path, scorer, samples: int, steps: int, seed: int, temperatures=TEMPERATURES,
                    noise_scales=NOISE_SCALES, held_out_texts: list[str] | None = None) -> dict:
    model = LDLMForDiffusionGeneration.from_pretrained(folder).eval()
    tokenizer, special = model.tokenizer, frozenset(model.tokenizer.all_special_ids)

    def decode(ids):
        return tokenizer.decode(ids, skip_special_tokens=True)

    control = {"arm": "data", **text_metrics(held_out(tokenizer, samples, model.config.max_sequence_length,
                                                      held_out_texts), decode, scorer)}
    sampled = quality_rows("sampled", ldlm_sampler(model, special, "temperature"), [steps], temperatures, samples,
                           decode, scorer, 64, seed)
    argmax = quality_rows("argmax", ldlm_sampler(model, special, "noise_scale"), [steps], noise_scales, samples,
                          decode, scorer, 64, seed)
    intervals = matched_intervals(sampled + argmax, control, seed)
    run = json.loads((folder / "ldlm_run.json").read_text()) if (folder / "ldlm_run.json").exists() else {}
    brief = ("knob", "entropy", "pooled_entropy", "gen_ppl", "gen_ppl_interval", "rep_2", "examples")
    return {"folder": str(folder), "steps": steps, "samples": samples, "scorer": scorer.name,
            "data_entropy": control["entropy"], "data_gen_ppl": control["gen_ppl"],
            "gen_ppl_at_data_entropy": intervals[f"sampled@{steps}"],
            "argmax_gen_ppl_at_data_entropy": intervals[f"argmax@{steps}"],
            "sampled": [{k: r[k] for k in brief if k in r} for r in sampled],
            "argmax": [{k: r[k] for k in brief if k in r} for r in argmax],
            "eval_token_accuracy": run.get("metrics", {}).get("eval_token_accuracy"),
            "gamma": {k: run.get("metrics", {}).get(k) for k in ("gamma_start_step", "gamma_one_step",
                                                                 "gamma_one_fraction")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scorer", default=None, help="causal LM name or folder; default: offline SmolLM2")
    parser.add_argument("--temperatures", type=float, nargs="+", default=list(TEMPERATURES),
                        help="token temperatures of the sampled sweep (noise scale 1)")
    parser.add_argument("--noise_scales", type=float, nargs="+", default=list(NOISE_SCALES),
                        help="initial noise scales of the argmax sweep")
    parser.add_argument("--held_out", type=Path, default=None,
                        help="plain-text file, one held-out text per line (default: Brown's last 5%%)")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if any(k <= 0 for k in args.temperatures + args.noise_scales):
        parser.error("--temperatures and --noise_scales must be positive (argmax is its own sweep).")
    torch.manual_seed(args.seed)
    texts = None if args.held_out is None else read_held_out(args.held_out)
    scorer = load_scorer(args.scorer)
    results = [evaluate_folder(folder, scorer, args.samples, args.steps, args.seed, args.temperatures,
                               args.noise_scales, texts) for folder in args.folders]
    for result in results:
        result["held_out"] = str(args.held_out) if args.held_out else "Brown, last 5%"
        print(json.dumps(result))
    if args.output is not None:
        args.output.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
