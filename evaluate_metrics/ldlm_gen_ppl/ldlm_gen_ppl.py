"""`evaluate` module: generative perplexity of texts under a causal-LM scorer (ldlm_metrics).

    import evaluate
    gen_ppl = evaluate.load("evaluate_metrics/ldlm_gen_ppl")        # a local path: works offline
    gen_ppl.compute(predictions=["some text", ...])                  # offline SmolLM2 scorer
    gen_ppl.compute(predictions=texts, scorer="gpt2-large")          # what papers use (needs the Hub)

gen-PPL = exp( sum_i sum_t -log p(w_t | w_<t) / sum_i |w_i| ), the scorer's BOS prepended to each text. The result
names the scorer and its checksum. `scorer` may also be a loaded `ldlm_metrics.Scorer`.
"""

import datasets
import evaluate

from ldlm_metrics import generative_perplexity, get_scorer


class LdlmGenPpl(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description="predictions: list of str; scorer: name, path, "
            "Scorer or None (offline SmolLM2); batch_size: int; max_length: int",
            features=datasets.Features({"predictions": datasets.Value("string")}))

    def _compute(self, predictions, scorer=None, batch_size: int = 16, max_length: int = 256):
        scorer = get_scorer(scorer)
        return generative_perplexity(list(predictions), scorer, batch_size=batch_size, max_length=max_length)
