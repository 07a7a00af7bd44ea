"""Golden tests: seeded outputs of tiny models, pinned in `tests/modeling_ldlm/golden/*.json`.

They pin what the code computes today, so that refactors provably change nothing: `generate()` ids (exactly) and
final latents (to 1e-5) for unconditional, prompted and infilling generation under every solver, with argmax and
with token sampling; the `forward` loss terms for injected `timesteps`/`noise`; the endpoint handler's answer to a
fixed request. A pin may only change in a commit that says why the numbers moved; to rewrite the files, run
`LDLM_WRITE_GOLDEN=1 python -m pytest tests/modeling_ldlm/test_golden.py` and commit the diff with that reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from modeling_ldlm import LDLMForDiffusionGeneration
from modeling_ldlm.handler import EndpointHandler
from tests.conftest import EOS, tiny_lm_folder, tiny_model, tiny_sizes, token_batch

GOLDEN = Path(__file__).parent / "golden"
WRITE = os.environ.get("LDLM_WRITE_GOLDEN") == "1"
SOLVERS = ("euler", "euler_maruyama", "ddpm", "dpmpp_2m", "heun")
ATOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_thread")


def sharpen(model: LDLMForDiffusionGeneration) -> LDLMForDiffusionGeneration:
    """A freshly initialised tiny model decodes nearly the same tokens whatever its latents (weights of std 0.02):
    scale up the paths from the latents to the tokens so that every solver and mode gives different ids, and make
    EOS likely so that rows end at different lengths."""
    with torch.no_grad():
        for p in (model.latent_decoder.latent_proj.weight, model.denoiser.out_proj.weight,
                  model.token_decoder.lm_head.weight):
            p.mul_(10.0)
        model.token_decoder.lm_head.bias[EOS] += 0.6
        model.timestep_sampler.loss_ema.copy_(torch.linspace(0.0, 1.0, model.timestep_sampler.loss_ema.numel()) ** 3)
    return model.eval()


def golden_model() -> LDLMForDiffusionGeneration:
    return sharpen(tiny_model(seed=0))


def generate_cases() -> dict[str, dict]:
    """name -> generate() keyword arguments (besides the generator)."""
    ids, mask = token_batch(2, 6, lengths=[6, 4], seed=1)
    fixed = torch.tensor([[2, 11, 12, 0, 0, 0, 0, 30, 0, 0, 0, 0], [2, 21, 0, 0, 0, 40, 41, 0, 0, 0, 0, 0]])
    fixed_mask = fixed != 0
    modes = {
        "unconditional": dict(num_return_sequences=3),
        "prompted": dict(input_ids=ids, attention_mask=mask, max_new_tokens=6),
        "infilling": dict(fixed_tokens=fixed, fixed_mask=fixed_mask),
    }
    sampling = {"argmax": {}, "sampled": dict(do_sample=True, temperature=0.9, top_p=0.95)}
    cases = {}
    for mode, mode_kw in modes.items():
        for solver in SOLVERS:
            for how, sample_kw in sampling.items():
                cases[f"{mode}-{solver}-{how}"] = dict(num_inference_steps=4, solver=solver, **mode_kw, **sample_kw)
    cases["unconditional-learned-spacing-top_k"] = dict(num_return_sequences=2, num_inference_steps=5,
                                                        time_spacing="learned", do_sample=True, top_k=5,
                                                        noise_scale=0.8)
    cases["unconditional-no-self-conditioning"] = dict(num_return_sequences=2, num_inference_steps=3,
                                                       self_conditioning=False, t_max=0.9, t_min=0.1)
    cases["prompted-two-returns-guidance-steps"] = dict(input_ids=ids, attention_mask=mask, num_return_sequences=2,
                                                        num_inference_steps=3, guidance_scale=2.0, guidance_steps=2)
    cases["prompted-no-guidance-max_length"] = dict(input_ids=ids, attention_mask=mask, num_inference_steps=3,
                                                    guidance_scale=0.0, max_length=10)
    cases["infilling-per-row-generators"] = dict(fixed_tokens=fixed, fixed_mask=fixed_mask, num_inference_steps=3,
                                                 generator="per-row", solver="ddpm")
    return cases


def run_generate(model, kwargs: dict) -> dict:
    kwargs = dict(kwargs)
    if kwargs.pop("generator", None) == "per-row":
        batch = kwargs["fixed_tokens"].shape[0]
        generator = [torch.Generator().manual_seed(100 + row) for row in range(batch)]
    else:
        generator = torch.Generator().manual_seed(1234)
    out = model.generate(generator=generator, return_dict_in_generate=True, output_history=True, **kwargs)
    return {"sequences": out.sequences.tolist(), "latents": out.latents.flatten().tolist(),
            "num_network_calls": out.num_network_calls, "timesteps": out.timesteps.tolist(),
            "history_first": out.history[0].flatten().tolist(), "history_len": len(out.history)}


def forward_cases(model) -> dict[str, dict]:
    ids, mask = token_batch(3, 10, lengths=[10, 7, 4], seed=2)
    g = torch.Generator().manual_seed(5)
    shape = (3, model.config.num_latents, model.config.latent_dim)
    base = dict(input_ids=ids, attention_mask=mask, timesteps=torch.tensor([0.1, 0.5, 0.95]),
                noise=torch.randn(shape, generator=g), decoder_noise=torch.randn(shape, generator=g))
    return {
        "eval": dict(train=False, self_conditioning=False, **base),
        "train-self-conditioned-gamma": dict(train=True, self_conditioning=True, encoder_grad_scale=0.3, **base),
        "train-no-self-condition": dict(train=True, self_conditioning=False, **base),
    }


def run_forward(model, kwargs: dict) -> dict:
    kwargs = dict(kwargs)
    model.train(kwargs.pop("train"))
    out = model(**kwargs)
    model.eval()
    keys = ("loss", "loss_diffusion", "loss_hidden", "loss_token", "token_accuracy")
    return {k: float(getattr(out, k).detach()) for k in keys} | {
        "loss_diffusion_per_sample": out.loss_diffusion_per_sample.tolist(),
        "latents": out.latents.flatten().tolist(), "predicted_latents": out.predicted_latents.flatten().tolist()}


HANDLER_REQUESTS = {
    "prompted": {"inputs": ["w1 w2", "w3"], "parameters": {"num_inference_steps": 3, "max_new_tokens": 5, "seed": 7,
                                                           "num_return_sequences": 2, "do_sample": True}},
    "unconditional": {"inputs": None, "parameters": {"num_inference_steps": 4, "seed": 3, "solver": "dpmpp_2m"}},
}


@pytest.fixture(scope="module")
def handler(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden-handler")
    lm = tiny_lm_folder(root / "lm")
    torch.manual_seed(0)
    model = sharpen(LDLMForDiffusionGeneration.from_frozen_lm(str(lm), **tiny_sizes()))
    model.save_pretrained(root / "ckpt")
    return EndpointHandler(str(root / "ckpt"))


def check(name: str, actual: dict[str, dict]) -> None:
    path = GOLDEN / f"{name}.json"
    if WRITE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps(actual, indent=0, sort_keys=True) + "\n")
    assert path.exists(), f"{path} is missing: the pins were never written (LDLM_WRITE_GOLDEN=1)."
    expected = json.loads(path.read_text())
    assert sorted(actual) == sorted(expected)
    for case, values in expected.items():
        for key, value in values.items():
            got = actual[case][key]
            where = f"{name}[{case}].{key}"
            if isinstance(value, list) and value and isinstance(value[0], float):
                # relative as well as absolute, like the scalar case below: latents of magnitude ~6 differ in the
                # last ~20 ulps between CPUs whose matmul kernels sum in another order (ids must still match exactly)
                torch.testing.assert_close(torch.tensor(got), torch.tensor(value), atol=ATOL, rtol=ATOL, msg=where)
            elif isinstance(value, float):
                assert abs(got - value) <= ATOL * max(1.0, abs(value)), f"{where}: {got} != {value}"
            else:
                assert got == value, f"{where}: {got} != {value}"


def test_golden_generate():
    model = golden_model()
    check("generate", {name: run_generate(model, kw) for name, kw in generate_cases().items()})


def test_golden_forward():
    model = golden_model()
    check("forward", {name: run_forward(model, kw) for name, kw in forward_cases(model).items()})


def test_golden_handler(handler):
    check("handler", {name: {"answer": handler(body)} for name, body in HANDLER_REQUESTS.items()})


def test_golden_pins_tell_the_cases_apart():
    """The pins can fail: every solver gives different unconditional ids and, in every mode, different latents;
    some rows end early at EOS (padding after it)."""
    pinned = json.loads((GOLDEN / "generate.json").read_text())
    assert len({str(pinned[f"unconditional-{s}-argmax"]["sequences"]) for s in SOLVERS}) == len(SOLVERS)
    for mode in ("unconditional", "prompted", "infilling"):
        latents = [torch.tensor(pinned[f"{mode}-{s}-argmax"]["latents"]) for s in SOLVERS]
        assert all((a - b).abs().max() > 100 * ATOL for i, a in enumerate(latents) for b in latents[i + 1:]), mode
    ended = [row for case in pinned.values() for row in case["sequences"] if EOS in row and row[-1] == 0]
    assert ended, "no pinned row ends early"
