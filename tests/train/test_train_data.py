"""The datasets pipeline: local files, sentence and packed modes, empty and over-long lines, collation, caching."""

import pytest
import torch

from tests.conftest import tiny_lm_folder, tiny_model
from train.data import (
    CachedHiddenDataset,
    LDLMCollator,
    load_text,
    precompute_hidden_states,
    tokenize,
)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_lm_folder(tmp_path_factory.mktemp("lm")))


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_sentence_mode_handles_empty_and_long_lines(tmp_path, tokenizer):
    lines = ["w1 w2 w3", "", "   ", " ".join(f"w{i}" for i in range(40)), "w5"] * 4
    raw = load_text(train_file=write(tmp_path / "t.txt", lines), validation_split_percentage=25)
    assert len(raw["train"]) == 15 and len(raw["validation"]) == 5
    tok = tokenize(raw, tokenizer, max_length=8, mode="sentence", long_lines="truncate")
    ids = tok["train"]["input_ids"]
    assert len(ids) == 9  # 3 non-empty lines in each of the first three repeats
    assert all(len(x) <= 8 and x[-1] == tokenizer.sep_token_id for x in ids)
    assert max(len(x) for x in ids) == 8
    dropped = tokenize(raw, tokenizer, max_length=8, mode="sentence", long_lines="drop")
    assert len(dropped["train"]) == 6


def test_packed_mode_chunks_exactly(tmp_path, tokenizer):
    lines = [" ".join(f"w{j}" for j in range(i % 7 + 1)) for i in range(60)] + [""]
    raw = load_text(train_file=write(tmp_path / "t.txt", lines), validation_file=write(tmp_path / "v.txt", lines))
    tok = tokenize(raw, tokenizer, max_length=8, mode="packed")
    assert all(len(x) == 8 for x in tok["train"]["input_ids"])
    assert tokenizer.sep_token_id in sum(tok["train"]["input_ids"], [])


@pytest.mark.parametrize("mode", ["sentence", "packed"])
def test_streaming_gives_the_ids_of_the_materialised_pipeline(tmp_path, tokenizer, mode):
    """A stream is tokenised lazily but yields exactly the examples of the materialised path, in the same order;
    without a validation file it holds out the first rows."""
    lines = [" ".join(f"w{(i * 3 + j) % 50}" for j in range(i % 11 + 1)) for i in range(2500)] + ["", " "]
    train, valid = write(tmp_path / "t.txt", lines), write(tmp_path / "v.txt", lines[:300])
    whole = tokenize(load_text(train_file=train, validation_file=valid), tokenizer, max_length=8, mode=mode)
    stream = tokenize(load_text(train_file=train, validation_file=valid, streaming=True), tokenizer, max_length=8,
                      mode=mode)
    for split in ("train", "validation"):
        assert [x["input_ids"] for x in stream[split]] == whole[split]["input_ids"], split
    held_out = load_text(train_file=train, streaming=True, streaming_validation_rows=40)
    assert [x["text"] for x in held_out["validation"]] == lines[:40]
    assert next(iter(held_out["train"]))["text"] == lines[40]


def test_bad_data_raises(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="empty"):
        (tmp_path / "e.txt").write_text("")
        load_text(train_file=str(tmp_path / "e.txt"))
    with pytest.raises(ValueError, match="does not exist"):
        load_text(train_file=str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="train_file"):
        load_text()
    raw = load_text(train_file=write(tmp_path / "b.txt", ["", "  "] * 10 + ["w1"] * 10), validation_split_percentage=50)
    with pytest.raises(ValueError, match="No train examples"):
        tokenize(raw, tokenizer, max_length=8)
    with pytest.raises(ValueError, match="mode"):
        tokenize(raw, tokenizer, max_length=8, mode="chunks")


def test_collator_and_cached_states(tmp_path, tokenizer):
    model = tiny_model()
    raw = load_text(train_file=write(tmp_path / "t.txt", ["w1 w2 w3", "w4", "w5 w6"] * 4))
    tok = tokenize(raw, tokenizer, max_length=8)
    states = precompute_hidden_states(model, tok["train"], batch_size=4, cache_dir=str(tmp_path / "cache"))
    again = precompute_hidden_states(model, tok["train"], batch_size=4, cache_dir=str(tmp_path / "cache"))
    assert len(list((tmp_path / "cache").iterdir())) == 1 and torch.equal(states[0], again[0])
    ds = CachedHiddenDataset(tok["train"], states)
    batch = LDLMCollator(0)([ds[0], ds[1]])
    n0, n1 = len(ds[0]["input_ids"]), len(ds[1]["input_ids"])
    assert batch["input_ids"].shape == (2, max(n0, n1)) and batch["attention_mask"].sum() == n0 + n1
    assert batch["hidden_states"].dtype == torch.float16 and batch["hidden_states"].shape[-1] == 32
    # the cached states are the frozen LM's: forward with and without them agrees
    direct = model.frozen_hidden_states(batch["input_ids"], batch["attention_mask"])
    keep = batch["attention_mask"].bool()
    assert torch.allclose(direct[keep], batch["hidden_states"].float()[keep], atol=1e-2)
    model.fit_hidden_statistics_from_states(states)
    assert bool(model.hidden_stats_fitted)
    model.eval()
    kw = dict(timesteps=torch.full((2,), 0.5), noise=torch.zeros(2, 4, 8), self_conditioning=False)
    a = model(batch["input_ids"], batch["attention_mask"], **kw)
    b = model(batch["input_ids"], batch["attention_mask"], hidden_states=batch["hidden_states"], **kw)
    assert torch.allclose(a.loss, b.loss, atol=1e-2)
