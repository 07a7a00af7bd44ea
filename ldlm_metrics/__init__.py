"""Offline sample-quality metrics for text generators (generative perplexity, unigram entropy, rep-n, distinct-n,
MAUVE) and their bootstrap intervals (`ldlm_metrics.bootstrap`). Used by the training script, the benchmarks and
the local `evaluate` modules; not part of a checkpoint."""

from .metrics import (
    OFFLINE_SCORER,
    Scorer,
    default_cache_dir,
    distinct_n,
    folder_checksum,
    generative_perplexity,
    get_scorer,
    load_scorer,
    mauve_from_features,
    mauve_score,
    mean_repetition_rate,
    mean_unigram_entropy,
    ngrams,
    offline_scorer_folder,
    pooled_unigram_entropy,
    repetition_rate,
    scorer_features,
    unigram_entropy,
)

__all__ = [
    "OFFLINE_SCORER", "Scorer", "default_cache_dir", "distinct_n", "folder_checksum", "generative_perplexity",
    "get_scorer", "load_scorer", "mauve_from_features", "mauve_score", "mean_repetition_rate", "mean_unigram_entropy",
    "ngrams", "offline_scorer_folder", "pooled_unigram_entropy", "repetition_rate", "scorer_features", "unigram_entropy",
]
