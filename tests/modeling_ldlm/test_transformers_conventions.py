"""What transformers users do with any model, done with a tiny LDLM: dtypes, loading info, return_dict, configs from
defaults, getting and setting input embeddings, choosing the attention implementation, unsupported outputs,
torch.export, argument typos, a frozen LM folder that does not exist, saved tokenizers, re-saving a remote-code model,
and an old transformers."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import modeling_ldlm.layers
import modeling_ldlm.modeling_ldlm
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


def test_set_input_embeddings_replaces_the_frozen_lms_and_keeps_them_frozen(lm_kind):
    """transformers' common test_model_get_set_embeddings, and that the frozen LM then reads the new embeddings."""
    model = tiny_model(lm_kind).eval()
    assert isinstance(model.get_input_embeddings(), nn.Embedding)
    replacement = nn.Embedding(10, 10)
    model.set_input_embeddings(replacement)
    assert model.get_input_embeddings() is replacement
    output = model.get_output_embeddings()
    assert output is None or isinstance(output, nn.Linear)

    model = tiny_model(lm_kind).eval()
    ids, mask = token_batch(2, 8)
    before = model.frozen_hidden_states(ids, mask)
    replacement = nn.Embedding.from_pretrained(2 * model.get_input_embeddings().weight, freeze=False)
    model.set_input_embeddings(replacement)
    assert model.get_input_embeddings() is replacement and not replacement.weight.requires_grad
    assert not torch.allclose(model.frozen_hidden_states(ids, mask), before)


def count_calls(monkeypatch, owner, name: str) -> list:
    calls = []
    function = getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda *args, **kwargs: calls.append(1) or function(*args, **kwargs))
    return calls


def test_every_attention_runs_through_sdpa_by_default_and_says_so(monkeypatch):
    model = tiny_model().eval()
    assert model.config._attn_implementation == "sdpa" == model.frozen_lm.config._attn_implementation
    model.set_attn_implementation("sdpa")  # an honest yes: nothing changes
    own = sum(isinstance(m, modeling_ldlm.layers.Attention) for m in model.modules())
    sdpa, eager = count_calls(monkeypatch, F, "scaled_dot_product_attention"), count_calls(
        monkeypatch, modeling_ldlm.layers, "eager_attention")
    model.encode(*token_batch(2, 8))
    model.decode_hidden(torch.zeros(2, 4, 8))
    model.token_decoder(torch.zeros(2, 16, 32))
    model.denoise(torch.zeros(2, 4, 8), torch.full((2,), 0.5))
    frozen_lm_layers = model.config.frozen_lm_num_layers
    assert len(sdpa) == own + frozen_lm_layers and not eager


def test_eager_attention_is_the_same_softmax_written_out(monkeypatch):
    model = tiny_model().eval()
    ids, mask = token_batch(2, 8, lengths=[8, 5])
    sdpa = model(ids, mask, **fixed_inputs())
    model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager" == model.frozen_lm.config._attn_implementation
    eager_calls = count_calls(monkeypatch, modeling_ldlm.layers, "eager_attention")
    eager = model(ids, mask, **fixed_inputs())
    assert len(eager_calls) == sum(isinstance(m, modeling_ldlm.layers.Attention) for m in model.modules())
    torch.testing.assert_close(eager.loss, sdpa.loss)
    torch.testing.assert_close(eager.predicted_latents, sdpa.predicted_latents)


def test_eager_attention_with_the_locality_bias_and_from_pretrained(tmp_path):
    tiny_model(latent_locality=1.0).save_pretrained(tmp_path / "ckpt")
    sdpa = LDLMForDiffusionGeneration.from_pretrained(tmp_path / "ckpt").eval()
    eager = LDLMForDiffusionGeneration.from_pretrained(tmp_path / "ckpt", attn_implementation="eager").eval()
    assert eager.config._attn_implementation == "eager" == eager.frozen_lm.config._attn_implementation
    ids, mask = token_batch(2, 8, lengths=[8, 5])
    torch.testing.assert_close(eager(ids, mask, **fixed_inputs()).loss, sdpa(ids, mask, **fixed_inputs()).loss)
    generated = [m.generate(ids, mask, num_inference_steps=2, max_new_tokens=3, generator=torch.Generator().manual_seed(0))
                 for m in (sdpa, eager)]
    assert torch.equal(*generated)


def test_other_attention_implementations_are_refused_with_the_reason():
    model = tiny_model()
    with pytest.raises(ValueError, match="not available for LDLM's own attention layers.*frozen_lm_config"):
        model.set_attn_implementation("flex_attention")
    assert model.config._attn_implementation == "sdpa"
    model.set_attn_implementation({"frozen_lm_config": "eager"})  # the frozen LM alone
    assert (model.config._attn_implementation, model.frozen_lm.config._attn_implementation) == ("sdpa", "eager")


def test_a_frozen_lm_folder_that_does_not_exist_is_named(tmp_path, monkeypatch):
    for missing in ("./a/folder/that/does/not/exist", str(tmp_path / "missing"), "a/b/c"):
        with pytest.raises(ValueError, match="does not exist"):
            LDLMForDiffusionGeneration.from_frozen_lm(missing)
    (tmp_path / "weights.bin").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        LDLMForDiffusionGeneration.from_frozen_lm(str(tmp_path / "weights.bin"))

    class ReachedTheHub(Exception):
        pass

    def hub(name, **kwargs):
        raise ReachedTheHub(name)

    monkeypatch.setattr(modeling_ldlm.modeling_ldlm.AutoModel, "from_pretrained", hub)
    for hub_id in ("gpt2", "org/name"):
        with pytest.raises(ReachedTheHub):
            LDLMForDiffusionGeneration.from_frozen_lm(hub_id)


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
