"""The joint-training variants probe: the ramped decoder noise reaches the training step and is undone after it; the
standardised latents are standardised; both variants train end to end through train/run.py and leave it as it was."""

import pytest
import torch

import train.run as run
from benchmarks.probes.joint_variants import main, ramped_decoder_noise, standardise_latents
from modeling_ldlm import LDLMForDiffusionGeneration
from tests.conftest import tiny_model
from tests.train import test_train_run
from train.trainer import LDLMTrainer

argv, setup = test_train_run.argv, test_train_run.setup  # setup: the tiny LM and corpus fixture


def test_ramp_runs_from_the_preset_noise_to_the_joint_noise():
    assert ramped_decoder_noise(0.0, 0.5, 3.0) == 0.5
    assert ramped_decoder_noise(1.0, 0.5, 3.0) == 3.0
    assert ramped_decoder_noise(0.5, 0.5, 1.5) == 1.0


def test_standardised_latents_have_batch_statistics_in_training_and_running_ones_in_evaluation():
    model = tiny_model()
    n, d, length = model.config.num_latents, model.config.latent_dim, model.config.max_sequence_length
    encoder = model.encoder
    standardise_latents(encoder, n, d)
    hidden = torch.randn(32, length, model.config.frozen_lm_hidden_size)
    mask = torch.ones(32, length, dtype=torch.long)
    encoder.train()
    z = encoder(hidden, mask)
    assert torch.allclose(z.mean(0), torch.zeros(n, d), atol=1e-5)
    assert torch.allclose(z.var(0, unbiased=False), torch.ones(n, d), atol=5e-2)  # var / (var + eps)
    assert not torch.equal(encoder.running_mean, torch.zeros(n, d))
    encoder.eval()
    running = encoder(hidden, mask)
    assert not torch.allclose(running, z, atol=1e-3)  # the running statistics have moved only 1% of the way
    assert {"running_mean", "running_var"} <= {name for name, _ in encoder.named_buffers()}


def test_ramp_variant_trains_at_the_joint_noise_and_restores_the_preset(setup, tmp_path, monkeypatch):
    base, lm = setup
    seen = []
    plain = LDLMTrainer.compute_loss

    def recording(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            seen.append(model.config.decoder_noise_std)
        return plain(self, model, inputs, return_outputs, num_items_in_batch)

    monkeypatch.setattr(LDLMTrainer, "compute_loss", recording)
    trainer_class = run.LDLMTrainer
    main(["decoder_noise_ramp", "--sigma_joint", "2.0", "--",
          *argv(base, lm, tmp_path / "ramp", "--gamma_warmup", "false", "--decoder_noise_std", "0.5",
                "--num_samples", "0")])
    assert seen and set(seen) == {2.0}  # gamma = 1 throughout without the warmup
    saved = LDLMForDiffusionGeneration.from_pretrained(tmp_path / "ramp")
    assert saved.config.decoder_noise_std == 0.5
    assert run.LDLMTrainer is trainer_class


def test_batch_standardised_variant_trains_and_its_folder_loads(setup, tmp_path):
    base, lm = setup
    builder = run.build_model
    summary = main(["batch_standardised", "--", *argv(base, lm, tmp_path / "bn", "--num_samples", "0")])
    assert summary["metrics"]["eval_token_accuracy"] >= 0
    model = LDLMForDiffusionGeneration.from_pretrained(tmp_path / "bn")
    assert model.generate(num_return_sequences=2, num_inference_steps=2).shape[0] == 2
    assert run.build_model is builder


def test_bad_command_lines():
    with pytest.raises(SystemExit):
        main(["batch_standardised", "train/configs/quickstart.yaml"])  # no `--` before train/run.py's arguments
    with pytest.raises(SystemExit):
        main(["decoder_noise_ramp", "--sigma_joint", "-1", "--", "train/configs/quickstart.yaml"])
