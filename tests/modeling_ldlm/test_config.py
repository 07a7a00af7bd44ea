import json
import pathlib

import pytest
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoConfig, AutoTokenizer

from modeling_ldlm import PRESETS, LDLMConfig, LDLMForDiffusionGeneration
from tests.conftest import tiny_config, tiny_lm_config, tiny_lm_folder, tiny_sizes


def test_round_trip(tmp_path, lm_kind):
    config = tiny_config(lm_kind, num_latents=5, noise_schedule="cosine", decoder_loss="ce")
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, LDLMConfig)
    drop = {"_name_or_path"}
    assert {k: v for k, v in loaded.to_dict().items() if k not in drop} == {
        k: v for k, v in config.to_dict().items() if k not in drop}
    assert loaded.frozen_lm_config.model_type == ("bert" if lm_kind == "bert" else "gpt2")


def test_dict_sub_config_and_defaults():
    config = LDLMConfig(frozen_lm_config=tiny_lm_config("bert").to_dict(), eos_token_id=3)
    assert config.frozen_lm_hidden_size == 32
    assert config.vocab_size == 97 and config.pad_token_id == 0


def test_no_generation_parameters_in_config(tmp_path):
    config = tiny_config()
    assert config._get_generation_parameters() == {}
    config.save_pretrained(tmp_path)  # saving raises if sampler names leaked into the model config


@pytest.mark.parametrize("field, value, message", [
    ("num_latents", 0, "num_latents"),
    ("num_latents", -3, "num_latents"),
    ("latent_dim", 0, "latent_dim"),
    ("max_sequence_length", 0, "max_sequence_length"),
    ("encoder_num_heads", 3, "not divisible"),
    ("denoiser_num_heads", 5, "not divisible"),
    ("latent_decoder_num_heads", 7, "not divisible"),
    ("token_decoder_num_heads", 3, "not divisible"),
    ("encoder_num_layers", 0, "encoder_num_layers"),
    ("denoiser_num_layers", 0, "denoiser_num_layers"),
    ("latent_decoder_num_layers", 0, "latent_decoder_num_layers"),
    ("token_decoder_num_layers", -1, "token_decoder_num_layers"),
    ("frozen_lm_layer", 3, "out of range"),
    ("frozen_lm_layer", -4, "out of range"),
    ("noise_schedule", "linear", "noise_schedule"),
    ("noise_schedule_d", 0.0, "noise_schedule_d"),
    ("decoder_noise_std", -1.0, "decoder_noise_std"),
    ("decoder_loss", "l1", "decoder_loss"),
    ("self_conditioning_prob", 1.5, "self_conditioning_prob"),
    ("dropout", 1.0, "dropout"),
    ("loss_token_weight", -0.1, "loss_token_weight"),
    ("timestep_bins", 0, "timestep_bins"),
    ("eos_token_id", 97, "vocabulary"),
    ("pad_token_id", -1, "vocabulary"),
    ("num_latents", 10_000, "compress"),
])
def test_invalid_fields(field, value, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**{field: value})


@pytest.mark.parametrize("field, value, message", [
    ("num_latents", 0, "num_latents=0 is invalid: Value must be greater or equal to 1"),
    ("latent_dim", 8.0, "latent_dim=8.0 is invalid: .*expected int"),
    ("noise_schedule", "linear", "noise_schedule='linear' is invalid: .*expected one of \\('tan', 'cosine'\\)"),
    ("dropout", 1.0, "dropout=1.0 is invalid: .*smaller than 1"),
    ("token_loss_stop_gradient", 1, "token_loss_stop_gradient=1 is invalid"),
])
def test_fields_are_checked_when_set_later(field, value, message):
    config = tiny_config()
    with pytest.raises(ValueError, match=message) as caught:
        setattr(config, field, value)
    assert isinstance(caught.value, StrictDataclassError)  # what transformers' @strict configs raise, too


def test_inconsistent_fields_set_later_are_caught_by_validate():
    config = tiny_config()
    config.encoder_num_heads = 3  # each field alone is fine; the width 32 is not divisible by 3
    with pytest.raises(ValueError, match="not divisible"):
        config.validate()


FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def test_configs_written_before_strict_validation_load():
    """A config.json written by the 0.1.0 code before @strict (ints in float fields), and the same with the
    self-conditioning field under its old name."""
    written = json.loads((FIXTURES / "config_written_by_0.1.0_at_70c98a9.json").read_text())
    config = LDLMConfig.from_dict(written)
    assert (config.decoder_noise_std, config.dropout, config.latent_locality) == (0, 0, 1)
    assert config.self_conditioning_prob == 0.25 and config.frozen_lm_config.model_type == "gpt2"
    written["self_condition_prob"] = written.pop("self_conditioning_prob")
    renamed = LDLMConfig.from_dict(written)
    assert renamed.self_conditioning_prob == 0.25 and "self_condition_prob" not in renamed.to_dict()


def test_every_config_builds_from_its_defaults():
    """transformers builds configs from their defaults (AutoConfig.for_model, config tests): so must LDLMConfig, even
    though a default BERT has no end-of-sequence id; generation then never cuts a row."""
    assert LDLMConfig().eos_token_id is None
    assert isinstance(AutoConfig.for_model("ldlm"), LDLMConfig)
    config = LDLMConfig(frozen_lm_config=tiny_lm_config("bert"), max_sequence_length=8, num_latents=2, latent_dim=4)
    model = LDLMForDiffusionGeneration(config).eval()
    out = model.generate(num_return_sequences=2, num_inference_steps=2)
    assert out.shape == (2, 8)


def test_a_tokenizer_without_an_end_token_is_refused(tmp_path):
    lm = tiny_lm_folder(tmp_path / "lm")
    tokenizer = AutoTokenizer.from_pretrained(lm)
    tokenizer.sep_token = None
    with pytest.raises(ValueError, match="end-of-sequence"):
        LDLMForDiffusionGeneration.from_frozen_lm(str(lm), tokenizer=tokenizer, **tiny_sizes())


def test_layer_index_bounds_accept_edges():
    assert tiny_config(frozen_lm_layer=2).frozen_lm_layer == 2
    assert tiny_config(frozen_lm_layer=-3).frozen_lm_layer == -3


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid(name):
    fields = dict(PRESETS[name])
    fields["frozen_lm_layer"] = -1
    config = LDLMConfig(frozen_lm_config=tiny_lm_config("gpt2").to_dict() | {"n_layer": 12}, **fields)
    assert config.num_latents == PRESETS[name]["num_latents"]
