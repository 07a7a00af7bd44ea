"""Hub use: the stock text-generation pipeline in a fresh process without the package, and the endpoint handler."""

import json
import textwrap

import pytest

from modeling_ldlm import LDLMForDiffusionGeneration
from modeling_ldlm.handler import EndpointHandler
from tests.conftest import tiny_lm_folder, tiny_sizes
from tests.modeling_ldlm.test_remote_code import run_fresh

PIPELINE = textwrap.dedent("""
    import json, sys
    sys.modules["modeling_ldlm"] = None  # the package must not be importable here
    import torch
    torch.set_num_threads(1)
    from transformers import AutoTokenizer, pipeline
    folder = sys.argv[1]
    pipe = pipeline("text-generation", model=folder, trust_remote_code=True)
    assert type(pipe.model).__module__.startswith("transformers_modules"), type(pipe.model).__module__
    prompt_ids = pipe.tokenizer("w1 w2 w3").input_ids
    text = pipe("w1 w2 w3", max_new_tokens=4, num_inference_steps=3)[0]["generated_text"]
    ids = pipe("w1 w2 w3", num_inference_steps=2, return_tensors=True)[0]["generated_token_ids"]
    many = pipe("w4 w5", max_new_tokens=3, num_inference_steps=2, num_return_sequences=2, do_sample=False)
    bare = pipe("w4 w5", num_inference_steps=2)[0]["generated_text"]
    print(json.dumps({"text": text, "ids": ids, "prompt_ids": prompt_ids, "many": len(many), "bare": bare,
                      "steps": pipe.model.generation_config.num_inference_steps}))
""")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    lm = tiny_lm_folder(root / "lm")
    model = LDLMForDiffusionGeneration.from_frozen_lm(str(lm), **tiny_sizes()).eval()
    model.generation_config.num_inference_steps = 5
    model.save_pretrained(root / "ckpt")
    return root / "ckpt"


def test_stock_pipeline_in_fresh_process(checkpoint, tmp_path):
    out = json.loads(run_fresh(PIPELINE, str(checkpoint), tmp_path=tmp_path))
    assert out["text"].startswith("w1 w2 w3")
    prompt = out["prompt_ids"]  # [CLS] w1 w2 w3 [SEP]
    assert out["ids"][:len(prompt)] == prompt and len(out["ids"]) > len(prompt)
    assert len(out["ids"]) <= len(prompt) + 16 - (len(prompt) - 1)  # the canvas bounds the completion
    assert out["many"] == 2 and out["bare"].startswith("w4 w5")
    assert out["steps"] == 5  # generation_config.json was restored through remote code


def test_handler_is_shipped_and_answers(checkpoint):
    assert (checkpoint / "handler.py").exists()
    handler = EndpointHandler(str(checkpoint))
    answer = handler({"inputs": "w1 w2", "parameters": {"num_inference_steps": 3, "max_new_tokens": 4, "seed": 0}})
    assert len(answer) == 1 and answer[0]["generated_text"].startswith("w1 w2") and answer[0]["input_index"] == 0
    again = handler({"inputs": "w1 w2", "parameters": {"num_inference_steps": 3, "max_new_tokens": 4, "seed": 0}})
    assert again == answer
    batch = handler({"inputs": ["w1", "w2 w3 w4"], "parameters": {"num_inference_steps": 2, "max_new_tokens": 3,
                                                                 "num_return_sequences": 2, "do_sample": True,
                                                                 "temperature": 0.8, "top_p": 0.9}})
    assert [a["input_index"] for a in batch] == [0, 0, 1, 1]
    assert all(a["generated_text"].startswith(p) for a, p in zip(batch, ["w1", "w1", "w2 w3 w4", "w2 w3 w4"]))
    free = handler({"inputs": None, "parameters": {"num_inference_steps": 2, "num_return_sequences": 3}})
    assert len(free) == 3 and all("error" not in a for a in free)


