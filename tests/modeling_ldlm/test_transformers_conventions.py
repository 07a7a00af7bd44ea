"""What transformers users do with any model, done with a tiny LDLM: dtypes, loading info, return_dict, configs from
defaults, input embeddings, unsupported outputs, torch.export, argument typos, saved tokenizers, re-saving a
remote-code model, and an old transformers."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from modeling_ldlm import LDLMForDiffusionGeneration

from tests.conftest import tiny_lm_folder, tiny_model, tiny_sizes, token_batch
from tests.modeling_ldlm.test_remote_code import run_fresh

pytestmark = pytest.mark.usefixtures("one_thread")


def fixed_inputs(batch: int = 2):
    t = torch.linspace(0.2, 0.8, batch)
    noise = torch.randn(batch, 4, 8, generator=torch.Generator().manual_seed(0))
    return dict(timesteps=t, noise=noise, self_conditioning=False)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_every_loadable_dtype_runs_forward_encode_and_generate(tmp_path, dtype):
    ids, mask = token_batch(2, 8, lengths=[8, 5])
    tiny_model().save_pretrained(tmp_path / "ckpt")
    for model in (tiny_model().eval().to(dtype),
                  LDLMForDiffusionGeneration.from_pretrained(tmp_path / "ckpt", dtype=dtype).eval()):
        assert next(model.denoiser.parameters()).dtype == dtype
        assert torch.isfinite(model(ids, mask, **fixed_inputs()).loss)
        assert model.encode(ids, mask).dtype == dtype
        out = model.generate(ids, mask, num_inference_steps=2, max_new_tokens=3, return_dict_in_generate=True)
        assert out.sequences.shape[0] == 2 and torch.isfinite(out.latents).all()


def test_output_loading_info(tmp_path):
    tiny_model().save_pretrained(tmp_path / "ckpt")
    model, info = LDLMForDiffusionGeneration.from_pretrained(tmp_path / "ckpt", output_loading_info=True)
    assert isinstance(model, LDLMForDiffusionGeneration)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_return_dict_false_gives_a_tuple():
    model = tiny_model().eval()
    ids, mask = token_batch(2, 8)
    full = model(ids, mask, **fixed_inputs())
    as_tuple = model(ids, mask, return_dict=False, **fixed_inputs())
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], full.loss)
    model.config.return_dict = False
    assert isinstance(model(ids, mask, **fixed_inputs()), tuple)
    assert model(ids, mask, return_dict=True, **fixed_inputs()).loss is not None


def test_input_embeddings_are_the_frozen_lms():
    model = tiny_model()
    assert model.get_input_embeddings() is model.frozen_lm.get_input_embeddings()


@pytest.mark.parametrize("flag", ["output_attentions", "output_hidden_states"])
def test_unsupported_outputs_are_refused(flag):
    ids, mask = token_batch(2, 8)
    with pytest.raises(ValueError, match="does not return|not attention"):
        tiny_model()(ids, mask, **{flag: True})


def test_unknown_forward_argument_raises():
    ids, mask = token_batch(2, 8)
    with pytest.raises(TypeError, match="timestep"):
        tiny_model()(ids, mask, timestep=torch.zeros(2))


def test_forward_exports_with_torch_export():
    model = tiny_model().eval()
    ids, mask = token_batch(2, 8, lengths=[8, 5])
    kwargs = fixed_inputs()
    program = torch.export.export(model, (ids, mask), kwargs)
    torch.testing.assert_close(program.module()(ids, mask, **kwargs).loss, model(ids, mask, **kwargs).loss)


def test_saved_tokenizer_carries_the_models_length(tmp_path):
    lm = tiny_lm_folder(tmp_path / "lm")
    model = LDLMForDiffusionGeneration.from_frozen_lm(str(lm), **tiny_sizes())
    model.save_pretrained(tmp_path / "ckpt")
    saved = json.loads((tmp_path / "ckpt" / "tokenizer_config.json").read_text())
    assert saved["model_max_length"] == model.config.max_sequence_length == 16


RESAVE = textwrap.dedent("""
    import json, sys
    sys.modules["modeling_ldlm"] = None  # the package must not be importable here
    import torch
    torch.set_num_threads(1)
    from transformers import AutoModel
    source, target, ids = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    model = AutoModel.from_pretrained(source, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    if target != "-":
        model.save_pretrained(target)
    out = model.generate(torch.tensor(ids), num_inference_steps=3, max_new_tokens=4, return_dict_in_generate=True,
                         generator=torch.Generator().manual_seed(0))
    print(json.dumps({"sequences": out.sequences.tolist(), "latents": out.latents.sum().item()}))
""")


def test_load_save_load_as_remote_code_keeps_every_file_and_the_outputs(tmp_path):
    lm = tiny_lm_folder(tmp_path / "lm")
    LDLMForDiffusionGeneration.from_frozen_lm(str(lm), **tiny_sizes()).save_pretrained(tmp_path / "first")
    ids = json.dumps(token_batch(1, 4)[0].tolist())
    before = json.loads(run_fresh(RESAVE, str(tmp_path / "first"), str(tmp_path / "second"), ids, tmp_path=tmp_path))
    after = json.loads(run_fresh(RESAVE, str(tmp_path / "second"), "-", ids, tmp_path=tmp_path))
    assert set(os.listdir(tmp_path / "first")) == set(os.listdir(tmp_path / "second"))
    assert (tmp_path / "second" / "handler.py").exists()
    assert before == after


def test_old_transformers_is_refused_with_the_supported_range(tmp_path):
    code = ("import transformers; transformers.__version__ = '5.10.0'\n"
            "import modeling_ldlm")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "transformers>=5.20,<6" in result.stderr and "5.10.0" in result.stderr
