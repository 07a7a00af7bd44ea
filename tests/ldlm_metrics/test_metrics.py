import math
from types import SimpleNamespace

import pytest
import torch

from ldlm_metrics import (
    Scorer,
    distinct_n,
    generative_perplexity,
    mean_repetition_rate,
    mean_unigram_entropy,
    repetition_rate,
    unigram_entropy,
)

WORDS = ["<s>", "a", "b", "c", "d"]


class WordTokenizer:
    bos_token_id, eos_token_id = 0, 0

    def __call__(self, text, add_special_tokens=False, truncation=True, max_length=None):
        ids = [WORDS.index(w) for w in text.split()]
        return SimpleNamespace(input_ids=ids[:max_length] if truncation and max_length else ids)


class CyclicLM(torch.nn.Module):
    """Predicts a -> b -> c -> d -> a with confidence `sharpness` (0 gives the uniform distribution)."""

    def __init__(self, sharpness: float):
        super().__init__()
        self.sharpness = sharpness
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        nxt = torch.where(input_ids == 0, torch.ones_like(input_ids), input_ids % 4 + 1)
        logits = self.sharpness * torch.nn.functional.one_hot(nxt, len(WORDS)).float()
        return SimpleNamespace(logits=logits, hidden_states=(logits,))


def scorer(sharpness):
    return Scorer(model=CyclicLM(sharpness), tokenizer=WordTokenizer(), name="cyclic", checksum="none")


def test_unigram_entropy_known_values():
    assert unigram_entropy([1, 2, 3, 4]) == pytest.approx(math.log(4))
    assert unigram_entropy([7] * 10) == 0.0
    assert unigram_entropy([]) == 0.0
    assert unigram_entropy([1, 1, 2, 2]) == pytest.approx(math.log(2))
    assert mean_unigram_entropy([[1, 2], [3, 3]]) == pytest.approx(math.log(2) / 2)


def test_repetition_and_distinct():
    assert repetition_rate([1, 2, 1, 2, 1, 2], 2) == pytest.approx(1 - 2 / 5)
    assert repetition_rate([1, 2, 3, 4], 2) == 0.0
    assert repetition_rate([1], 2) == 0.0
    assert mean_repetition_rate([[5, 5, 5, 5], [1, 2, 3, 4]], 1) == pytest.approx((1 - 1 / 4) / 2)
    assert distinct_n([[1, 2, 3], [1, 2, 4]], 2) == pytest.approx(3 / 4)
    with pytest.raises(ValueError):
        repetition_rate([1, 2], 0)


def test_perplexity_of_a_certain_scorer_is_one_and_of_a_uniform_one_is_the_vocabulary():
    texts = ["a b c d a b c", "a b c"]  # after <s> the model predicts "a"
    certain = generative_perplexity(texts, scorer(60.0))
    assert certain["gen_ppl"] == pytest.approx(1.0, abs=1e-6)
    assert certain["scored_tokens"] == 10 and certain["scorer"] == "cyclic"
    uniform = generative_perplexity(texts, scorer(0.0))
    assert uniform["gen_ppl"] == pytest.approx(len(WORDS))
    wrong_order = generative_perplexity(["d c b a"], scorer(5.0))
    assert wrong_order["gen_ppl"] > 10


def test_perplexity_skips_empty_texts_and_rejects_all_empty():
    result = generative_perplexity(["a b", "  ", ""], scorer(60.0))
    assert result["empty_texts"] == 2 and result["num_texts"] == 1
    with pytest.raises(ValueError, match="non-empty"):
        generative_perplexity(["", " "], scorer(1.0))


@pytest.mark.slow
def test_offline_scorer_prefers_english():
    pytest.importorskip("gguf")
    from ldlm_metrics import load_scorer

    s = load_scorer()
    good = generative_perplexity(["The cat sat on the mat and looked out of the window."], s)["gen_ppl"]
    bad = generative_perplexity(["window the of out looked and mat the on sat cat The."], s)["gen_ppl"]
    assert good < bad and len(s.checksum) == 16


# ---- the local `evaluate` modules (evaluate_metrics/), loaded by path: offline ------------------------------------
EVALUATE_DIR = __import__("pathlib").Path(__file__).resolve().parents[2] / "evaluate_metrics"


def load_metric(name):
    evaluate = pytest.importorskip("evaluate")
    return evaluate.load(str(EVALUATE_DIR / name))


def test_evaluate_gen_ppl_module():
    metric = load_metric("ldlm_gen_ppl")
    certain = metric.compute(predictions=["a b c d a b c", "a b c"], scorer=scorer(60.0))
    assert certain["gen_ppl"] == pytest.approx(1.0, abs=1e-6) and certain["scorer"] == "cyclic"
    assert metric.compute(predictions=["a b c"], scorer=scorer(0.0))["gen_ppl"] == pytest.approx(len(WORDS))


def test_evaluate_text_stats_module():
    stats = load_metric("ldlm_text_stats").compute(predictions=["a b c d", "x x x x"])
    assert stats["entropy"] == pytest.approx(math.log(4) / 2)
    assert stats["rep_2"] == pytest.approx((0 + (1 - 1 / 3)) / 2)
    assert stats["distinct_1"] == pytest.approx(5 / 8)


def test_evaluate_mauve_module():
    pytest.importorskip("mauve")
    texts = ["a b c d", "b c d a", "c d a b", "d a b c", "a b", "b c a", "c d d", "d a a c", "a", "b b"] * 4
    metric = load_metric("ldlm_mauve")
    same = metric.compute(predictions=texts, references=texts, scorer=scorer(5.0))
    assert same["mauve"] == pytest.approx(1.0) and same["scorer"] == "cyclic" and same["seed"] == 0
    collapsed = metric.compute(predictions=["a b c d"] * 40, references=texts, scorer=scorer(5.0))
    assert collapsed["mauve"] < 0.2


def _fake_gguf_conversion(monkeypatch):
    """offline_scorer_folder with a tiny GPT-2 in place of the dequantised SmolLM2 GGUF (same code path after loading)."""
    import importlib.util

    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.conftest import tiny_bpe_tokenizer

    tiny = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=8, n_layer=1, n_head=1, n_positions=16))
    tokenizer = tiny_bpe_tokenizer(300)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: SimpleNamespace(origin=__file__))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: tiny)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tokenizer)


def test_offline_scorer_conversion_writes_the_folder_once_and_leaves_no_temporary(tmp_path, monkeypatch):
    from ldlm_metrics.metrics import offline_scorer_folder

    _fake_gguf_conversion(monkeypatch)
    folder = offline_scorer_folder(tmp_path)
    assert (folder / "model.safetensors").exists()
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]
    assert offline_scorer_folder(tmp_path) == folder  # converted once: the second call reads the folder


def test_offline_scorer_conversion_racing_another_process_uses_the_winners_folder(tmp_path, monkeypatch):
    """Two probes started together on a new machine both convert; the one that renames second keeps the first's."""
    from pathlib import Path

    from ldlm_metrics.metrics import offline_scorer_folder

    _fake_gguf_conversion(monkeypatch)
    rename = Path.replace

    def other_process_wins(self, target):
        Path(target).mkdir(parents=True)
        (Path(target) / "model.safetensors").write_text("the other process's copy")
        return rename(self, target)  # a non-empty target: OSError, as os.replace raises

    monkeypatch.setattr(Path, "replace", other_process_wins)
    folder = offline_scorer_folder(tmp_path)
    assert (folder / "model.safetensors").read_text() == "the other process's copy"
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]
