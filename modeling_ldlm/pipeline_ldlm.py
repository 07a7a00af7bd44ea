"""The text-generation pipeline of an LDLM checkpoint: transformers' own, with the prompt and the completion joined
the way the tokenizer joins words.

transformers' `TextGenerationPipeline` decodes the new tokens alone and appends them to the prompt text. That suits
byte-level BPE tokenizers (GPT-2), whose tokens carry their leading space, but glues words for WordPiece
tokenizers (BERT, MiniLM), which put spaces between tokens only when decoding them together ("the weather
todayhave"). This subclass decodes prompt + completion together and takes the completion as the text after the
decoded prompt, so a space appears exactly where the tokenizer would put one ("the weather today have", but
"todaying" for a "##ing" continuation), for both tokenizer families, with `return_full_text` true or false.
Special tokens are skipped, so the separator a BERT-like tokenizer appends to the prompt (which `generate` returns
unchanged with the prompt) never shows.

Checkpoints name this class in `config.custom_pipelines`, so `pipeline("text-generation", model=folder,
trust_remote_code=True)` builds it.
"""

from __future__ import annotations

from typing import Any

from transformers import TextGenerationPipeline
from transformers.pipelines.text_generation import ReturnType


class LDLMTextGenerationPipeline(TextGenerationPipeline):
    """`TextGenerationPipeline` for `LDLMForDiffusionGeneration`, joining prompt and completion as decoded text."""

    def check_model_type(self, supported_models: Any) -> None:
        if type(self.model).__name__ != "LDLMForDiffusionGeneration":
            super().check_model_type(supported_models)

    def postprocess(self, model_outputs: dict[str, Any], return_type: ReturnType = ReturnType.FULL_TEXT,
                    clean_up_tokenization_spaces: bool | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        records = super().postprocess(model_outputs, return_type=return_type,
                                      clean_up_tokenization_spaces=clean_up_tokenization_spaces, **kwargs)
        prompt_text, input_ids = model_outputs["prompt_text"], model_outputs["input_ids"]
        if return_type not in (ReturnType.NEW_TEXT, ReturnType.FULL_TEXT) or not isinstance(prompt_text, str):
            return records
        decode_args = dict(skip_special_tokens=kwargs.get("skip_special_tokens") is not False,
                           clean_up_tokenization_spaces=clean_up_tokenization_spaces)
        prompt_ids = input_ids[0].tolist() if input_ids is not None else []
        prompt = self.tokenizer.decode(prompt_ids, **decode_args)
        for record, sequence in zip(records, model_outputs["generated_sequence"][0].tolist()):
            whole = self.tokenizer.decode(sequence, **decode_args)
            if whole.startswith(prompt):
                new = whole[len(prompt):]
            else:  # a tokenizer whose decoding of the prompt changes with what follows: the stock join
                new = self.tokenizer.decode(sequence[len(prompt_ids):], **decode_args)
            record["generated_text"] = prompt_text + new if return_type == ReturnType.FULL_TEXT else new
        return records


__all__ = ["LDLMTextGenerationPipeline"]
