"""generate(): modes, determinism, batch independence, prompts, infilling, EOS, config round trip, streaming, errors."""

import pytest
import torch
import torch.nn.functional as F
from transformers import TextDiffusionStreamer

from modeling_ldlm import LDLMForDiffusionGeneration, LDLMGenerationConfig
from modeling_ldlm.canvas import cut_at_eos
from modeling_ldlm.generation_ldlm import HeadChunking, sample_tokens
from tests.conftest import EOS, VOCAB, tiny_lm_folder, tiny_model, tiny_sizes, token_batch

L = 16  # tiny canvas


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return tiny_model().eval()


def gens(*seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def prompt_ce(model, latents, ids):
    """Mean CE of the decoded canvas at the prompt positions (what guidance minimises)."""
    logits = model.canvas_logits(latents, ids.shape[1])
    return F.cross_entropy(logits.transpose(1, 2), ids).item()


def test_unconditional_contract_right_after_init():
    model = LDLMForDiffusionGeneration(tiny_model().config)
    out = model.generate(num_return_sequences=3, num_inference_steps=4, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.long and out.shape[0] == 3 and 1 <= out.shape[1] <= L
    assert model.generation_config.max_length == L


def test_return_dict_counts_calls_and_keeps_history(model):
    for solver, calls in [("euler", 5), ("dpmpp_2m", 5), ("heun", 9), ("euler_maruyama", 5), ("ddpm", 5)]:
        out = model.generate(num_return_sequences=2, num_inference_steps=5, solver=solver, output_history=True,
                             return_dict_in_generate=True, generator=torch.Generator().manual_seed(0))
        assert out.num_network_calls == calls
        assert len(out.history) == 5 and out.history[0].shape == (2, 4, 8)
        assert out.latents.shape == (2, 4, 8) and out.timesteps.shape == (5,)
        torch.testing.assert_close(out.history[-1], out.latents)


@pytest.mark.parametrize("solver", ["euler", "ddpm"])
def test_seeded_generation_is_reproducible(model, solver):
    def run(seed):
        return model.generate(num_return_sequences=2, num_inference_steps=4, solver=solver, do_sample=True,
                              return_dict_in_generate=True, generator=torch.Generator().manual_seed(seed))

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a.sequences, b.sequences)
    torch.testing.assert_close(a.latents, b.latents)
    assert not torch.allclose(a.latents, c.latents)


@pytest.mark.parametrize("solver", ["euler", "euler_maruyama"])
def test_batch_equals_rows_one_by_one(model, solver):
    ids, mask = token_batch(3, 8, lengths=[8, 5, 7])
    kw = dict(num_inference_steps=4, solver=solver, max_new_tokens=5, do_sample=True, return_dict_in_generate=True)
    batch = model.generate(ids, mask, generator=gens(10, 11, 12), **kw)
    for row, seed in enumerate((10, 11, 12)):
        n = int(mask[row].sum())
        single = model.generate(ids[row:row + 1, :n], generator=gens(seed), **kw)
        torch.testing.assert_close(batch.latents[row:row + 1], single.latents, atol=1e-5, rtol=1e-5)
        completion = single.sequences[0, n:]
        assert batch.sequences[row, 8:8 + completion.numel()].tolist() == completion.tolist()
    # one generator hands out per-row seeds in order: row 0 of a batch = a batch of one from the same state
    first = model.generate(ids[:1], generator=torch.Generator().manual_seed(3), **kw)
    both = model.generate(ids[:2], mask[:2], generator=torch.Generator().manual_seed(3), **kw)
    torch.testing.assert_close(both.latents[:1], first.latents, atol=1e-5, rtol=1e-5)


def test_prompt_is_returned_unchanged_for_right_and_left_padding(model):
    ids, mask = token_batch(2, 8, lengths=[8, 5])
    out = model.generate(ids, mask, num_inference_steps=3, max_new_tokens=4, generator=gens(0, 1))
    assert torch.equal(out[:, :8], ids) and 9 <= out.shape[1] <= 12
    left_ids = torch.stack([ids[0], torch.cat([ids[1, 5:], ids[1, :5]])])
    left_mask = torch.stack([mask[0], torch.cat([mask[1, 5:], mask[1, :5]])])
    left = model.generate(left_ids, left_mask, num_inference_steps=3, max_new_tokens=4, generator=gens(0, 1))
    assert torch.equal(left[:, :8], left_ids)
    assert torch.equal(left[:, 8:], out[:, 8:])  # the same canvas: padding side does not matter
    # no max_new_tokens: the rest of the canvas (the trailing EOS of the prompt is dropped before placing it)
    full = model.generate(ids[:1], num_inference_steps=2, generator=gens(0))
    assert full.shape[1] <= 8 + (L - 7)
    many = model.generate(ids, mask, num_return_sequences=3, num_inference_steps=2, max_new_tokens=2)
    assert many.shape[0] == 6 and torch.equal(many[::3, :8], ids)


def test_prompt_guidance_conditions_the_latents(model):
    """Same noise, different prompts: without guidance the latents ignore the prompt; with it they move toward
    latents that decode to the prompt (lower CE at the prompt positions)."""
    ids, _ = token_batch(4, 7, seed=5)
    other, _ = token_batch(4, 7, seed=6)
    kw = dict(num_inference_steps=8, max_new_tokens=4, return_dict_in_generate=True)
    off = model.generate(ids, guidance_scale=0.0, generator=gens(0, 1, 2, 3), **kw)
    off_other = model.generate(other, guidance_scale=0.0, generator=gens(0, 1, 2, 3), **kw)
    torch.testing.assert_close(off.latents, off_other.latents)
    on = model.generate(ids, guidance_scale=1.0, generator=gens(0, 1, 2, 3), **kw)
    on_other = model.generate(other, guidance_scale=1.0, generator=gens(0, 1, 2, 3), **kw)
    assert not torch.allclose(on.latents, on_other.latents)
    assert prompt_ce(model, on.latents, ids[:, :6]) < prompt_ce(model, off.latents, ids[:, :6])


def test_infilling_keeps_fixed_positions(model):
    template = torch.randint(4, VOCAB, (2, 12), generator=torch.Generator().manual_seed(0))
    fixed = torch.zeros(2, 12, dtype=torch.bool)
    fixed[:, [0, 1, 5, 9]] = True
    template[1, 9] = EOS  # a fixed EOS ends row 1 at position 9
    out = model.generate(fixed_tokens=template, fixed_mask=fixed, num_inference_steps=4, generator=gens(0, 1),
                         return_dict_in_generate=True)
    seq = out.sequences
    assert seq.shape[1] <= 12
    assert torch.equal(seq[:, [0, 1, 5, 9]], template[:, [0, 1, 5, 9]])
    assert seq[1, 10:].eq(0).all()  # padded after the fixed EOS


def test_cut_at_eos_pads_after_the_first_eos_and_trims_the_batch():
    tokens = torch.tensor([[5, 6, EOS, 7, EOS], [5, EOS, 6, 7, 8], [EOS, 5, 6, EOS, 9]])
    out = cut_at_eos(tokens, torch.tensor([EOS]), 0, torch.tensor([0, 0, 1]))
    assert out.tolist() == [[5, 6, EOS, 0], [5, EOS, 0, 0], [EOS, 5, 6, EOS]]
    assert cut_at_eos(torch.tensor([[EOS, 4], [EOS, 5]]), torch.tensor([EOS]), 0, torch.zeros(2, dtype=torch.long)
                      ).tolist() == [[EOS], [EOS]]


def test_generate_cuts_at_eos():
    model = tiny_model().eval()
    with torch.no_grad():
        model.token_decoder.lm_head.bias[EOS] = 100.0  # every position decodes to EOS
    ids, mask = token_batch(2, 6, lengths=[6, 4])
    assert model.generate(num_return_sequences=2, num_inference_steps=2).tolist() == [[EOS], [EOS]]
    out = model.generate(ids, mask, num_inference_steps=2, max_new_tokens=5)
    assert torch.equal(out[:, :6], ids) and out[:, 6:].tolist() == [[EOS], [EOS]]


@pytest.mark.parametrize("do_sample", [False, True])
def test_vocabulary_head_skips_ended_rows_and_reads_the_same_ids(do_sample):
    """The head runs in position chunks only for rows that have not ended: with one position per chunk (the most
    skipping) every mode reads the same ids as one head call over the whole canvas, and the head runs less."""
    model = tiny_model().eval()
    head = model.token_decoder.lm_head
    with torch.no_grad():  # a strong, position-dependent EOS logit: rows end at different positions
        head.weight[EOS] = 30 * head.weight[EOS].std() * torch.randn(head.weight.shape[1],
                                                                      generator=torch.Generator().manual_seed(1))
        head.bias[EOS] = 1.0
    ids, mask = token_batch(2, 5, lengths=[5, 3])
    template = torch.randint(4, VOCAB, (2, 12), generator=torch.Generator().manual_seed(0))
    fixed = torch.zeros(2, 12, dtype=torch.bool)
    fixed[:, [0, 1, 7]] = True
    modes = {"unconditional": dict(num_return_sequences=16), "prompt": dict(input_ids=ids, attention_mask=mask),
             "infilling": dict(fixed_tokens=template, fixed_mask=fixed)}

    def run(kwargs, chunking):
        model.head_chunking = chunking
        positions = []
        hook = model.token_decoder.lm_head.register_forward_hook(
            lambda module, args, out: positions.append(out.shape[:-1].numel()))
        try:
            out = model.generate(**kwargs, num_inference_steps=3, do_sample=do_sample,
                                 generator=torch.Generator().manual_seed(0))
        finally:
            hook.remove()
        return out, sum(positions)

    for name, kwargs in modes.items():
        whole, whole_positions = run(kwargs, HeadChunking(chunks=1, min_positions=10**6, min_rows=1))
        chunked, chunked_positions = run(kwargs, HeadChunking(chunks=10**6, min_positions=1, min_rows=1))
        default, _ = run(kwargs, HeadChunking())
        assert torch.equal(chunked, whole) and torch.equal(default, whole), name
        assert chunked_positions <= whole_positions, name
        if name == "unconditional":
            first_eos = {int(row.eq(EOS).nonzero()[0]) if row.eq(EOS).any() else len(row) for row in whole}
            assert len(first_eos) > 1  # rows end at different places
            assert chunked_positions < whole_positions


def test_head_chunking_is_a_setting_of_the_model_with_a_checked_default():
    model = tiny_model()
    assert model.head_chunking == HeadChunking(chunks=4, min_positions=8, min_rows=256)
    assert HeadChunking().positions_per_call(width=64, batch=64) == 16  # 4 chunks
    assert HeadChunking().positions_per_call(width=64, batch=2) == 128  # a small batch: one call
    model.head_chunking = HeadChunking(min_rows=2**62)
    assert tiny_model().head_chunking == HeadChunking()  # set on one model, not on the class
    with pytest.raises(ValueError, match="chunks"):
        HeadChunking(chunks=0)


def test_token_sampling_filters():
    logits = torch.randn(2, 5, VOCAB)
    argmax = logits.argmax(-1)
    g = gens(0, 1)
    assert torch.equal(sample_tokens(logits, True, top_k=1, generators=g), argmax)
    assert torch.equal(sample_tokens(logits, True, top_p=1e-6, generators=g), argmax)
    sampled = sample_tokens(logits, True, temperature=5.0, generators=gens(0, 1))
    assert sampled.shape == (2, 5) and not torch.equal(sampled, argmax)
    assert torch.equal(sample_tokens(logits, True, temperature=5.0, generators=gens(0, 1)), sampled)


def test_learned_time_spacing_runs(model):
    out = model.generate(num_return_sequences=1, num_inference_steps=4, time_spacing="learned",
                         return_dict_in_generate=True)
    assert out.timesteps[0] == 1.0 and out.num_network_calls == 4


def test_generation_config_round_trip(tmp_path):
    model = tiny_model().eval()
    model.generation_config = LDLMGenerationConfig(num_inference_steps=7, solver="dpmpp_2m", t_min=0.1,
                                                   noise_scale=0.8, do_sample=True, temperature=0.9, top_p=0.95,
                                                   max_new_tokens=6, guidance_scale=2.0, max_length=L)
    model.save_pretrained(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "generation_config.json").exists()
    assert (tmp_path / "ckpt" / "handler.py").exists()
    reloaded = LDLMForDiffusionGeneration.from_pretrained(tmp_path / "ckpt")
    assert isinstance(reloaded.generation_config, LDLMGenerationConfig)
    assert reloaded.generation_config == model.generation_config
    out = reloaded.generate(return_dict_in_generate=True)
    assert out.num_network_calls == 7 and out.sequences.shape[1] <= 6
    # a value equal to the base GenerationConfig default but not to ours survives too
    model.generation_config = LDLMGenerationConfig(t_min=0.0)
    model.save_pretrained(tmp_path / "ckpt2")
    assert LDLMForDiffusionGeneration.from_pretrained(tmp_path / "ckpt2").generation_config.t_min == 0.0


class RecordingStreamer:
    def __init__(self):
        self.events = []

    def put(self, value):
        self.events.append(("put", value.clone()))

    def put_draft(self, value):
        self.events.append(("draft", value.clone()))

    def end(self):
        self.events.append(("end", None))


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_streamer_gets_one_draft_per_step(model, solver):
    ids, _ = token_batch(1, 5)
    streamer = RecordingStreamer()
    out = model.generate(ids, num_inference_steps=6, solver=solver, max_new_tokens=4, streamer=streamer,
                         generator=gens(0))
    kinds = [kind for kind, _ in streamer.events]
    assert kinds == ["put"] + ["draft"] * 6 + ["put", "end"]
    assert torch.equal(streamer.events[0][1], ids)
    assert torch.equal(streamer.events[-2][1], out[:, 5:])


def test_text_diffusion_streamer_renders(tmp_path, capsys):
    lm = tiny_lm_folder(tmp_path / "lm")
    model = LDLMForDiffusionGeneration.from_frozen_lm(str(lm), **tiny_sizes()).eval()
    streamer = TextDiffusionStreamer(model.tokenizer, skip_special_tokens=True)
    enc = model.tokenizer("w1 w2 w3", return_tensors="pt")
    model.generate(**enc, num_inference_steps=3, max_new_tokens=4, streamer=streamer)
    printed = capsys.readouterr().out
    assert "w1 w2 w3" in printed and printed.count("\0337") == 3  # one saved-cursor draft per step


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_inference_steps=0), "num_inference_steps"),
    (dict(num_inference_steps=-1), "num_inference_steps"),
    (dict(solver="rk4"), "Unknown solver"),
    (dict(t_min=0.5, t_max=0.5), "t_min < t_max"),
    (dict(t_min=0.9, t_max=0.2), "t_min < t_max"),
    (dict(temperature=0.0), "temperature"),
    (dict(top_p=1.5), "top_p"),
    (dict(max_new_tokens=L + 1), "does not fit"),
    (dict(num_return_sequences=0), "num_return_sequences"),
    (dict(sampling_steps=4), "unknown arguments"),
    (dict(generator=[torch.Generator()] * 3), "one per output row"),
    (dict(attention_mask=torch.ones(1, 3)), "without input_ids"),
])
def test_bad_generation_arguments_raise(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.generate(num_return_sequences=kwargs.pop("num_return_sequences", 2), num_inference_steps=kwargs.pop(
            "num_inference_steps", 2), **kwargs)


def test_bad_inputs_raise(model):
    ids, mask = token_batch(2, 6)
    cases = [
        (dict(input_ids=torch.randint(4, VOCAB, (1, L + 2))), "longer|max_sequence_length"),
        (dict(input_ids=ids, max_new_tokens=L - 3), "does not fit"),
        (dict(input_ids=ids, attention_mask=mask[:, :4]), "shape"),
        (dict(input_ids=ids + VOCAB), "vocabulary"),
        (dict(input_ids=ids, fixed_tokens=ids, fixed_mask=mask), "not both"),
        (dict(fixed_tokens=ids + VOCAB, fixed_mask=mask), "vocabulary"),
        (dict(fixed_tokens=ids), "fixed_mask"),
        (dict(fixed_tokens=torch.randint(4, VOCAB, (1, L + 1)), fixed_mask=torch.ones(1, L + 1)), "canvas"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            model.generate(num_inference_steps=2, **kwargs)
    # not an integer tensor: the same TypeError as forward() raises for the same fault
    for bad, match in ((ids.float(), "integer"), (ids.tolist(), "LongTensor")):
        with pytest.raises(TypeError, match=match):
            model.generate(bad, num_inference_steps=2)
        with pytest.raises(TypeError, match=match):
            model(bad)


def test_step_callback_sees_every_step_and_can_replace_x0(model):
    seen = []

    def watch(step, t, z_t, x0):
        seen.append((step, t, tuple(z_t.shape)))

    kw = dict(num_return_sequences=2, num_inference_steps=4, return_dict_in_generate=True, output_history=True)
    plain = model.generate(generator=gens(0, 1), step_callback=watch, **kw)
    assert [s for s, _, _ in seen] == [0, 1, 2, 3] and seen[0][1] == 1.0 and seen[0][2] == (2, 4, 8)
    baseline = model.generate(generator=gens(0, 1), **kw)
    torch.testing.assert_close(plain.latents, baseline.latents)  # a callback returning None changes nothing

    target = torch.full((2, 4, 8), 0.5)
    pinned = model.generate(generator=gens(0, 1), step_callback=lambda step, t, z, x0: target, **kw)
    torch.testing.assert_close(pinned.latents, target)  # the last step's replacement is the result
    assert all(torch.equal(h, target) for h in pinned.history)  # history sees the replaced x0_hat
    with pytest.raises(ValueError, match="step_callback"):
        model.generate(generator=gens(0, 1), step_callback=lambda step, t, z, x0: x0[:1], **kw)


def test_generation_config_survives_the_base_class_methods(tmp_path):
    """LDLMGenerationConfig skips GenerationConfig.__init__; the base class's methods must still work on it, and
    private keys a newer transformers writes are kept as metadata, not refused."""
    config = LDLMGenerationConfig(num_inference_steps=7, solver="heun", top_k=5)
    config.save_pretrained(tmp_path)
    loaded = LDLMGenerationConfig.from_pretrained(tmp_path)
    assert loaded == config and hash(loaded) == hash(config) and "heun" in repr(loaded)
    future = LDLMGenerationConfig.from_dict({**config.to_dict(), "_some_future_metadata": 1})
    assert (future.num_inference_steps, future.solver, future.top_k) == (7, "heun", 5)
    copy = LDLMGenerationConfig(**config.to_dict())
    copy.update(num_inference_steps=3)
    assert copy.num_inference_steps == 3 and config.num_inference_steps == 7
    with pytest.raises(ValueError, match="Unknown LDLMGenerationConfig fields"):
        LDLMGenerationConfig(sampling_steps=3)
