"""The arm records of the side-by-side benchmark (benchmarks/arms.py): every arm of every tier can be trained,
loaded, sampled and swept, the records keep the names of earlier results and work dirs, and each trained model is
loaded once however many arms sample it."""

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
import torch

from benchmarks import ldlm_arms
from benchmarks.arm import Arm, ArmModels, Bench, unique_models
from benchmarks.arms import ABLATIONS, ARMS, LDLM, LDLM_SAMPLED, ablation_arms, arms_of, headline_of
from benchmarks.paths import RESULTS
from benchmarks.summary import NOT_RECORDED, tier_settings
from benchmarks.tiers import TIERS


@pytest.mark.parametrize("name", sorted(TIERS))
def test_every_arm_of_every_tier_has_its_steps_knobs_and_functions(name):
    tier = TIERS[name]
    arms = arms_of(tier) + ablation_arms(tier)
    for arm in arms:
        steps = arm.steps(tier)
        assert steps and all(isinstance(s, int) and s >= 0 for s in steps), arm.name
        assert 1.0 in arm.knob_values(tier), arm.name  # MAUVE, speed and the report's samples are read at knob 1.0
        assert arm.knob and all(callable(f) for f in (arm.train, arm.load, arm.sampler, arm.parameters))
    names = [arm.name for arm in arms]
    assert len(set(names)) == len(names)
    assert any(arm.distilled for arm in arms) == bool(tier.get("distill"))
    prompted = bool(tier.get("prompted"))
    assert headline_of(tier) in arms
    assert all(arm.name in names for arm in ARMS if arm.baseline and (arm.continuer or not prompted))
    # a prompted tier measures the arms that continue prompts, the conditional model among them; no other tier does
    assert all(arm.continuer for arm in arms) if prompted else not any(arm.conditional for arm in arms)
    assert any(arm.conditional for arm in arms) == prompted


def test_records_keep_the_names_of_earlier_results_and_work_dirs():
    committed = json.loads((RESULTS / "cpu-packed-distilled.json").read_text())
    knobs = {arm.name: arm.knob for arm in ARMS}  # a new arm adds to these; it renames none
    assert {name: knobs.get(name) for name in committed["knobs"]} == committed["knobs"]
    assert [name for name in knobs if name in committed["knobs"]] == list(committed["knobs"])  # the rows' order
    ablated = LDLM_SAMPLED.ablated(ABLATIONS["no_mse"])
    assert (ablated.name, ablated.model, ablated.knob) == ("ldlm-sampled-no_mse", "ablation-no_mse", LDLM_SAMPLED.knob)
    assert ablated.ablation.switch == ("--decoder_loss", "ce")
    models = [arm.model for arm in unique_models(arms_of(TIERS["cpu-packed"]))]
    assert [m for m in models if m in ("ldlm", "ldlm-distilled", "ar", "mdlm")] == ["ldlm", "ldlm-distilled", "ar", "mdlm"]
    assert len({arm.colour for arm in ARMS}) == len(ARMS)  # every arm has a hue of its own in the plots


def test_tier_settings_keep_the_recorded_order_and_record_a_new_setting():
    data = {f"{split}_{kind}": torch.ones(3, 4, dtype=torch.long) for split in ("train", "val") for kind in ("ids",
                                                                                                          "mask")}
    committed = json.loads((RESULTS / "cpu-packed-distilled.json").read_text())["tier_settings"]
    assert [k for k in tier_settings(TIERS["cpu-packed"], data) if k in committed] == list(committed)
    settings = tier_settings({**TIERS["toy"], "cdcd_steps": [4, 8]}, data)
    assert settings["cdcd_steps"] == [4, 8] and not set(NOT_RECORDED) & set(settings)


def test_each_model_is_loaded_once_and_only_when_sampled(tmp_path):
    loads = []

    def load(bench, arm):
        loads.append(arm.model)
        return {"offset": len(loads)}

    def sampler(model, special):
        return lambda batch, steps, knob, seed: ([[model["offset"]]] * batch, steps)

    common = dict(train=None, load=load, sampler=sampler, parameters=len, knob="k", steps=lambda tier: [1],
                  colour="tab:gray")
    a, b, c = Arm("a", model="m", **common), Arm("b", model="m", **common), Arm("c", model="n", **common)
    bench = Bench("toy", {}, tmp_path, "lm", None, {}, frozenset(), 0)
    models = ArmModels(bench)
    sample_a, sample_b, sample_c = models.sampler(a), models.sampler(b), models.sampler(c)
    assert loads == []  # building a sampler loads nothing: a fully cached sweep costs no load
    assert sample_b(2, 3, 1.0, 0) == ([[1], [1]], 3) and sample_a(1, 1, 1.0, 0) == ([[1]], 1)
    assert sample_c(1, 1, 1.0, 0) == ([[2]], 1) and models.load(a) is models.load(b)
    assert loads == ["m", "n"]
    assert [arm.name for arm in unique_models([a, b, c])] == ["a", "c"]


def test_an_ldlm_arm_of_its_own_passes_its_arguments_and_trains_once(tmp_path, monkeypatch):
    """train/run.py gets the tier's recipe, then the arm's own arguments, then an ablation's switch, then every
    training sentence; a finished run is not started again."""
    commands = []

    def fake_run(what, cmd):
        commands.append(cmd)
        out = Path(cmd[cmd.index("--output_dir") + 1])
        out.mkdir()
        (out / "ldlm_run.json").write_text(json.dumps({"metrics": {"train_runtime": 1.5}}))

    monkeypatch.setattr(ldlm_arms, "run_logged", fake_run)
    (tmp_path / "train.txt").write_text("one\ntwo\nthree\n")
    tier = TIERS["toy"]
    bench = Bench("toy", tier, tmp_path, "lm", None, {}, frozenset(), 0)
    fixed = replace(LDLM, name="ldlm-fixed", model="ldlm-fixed",
                    train=partial(ldlm_arms.train_ldlm, args=("--latent_space", "fixed")))
    ablated = fixed.ablated(ABLATIONS["no_mse"])
    assert fixed.train(bench, fixed) == {"train_runtime": 1.5} and ablated.train(bench, ablated)["train_runtime"] == 1.5
    fixed.train(bench, fixed)
    assert len(commands) == 2
    tail = ["--max_train_samples", "3", "--long_lines", "drop"]
    assert commands[0][-len(tier["ldlm_args"]) - 6:] == [*tier["ldlm_args"], "--latent_space", "fixed", *tail]
    assert commands[1][-10:] == ["--latent_space", "fixed", *tier["ablation_args"], "--decoder_loss", "ce", *tail]
