"""Property-based fuzzing of the arguments users control: every input either works or raises a
ValueError/TypeError that names the problem; nothing crashes deep inside torch."""

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.conftest import VOCAB, tiny_config, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG_VALID = {
    "num_latents": st.integers(1, 8),
    "latent_dim": st.integers(1, 16),
    "denoiser_num_heads": st.sampled_from([1, 2, 4]),
    "encoder_num_layers": st.integers(1, 3),
    "frozen_lm_layer": st.integers(-3, 2),
    "noise_schedule": st.sampled_from(["tan", "cosine"]),
    "decoder_noise_std": st.floats(0.0, 5.0),
}
CONFIG_INVALID = {
    "num_latents": st.sampled_from([0, -2, 2.5, "4", None, True]),
    "latent_dim": st.sampled_from([0, -1, 8.0, None]),
    "denoiser_num_heads": st.sampled_from([3, 5, 0, -2]),
    "encoder_num_layers": st.sampled_from([0, -1, 1.5]),
    "frozen_lm_layer": st.sampled_from([3, -4, 10, 1.0]),
    "noise_schedule": st.sampled_from(["linear", "", None]),
    "decoder_noise_std": st.sampled_from([-1.0, float("nan"), "0.5"]),
}


@st.composite
def one_corrupted(draw, valid: dict, invalid: dict):
    """(values, name): valid values for every key and, some of the time, exactly one key `name` corrupted."""
    values = {k: draw(v) for k, v in valid.items()}
    bad = draw(st.one_of(st.none(), st.sampled_from(sorted(invalid))))
    if bad is not None:
        values[bad] = draw(invalid[bad])
    return values, bad


@settings(max_examples=80, deadline=None)
@given(case=one_corrupted(CONFIG_VALID, CONFIG_INVALID))
def test_config_fields_are_valid_or_rejected_clearly(case):
    fields, bad = case
    try:
        config = tiny_config(**fields)
    except (ValueError, TypeError) as err:
        assert bad is not None, f"valid arguments were rejected: {err}"
        event(f"rejected: {bad}")
        return
    event("accepted" if bad is None else f"accepted corrupted {bad}")
    assert bad is None, f"{bad}={fields[bad]!r} was accepted"
    assert config.num_latents == fields["num_latents"] and config.latent_dim == fields["latent_dim"]


MODEL = None


def model():
    global MODEL
    if MODEL is None:
        MODEL = tiny_model().eval()
    return MODEL


VALID = {
    "num_inference_steps": st.integers(1, 4),
    "solver": st.sampled_from(["euler", "euler_maruyama", "ddpm", "dpmpp_2m", "heun"]),
    "t_min": st.floats(0.0, 0.3),
    "t_max": st.floats(0.5, 1.0),
    "temperature": st.floats(0.1, 3.0),
    "top_p": st.floats(0.05, 1.0),
    "do_sample": st.booleans(),
    "max_new_tokens": st.integers(1, 15),
    "num_return_sequences": st.integers(1, 3),
    "noise_scale": st.floats(0.0, 2.0),
}
INVALID = {
    "num_inference_steps": st.sampled_from([0, -1, 2.5, "3", None]),
    "solver": st.sampled_from(["rk4", "", None, 3]),
    "t_min": st.sampled_from([-0.1, 1.5, float("nan"), 0.99]),
    "t_max": st.sampled_from([1.5, -1.0, 0.0, float("inf")]),
    "temperature": st.sampled_from([0.0, -1.0, float("nan")]),
    "top_p": st.sampled_from([0.0, -0.5, 1.5]),
    "do_sample": st.sampled_from(["yes", 2]),
    "max_new_tokens": st.sampled_from([0, -3, 100, 2.0]),
    "num_return_sequences": st.sampled_from([0, -1, 1.5]),
    "noise_scale": st.sampled_from([-1.0, float("nan")]),
}


@settings(max_examples=80, deadline=None)
@given(case=one_corrupted(VALID, INVALID))
def test_generate_arguments_work_or_raise_clearly(case):
    kwargs, bad = case
    try:
        out = model().generate(generator=torch.Generator().manual_seed(0), **kwargs)
    except (ValueError, TypeError) as err:
        assert bad is not None, f"valid arguments were rejected: {err}"
        event(f"rejected: {bad}")
        return
    event("accepted" if bad is None else f"accepted corrupted {bad}")
    assert out.dtype == torch.long and out.shape[0] == kwargs["num_return_sequences"]
    assert int(out.min()) >= 0 and int(out.max()) < VOCAB


@settings(max_examples=40, deadline=None)
@given(prompt=st.lists(st.lists(st.integers(-3, VOCAB + 3), min_size=0, max_size=20), min_size=1, max_size=3),
       with_mask=st.booleans(), max_new_tokens=st.integers(1, 8))
def test_prompts_work_or_raise_clearly(prompt, with_mask, max_new_tokens):
    width = max(len(p) for p in prompt)
    ids = torch.zeros(len(prompt), width, dtype=torch.long)
    mask = torch.zeros(len(prompt), width, dtype=torch.long)
    for i, p in enumerate(prompt):
        ids[i, : len(p)] = torch.tensor(p, dtype=torch.long)
        mask[i, : len(p)] = 1
    try:
        out = model().generate(ids, attention_mask=mask if with_mask else None, max_new_tokens=max_new_tokens,
                               num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    except (ValueError, TypeError) as err:
        assert str(err)
        event("rejected with a clear error")
        return
    event("accepted")
    assert torch.equal(out[:, :width], ids)  # the prompt comes back unchanged
