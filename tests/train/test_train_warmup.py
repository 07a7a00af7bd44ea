"""Unit tests of the training-side pure pieces: gamma(s) warmup, its start state, EMA, diagnostics, model card."""

import math
from pathlib import Path

import pytest
import torch

from train.diagnostics import latent_variance_share
from train.ema import EMAWeights
from train.model_card import DEFAULT_TEMPLATE, render_model_card
from train.warmup import WarmupState, gamma_schedule


def test_gamma_endpoints_and_monotone():
    assert gamma_schedule(0, 100, gamma_min=1e-3) == pytest.approx(1e-3)
    assert gamma_schedule(100, 100) == 1.0
    assert gamma_schedule(250, 100) == 1.0
    values = [gamma_schedule(s, 100, k=10, c=0.8, gamma_min=1e-3) for s in range(0, 101)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[50] < 0.1  # the sigmoid centred at c = 0.8 keeps gamma small for most of the warmup
    assert gamma_schedule(99.999, 100) == pytest.approx(1.0, abs=1e-3)  # continuous at S_wu


def test_gamma_formula_and_no_warmup():
    k, c, g = 10.0, 0.8, 0.01
    sig = lambda x: 1 / (1 + math.exp(-x))
    s, S = 30, 100
    expected = g + (1 - g) * (sig(k * (s / S - c)) - sig(-k * c)) / (sig(k * (1 - c)) - sig(-k * c))
    assert gamma_schedule(s, S, k, c, g) == pytest.approx(expected)
    assert gamma_schedule(0, 0) == 1.0
    with pytest.raises(ValueError):
        gamma_schedule(1, -1)


def test_warmup_waits_for_reconstruction():
    w = WarmupState(warmup_steps=10, gamma_min=1e-3, accuracy_threshold=0.5, accuracy_ema_decay=0.0)
    w.observe(0, 0.1)
    assert w.start_step is None and w.gamma(5) == 1e-3
    w.observe(7, 0.6)
    assert w.start_step == 7 and w.gamma(7) == pytest.approx(1e-3) and w.gamma(17) == 1.0
    restored = WarmupState(warmup_steps=10, accuracy_threshold=0.5)
    restored.load_state_dict(w.state_dict())
    assert restored.gamma(12) == w.gamma(12)
    assert WarmupState(warmup_steps=10, enabled=False).gamma(0) == 1.0
    assert WarmupState(warmup_steps=10).start_step == 0


def test_ema_update_apply_and_roundtrip():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    ema = EMAWeights(model, decay=0.5)
    before = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # d = min(0.5, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.shadow["weight"], d * before + (1 - d) * model.weight)
    live = model.weight.detach().clone()
    with ema.applied(model):
        assert torch.allclose(model.weight, ema.shadow["weight"])
    assert torch.equal(model.weight, live)
    other = EMAWeights(model, decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1 and torch.equal(other.shadow["weight"], ema.shadow["weight"])
    with pytest.raises(ValueError):
        EMAWeights(model, decay=1.0)


def test_diagnostics():
    same = torch.randn(1, 4, 8).expand(16, 4, 8)
    assert latent_variance_share(same) == pytest.approx(0.0, abs=1e-6)
    assert latent_variance_share(torch.randn(4096, 4, 8)) == pytest.approx(1.0, abs=0.02)


def test_model_card_render():
    card = render_model_card({"model_id": "me/ldlm", "recipe": {"sigma_dec": 0.5}, "global_step": 3},
                             template=DEFAULT_TEMPLATE)
    assert "# me/ldlm" in card and "| sigma_dec | 0.5 |" in card and "{{" not in card


def test_model_card_says_how_the_latent_space_was_trained():
    from types import SimpleNamespace

    from train.model_card import training_mode

    joint = SimpleNamespace(latent_space="joint", gamma_warmup=True)
    never = training_mode({"gamma_start_step": None, "gamma_one_step": None}, joint)
    assert "never started" in never and "**not trained jointly**" in never
    partly = training_mode({"gamma_start_step": 10, "gamma_one_step": None}, joint)
    assert "started at step 10" in partly and "did not reach 1" in partly and "**not trained jointly**" in partly
    said = training_mode({"gamma_start_step": 10, "gamma_one_step": 40, "gamma_one_fraction": 0.6}, joint)
    assert "**jointly**" in said and "not trained jointly" not in said
    assert "started at step 10" in said and "reached 1 at step 40" in said and "60%" in said
    fixed = training_mode({"autoencoder_frozen_step": 50}, SimpleNamespace(latent_space="fixed", gamma_warmup=True))
    assert "frozen from step 50" in fixed and "**not trained jointly**" in fixed
    no_warmup = training_mode({"gamma_start_step": 0, "gamma_one_step": 0}, SimpleNamespace(gamma_warmup=False))
    assert "**jointly** from the first step" in no_warmup


def test_the_model_card_docstring_names_every_placeholder_the_templates_use():
    import inspect
    import re

    from train import model_card

    named = set(re.findall(r"[a-z_]+", model_card.__doc__.split("Names filled:")[1]))
    run_card = Path(model_card.__file__).parents[1].joinpath("MODEL_CARD.md").read_text()
    for template, render in ((run_card, model_card.render_run_card),
                             (model_card.DEFAULT_TEMPLATE, model_card.render_run_card),
                             (model_card.DISTILLED_TEMPLATE, model_card.render_distilled_card)):
        placeholders = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", template))
        assert placeholders <= named, sorted(placeholders - named)
        filled = set(re.findall(r'"(\w+)":', inspect.getsource(render)))
        assert placeholders <= filled, sorted(placeholders - filled)
