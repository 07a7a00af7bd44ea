"""Tiny random LDLM models for fast CPU tests (hidden 32, 2 layers), built from configs: no downloads."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, GPT2Config

from modeling_ldlm import LDLMConfig, LDLMForDiffusionGeneration

VOCAB = 97
EOS = 3


def tiny_lm_config(kind: str = "bert"):
    if kind == "bert":
        return BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
    if kind == "gpt2":
        return GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                          bos_token_id=EOS, eos_token_id=EOS)
    raise ValueError(kind)


def tiny_config(kind: str = "bert", **overrides) -> LDLMConfig:
    fields = dict(
        max_sequence_length=16, num_latents=4, latent_dim=8,
        encoder_hidden_size=32, encoder_num_layers=2, encoder_num_heads=2,
        denoiser_hidden_size=32, denoiser_num_layers=2, denoiser_num_heads=2,
        latent_decoder_hidden_size=32, latent_decoder_num_layers=2, latent_decoder_num_heads=2,
        token_decoder_hidden_size=32, token_decoder_num_layers=2, token_decoder_num_heads=2,
        eos_token_id=EOS, bos_token_id=2, pad_token_id=0, decoder_noise_std=0.5,
    )
    fields.update(overrides)
    return LDLMConfig(frozen_lm_config=tiny_lm_config(kind), **fields)


def tiny_model(kind: str = "bert", seed: int = 0, **overrides) -> LDLMForDiffusionGeneration:
    torch.manual_seed(seed)
    return LDLMForDiffusionGeneration(tiny_config(kind, **overrides))


def tiny_sizes() -> dict:
    """The size fields of `tiny_config()`, to pass to `from_frozen_lm` (which takes the vocabulary from the LM)."""
    return {k: v for k, v in tiny_config().to_dict().items()
            if (k.endswith(("_size", "_heads", "_layers")) and k != "vocab_size")
            or k in ("num_latents", "latent_dim", "max_sequence_length")}


def token_batch(batch: int = 3, length: int = 10, seed: int = 0, lengths: list[int] | None = None):
    """Right-padded random ids in [4, VOCAB) ending in EOS, with their attention mask."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, VOCAB, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    lengths = lengths or [length] * batch
    for row, n in enumerate(lengths):
        ids[row, n - 1] = EOS
        ids[row, n:] = 0
        mask[row, n:] = 0
    return ids, mask


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a shared 2-core machine spinning threads cost 100x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=["bert", "gpt2"])
def lm_kind(request) -> str:
    return request.param


def tiny_lm_folder(path, kind: str = "bert"):
    """Save a tiny random frozen LM and a matching word-level tokenizer, as a Hub folder would hold them."""
    from transformers import AutoModel, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(VOCAB - 5)]
    tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(tokens)})
    config = tiny_lm_config(kind)
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_bpe_tokenizer(vocab_size: int = 400):
    """A GPT-2-style byte-level BPE tokenizer (<|endoftext|> as BOS/EOS, no separator, no pad), trained in ~1 s on
    the vendored Brown corpus: the tokenizer family the Hub's GPT-2 checkpoints use, without the Hub."""
    import gzip
    from pathlib import Path

    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    corpus = Path(__file__).resolve().parents[1] / "data" / "brown.txt.gz"
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        lines = [next(f).strip() for _ in range(2000)]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=vocab_size, min_frequency=2, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    return GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                             unk_token="<|endoftext|>")


def tiny_gpt2_folder(path, num_layers: int = 2, positions: int = 64):
    """A tiny random GPT-2 and its byte-level BPE tokenizer, saved as a Hub folder would hold them."""
    from transformers import AutoModel

    path.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_bpe_tokenizer()
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=num_layers, n_head=2, n_positions=positions,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
