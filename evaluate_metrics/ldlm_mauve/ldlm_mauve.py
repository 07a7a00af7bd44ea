"""`evaluate` module: MAUVE between generated texts and reference texts on a causal-LM scorer's features
(`mauve-text`; ldlm_metrics.mauve_score).

    mauve = evaluate.load("evaluate_metrics/ldlm_mauve")
    mauve.compute(predictions=samples, references=held_out_texts)               # offline SmolLM2 features
    mauve.compute(predictions=samples, references=texts, scorer="gpt2-large")   # the usual featuriser (Hub)

Features: the last layer's hidden state at each text's final token; the result names the scorer, its checksum and
the seed.
"""

import datasets
import evaluate

from ldlm_metrics import get_scorer, mauve_score


class LdlmMauve(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description="predictions, references: lists of str; scorer: "
            "name, path, Scorer or None (offline SmolLM2); seed: int; max_length: int",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}))

    def _compute(self, predictions, references, scorer=None, seed: int = 0, max_length: int = 256):
        scorer = get_scorer(scorer)
        return mauve_score(list(predictions), list(references), scorer, seed=seed, max_length=max_length)
