"""One rule per fault for token ids, and one end-of-sequence rule for both tokenizer families."""

import pytest
import torch
from transformers import AutoTokenizer

from modeling_ldlm.token_ids import (
    check_token_batch,
    check_token_ids,
    end_of_sequence_id,
    start_of_sequence_id,
)
from tests.conftest import tiny_bpe_tokenizer, tiny_lm_folder


def test_end_of_sequence_id_for_both_tokenizer_families(tmp_path):
    bert = AutoTokenizer.from_pretrained(tiny_lm_folder(tmp_path / "bert"))
    assert (end_of_sequence_id(bert), start_of_sequence_id(bert)) == (bert.sep_token_id, bert.cls_token_id) == (3, 2)
    gpt2 = tiny_bpe_tokenizer()
    assert gpt2.sep_token_id is None and gpt2.eos_token_id is not None
    assert end_of_sequence_id(gpt2) == start_of_sequence_id(gpt2) == gpt2.eos_token_id


@pytest.mark.parametrize("bad, error, match", [
    ([[1, 2]], TypeError, "LongTensor"),
    (torch.ones(1, 3), TypeError, "integer"),
    (torch.ones(1, 3, dtype=torch.bool), TypeError, "integer"),
    (torch.ones(2, 0, dtype=torch.long), ValueError, "shape"),
    (torch.ones(1, 2, 3, dtype=torch.long), ValueError, "shape"),
    (torch.ones(1, 40, dtype=torch.long), ValueError, "max_sequence_length"),
])
def test_one_exception_type_per_fault(bad, error, match):
    with pytest.raises(error, match=match):
        check_token_ids("input_ids", bad, max_length=16)
    with pytest.raises(error, match=match):
        check_token_batch(bad if not (isinstance(bad, torch.Tensor) and bad.dim() == 1) else bad, None, 97, 16)


def test_batch_rules():
    ids = torch.tensor([[5, 6, 7], [5, 6, 0]])
    with pytest.raises(ValueError, match="vocabulary"):
        check_token_batch(ids + 97, None, 97, 16)
    with pytest.raises(ValueError, match="right padding"):
        check_token_batch(ids, torch.tensor([[1, 1, 1], [0, 1, 1]]), 97, 16)
    with pytest.raises(ValueError, match="only 0 and 1"):
        check_token_batch(ids, torch.tensor([[1, 1, 2], [1, 1, 0]]), 97, 16)
    with pytest.raises(TypeError, match="tensor"):
        check_token_batch(ids, [[1, 1, 1], [1, 1, 0]], 97, 16)
    out, mask = check_token_batch(ids, torch.tensor([[1, 1, 1], [1, 1, 0]]), 97, 16)
    assert out.dtype == mask.dtype == torch.long
