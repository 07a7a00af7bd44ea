"""`evaluate` module: per-sample unigram entropy, rep-n and distinct-n of texts (ldlm_metrics).

    stats = evaluate.load("evaluate_metrics/ldlm_text_stats")
    stats.compute(predictions=texts)                          # whitespace words
    stats.compute(predictions=texts, tokenizer="gpt2")        # or a tokenizer's ids (name, path or object)

entropy: H = -sum_v p(v) log p(v) over each sample's own token frequencies (nats), averaged over samples;
rep-n: 1 - |unique n-grams| / |n-grams| within a sample, averaged; distinct-n: unique / total n-grams over all
samples together.
"""

import datasets
import evaluate

from ldlm_metrics import distinct_n, mean_repetition_rate, mean_unigram_entropy


class LdlmTextStats(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description="predictions: list of str; tokenizer: None "
            "(whitespace), a name/path or a tokenizer object; max_n: int",
            features=datasets.Features({"predictions": datasets.Value("string")}))

    def _compute(self, predictions, tokenizer=None, max_n: int = 4):
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        if tokenizer is None:
            samples = [text.split() for text in predictions]
        else:
            samples = [tokenizer(text, add_special_tokens=False).input_ids for text in predictions]
        result = {"entropy": mean_unigram_entropy(samples), "num_texts": len(samples)}
        for n in range(2, max_n + 1):
            result[f"rep_{n}"] = mean_repetition_rate(samples, n)
        for n in range(1, max_n + 1):
            result[f"distinct_{n}"] = distinct_n(samples, n)
        return result