@pytest.mark.parametrize("request_body, match", [
    ("just a string", "JSON object"),
    ({"inputs": 3}, "'inputs'"),
    ({"inputs": ["ok", ""]}, "'inputs'"),
    ({"inputs": "w1", "parameters": {"num_inference_steps": 0}}, "num_inference_steps"),
    ({"inputs": "w1", "parameters": {"num_inference_steps": 10**6}}, "num_inference_steps"),
    ({"inputs": "w1", "parameters": {"num_inference_steps": "5"}}, "num_inference_steps"),
    ({"inputs": "w1", "parameters": {"solver": "rk4"}}, "solver"),
    ({"inputs": "w1", "parameters": {"do_sample": 1}}, "do_sample"),
    ({"inputs": "w1", "parameters": {"temperature": -1}}, "temperature"),
    ({"inputs": "w1", "parameters": {"max_new_tokens": 100}}, "does not fit"),
    ({"inputs": "w1", "parameters": {"t_min": 0.8, "t_max": 0.5}}, "t_min"),
    ({"inputs": "w1", "parameters": {"stream": True}}, "Unknown parameter"),
    ({"inputs": ["w1"] * 40}, "At most"),
    ({"inputs": ["w1"] * 8, "parameters": {"num_return_sequences": 8}}, "exceeds"),
    ({"inputs": " ".join(["w1"] * 30)}, "room"),
    ({"prompt": "w1"}, "Unknown request keys"),
])
def test_handler_rejects_bad_requests_with_clear_errors(checkpoint, request_body, match):
    handler = EndpointHandler(str(checkpoint))
    answer = handler(request_body)
    assert len(answer) == 1 and "error" in answer[0]
    assert match in answer[0]["error"], answer[0]["error"]


JOINING = textwrap.dedent("""
    import json, logging, sys
    sys.modules["modeling_ldlm"] = None  # the package must not be importable here
    import torch
    torch.set_num_threads(1)
    from transformers import AutoModel, AutoTokenizer, pipeline

    class Messages(logging.Handler):
        def __init__(self):
            super().__init__()
            self.text = []

        def emit(self, record):
            self.text.append(record.getMessage())

    messages = Messages()
    logging.getLogger("transformers").addHandler(messages)
    folder, prompt = sys.argv[1], sys.argv[2]
    from_folder = pipeline("text-generation", model=folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    stock_from_object = pipeline("text-generation", model=model, tokenizer=tokenizer)
    from_object = model.text_generation_pipeline(tokenizer)

    def run(pipe, **kw):
        return pipe(prompt, max_new_tokens=5, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                    **kw)[0]

    out = {}
    for name, pipe in (("folder", from_folder), ("object", from_object)):
        out[name] = {"full": run(pipe)["generated_text"], "new": run(pipe, return_full_text=False)["generated_text"],
                     "ids": run(pipe, return_tensors=True)["generated_token_ids"]}
    stock = run(stock_from_object)["generated_text"]
    out["stock_object_starts_with_prompt"] = stock.startswith(prompt)
    out["prompt_ids"] = tokenizer(prompt).input_ids
    out["special"] = tokenizer.all_special_ids
    out["warnings"] = [m for m in messages.text if "is not supported" in m]
    print(json.dumps(out))
""")


@pytest.mark.parametrize("family", ["wordpiece", "byte-level-bpe"])
def test_pipeline_joins_prompt_and_completion_like_the_tokenizer(tmp_path, family):
    """The prompt, a space where the tokenizer puts one, and the completion; no 'not supported' error logged for a
    pipeline built from the folder or from a model object loaded with AutoModel."""
    from transformers import AutoTokenizer

    from tests.conftest import tiny_gpt2_folder

    lm = tiny_lm_folder(tmp_path / "lm") if family == "wordpiece" else tiny_gpt2_folder(tmp_path / "lm")
    LDLMForDiffusionGeneration.from_frozen_lm(str(lm), **tiny_sizes()).save_pretrained(tmp_path / "ckpt")
    prompt = "w1 w2 w3" if family == "wordpiece" else "the weather today"
    out = json.loads(run_fresh(JOINING, str(tmp_path / "ckpt"), prompt, tmp_path=tmp_path))
    tokenizer = AutoTokenizer.from_pretrained(lm)
    assert not out["warnings"], out["warnings"]
    assert out["stock_object_starts_with_prompt"]
    for name in ("folder", "object"):
        ids = out[name]["ids"]
        assert ids[:len(out["prompt_ids"])] == out["prompt_ids"]  # the prompt comes back unchanged, separator too
        completion = [i for i in ids[len(out["prompt_ids"]):] if i not in out["special"]]
        assert completion, "the tiny model generated nothing to join"
        if family == "wordpiece":  # whole-word vocabulary: every completion token starts a new word
            expected_new = " " + " ".join(tokenizer.convert_ids_to_tokens(completion))
        else:  # byte-level BPE decodes losslessly: the tokens carry their own spaces
            expected_new = tokenizer.decode(completion)
        assert out[name]["new"] == expected_new, (name, out[name])
        assert out[name]["full"] == prompt + expected_new, (name, out[name])
