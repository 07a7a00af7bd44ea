"""LDLMTrainer on tiny random models: the loss falls, resume is exact, GA scaling, ablation switches, diagnostics."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from tests.conftest import tiny_model, token_batch
from train.arguments import LDLMTrainingArguments
from train.base_trainer import EMA_NAME
from train.data import LDLMCollator
from train.trainer import STATE_NAME, LDLMTrainer, token_decoder_correct


def rows(n=32, length=12, seed=0):
    ids, mask = token_batch(n, length, seed=seed)
    return [{"input_ids": ids[i][mask[i].bool()].tolist()} for i in range(n)]


def make_trainer(tmp_path, model=None, data=None, **kw):
    args = dict(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none", disable_tqdm=True,
                per_device_train_batch_size=4, per_device_eval_batch_size=8, learning_rate=3e-3, max_steps=6,
                logging_steps=1, save_strategy="no", seed=0, dataloader_drop_last=True, ema_decay=0.9,
                gamma_warmup_ratio=0.5, max_eval_batches=2, lr_scheduler_type="constant")
    args.update(kw)
    data = data if data is not None else rows()
    model = model if model is not None else tiny_model()
    return LDLMTrainer(model=model, args=LDLMTrainingArguments(**args), train_dataset=data, eval_dataset=rows(16, seed=1),
                       data_collator=LDLMCollator(0))


def losses(trainer):
    return {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}


def test_few_steps_reduce_loss_and_log_everything(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=40, logging_steps=10, data=rows(16))
    trainer.train()
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert logged[-1]["loss"] < logged[0]["loss"]
    for key in ("loss_diffusion", "loss_hidden", "loss_token", "token_accuracy", "gamma", "t_q10", "t_q50", "t_q90"):
        assert key in logged[0]
    names = {n for group in trainer.optimizer.param_groups for p in group["params"] for n, q in
             trainer.model.named_parameters() if q is p}
    assert names and not any(n.startswith("frozen_lm.") for n in names)
    assert not any(p.requires_grad for p in trainer.model.frozen_lm.parameters())
    metrics = trainer.evaluate()
    for key in ("eval_loss", "eval_token_accuracy", "eval_latent_variance_share", "eval_gamma", "eval_loss_hidden"):
        assert key in metrics


def test_token_decoder_accuracy_reads_the_frozen_states_not_the_latents(tmp_path):
    """eval_token_decoder_accuracy: the token decoder on the frozen LM's own states, cached or computed alike."""
    model = tiny_model().eval()
    ids, mask = token_batch(4, 10, lengths=[10, 7, 5, 3])
    with torch.no_grad():
        logits = model.token_decoder(model.normalize_hidden(model.frozen_hidden_states(ids, mask)))
    expected = float(((logits.argmax(-1) == ids) & mask.bool()).sum())
    cached = {"input_ids": ids, "attention_mask": mask, "hidden_states": model.frozen_hidden_states(ids, mask)}
    assert token_decoder_correct(model, {"input_ids": ids, "attention_mask": mask}) == expected
    assert token_decoder_correct(model, cached) == expected
    with torch.no_grad():
        model.token_decoder.lm_head.bias.fill_(0.0)
        model.token_decoder.lm_head.bias[5] = 1e4  # every position now decodes to token 5
    assert token_decoder_correct(model, cached) == float(((ids == 5) & mask.bool()).sum())
    metrics = make_trainer(tmp_path, model=model).evaluate()
    assert 0 <= metrics["eval_token_decoder_accuracy"] <= 1


def test_resume_is_exact(tmp_path):
    full = make_trainer(tmp_path / "a", save_strategy="steps", save_steps=3, gamma_start_accuracy=0.0)
    full.train()
    ckpt = tmp_path / "a" / "out" / "checkpoint-3"
    assert (ckpt / STATE_NAME).is_file() and (ckpt / EMA_NAME).is_file()
    assert json.load(open(ckpt / STATE_NAME))["warmup"]["start_step"] == 0
    resumed = make_trainer(tmp_path / "b", model=tiny_model(seed=5), save_strategy="steps", save_steps=3,
                           gamma_start_accuracy=0.0)
    resumed.train(resume_from_checkpoint=str(ckpt))
    a, b = losses(full), losses(resumed)
    assert set(b) == {1, 2, 3, 4, 5, 6}  # 1-3 come back with the checkpoint's trainer state
    for step in (4, 5, 6):
        assert b[step] == pytest.approx(a[step], rel=1e-5)
    ema_a = full.ema.shadow
    for name, value in resumed.ema.shadow.items():
        assert torch.allclose(value, ema_a[name], atol=1e-6)
    sa = full.model.timestep_sampler.loss_ema
    assert torch.allclose(resumed.model.timestep_sampler.loss_ema, sa, atol=1e-6)


def test_gradient_accumulation_matches_big_batch(tmp_path):
    # Deterministic objective: no diffusion term, no noise, equal lengths -> GA 2 x 2 == one batch of 4.
    over = dict(loss_diffusion_weight=0.0, decoder_noise_std=0.0, self_conditioning_prob=0.0)
    data = rows(4)
    one = make_trainer(tmp_path / "a", model=tiny_model(**over), data=data, max_steps=1, per_device_train_batch_size=4,
                       optim="sgd", ema_decay=0.0, max_grad_norm=0.0)
    two = make_trainer(tmp_path / "b", model=tiny_model(**over), data=data, max_steps=1, per_device_train_batch_size=2,
                       gradient_accumulation_steps=2, optim="sgd", ema_decay=0.0, max_grad_norm=0.0)
    for t in (one, two):  # the same sample order for both
        t.args.__dict__["train_sampling_strategy"] = "sequential"
        t._get_train_sampler = lambda *a, **k: torch.utils.data.SequentialSampler(data)
        t.train()
    for (n, p), q in zip(one.model.named_parameters(), two.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6), n
    assert losses(one)[1] == pytest.approx(losses(two)[1], rel=1e-5)


def test_ablation_switches(tmp_path):
    t = make_trainer(tmp_path / "a", gamma_warmup=False, adaptive_timesteps=False, ema_decay=0.0, max_steps=2)
    t.train()
    assert all(h["gamma"] == 1.0 for h in t.state.log_history if "gamma" in h)
    assert int(t.model.timestep_sampler.num_updates) == 0
    assert t.ema is None
    t = make_trainer(tmp_path / "b", max_steps=2, gamma_warmup_ratio=1.0)
    t.train()
    assert [h["gamma"] for h in t.state.log_history if "gamma" in h][0] == pytest.approx(1e-3)
    assert int(t.model.timestep_sampler.num_updates) == 2
    # gamma waits for reconstruction: an unreachable threshold keeps it at gamma_min
    t = make_trainer(tmp_path / "c", max_steps=3, gamma_start_accuracy=1.0, gamma_warmup_ratio=0.0)
    t.train()
    assert all(h["gamma"] == pytest.approx(1e-3) for h in t.state.log_history if "gamma" in h)
    assert t.warmup.start_step is None


def test_final_save_holds_ema_weights_and_collapse_warning(tmp_path, caplog):
    t = make_trainer(tmp_path, max_steps=3, ema_decay=0.5, collapse_threshold=1.5)
    t.train()
    with caplog.at_level("WARNING"):
        t.evaluate()
    assert "LATENT COLLAPSE" in caplog.text
    t.save_model()
    out = tmp_path / "out"
    saved = load_file(str(out / "model.safetensors"))
    name = "denoiser.out_proj.weight"
    assert torch.allclose(saved[name], t.ema.shadow[name])
    assert not torch.allclose(saved[name], dict(t.model.named_parameters())[name])
    assert os.path.isfile(out / "modeling_ldlm.py") and os.path.isfile(out / "config.json")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="token_loss_fraction"):
        make_trainer(tmp_path, token_loss_fraction=0.0)
    with pytest.raises(ValueError, match="Zero training steps"):
        make_trainer(tmp_path, max_steps=-1, num_train_epochs=0)
    t = make_trainer(tmp_path, max_steps=-1, num_train_epochs=0.1)  # 8 batches an epoch: 0.8 steps, rounded down
    with pytest.raises(ValueError, match="0 optimiser steps"):
        t.train()


def test_resume_values_that_mean_the_newest_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path)
    for value in (True, "true", "Last", "latest"):
        with pytest.raises(ValueError, match="No valid checkpoint found"):
            trainer.checkpoint_to_resume(value)
    assert trainer.checkpoint_to_resume(None) is None
    assert trainer.checkpoint_to_resume("some/checkpoint-3") == "some/checkpoint-3"


def test_the_private_trainer_methods_we_override_are_unchanged():
    """train/checkpointing.py overrides three private Trainer methods (atomic checkpoints, EMA in the final save).
    If an upgrade renames them, changes their parameters, or stops routing checkpoint writes through them, this
    fails and names what changed, instead of checkpoints silently becoming non-atomic."""
    import inspect

    from transformers import Trainer

    from train.checkpointing import TRAINER_INTERNALS

    for name, params in TRAINER_INTERNALS.items():
        method = getattr(Trainer, name, None)
        assert method is not None, f"transformers.Trainer.{name} no longer exists: update train/checkpointing.py"
        got = tuple(inspect.signature(method).parameters)[1:]
        assert got == params, f"transformers.Trainer.{name}{got} changed from {params}: update train/checkpointing.py"
    save_checkpoint = inspect.getsource(Trainer._save_checkpoint)
    assert "self._get_output_dir(" in save_checkpoint, "checkpoints are no longer written under _get_output_dir"
    assert "self.save_model(" in save_checkpoint, "checkpoints no longer save the weights through save_model"
    assert "self._save(" in inspect.getsource(Trainer.save_model), "save_model no longer writes through _save"


def test_evaluate_extends_the_trainers_own(tmp_path):
    """evaluate() is the Trainer's: its speed metrics, callbacks and compute_metrics come with LDLM's own metrics."""
    seen = {}

    def latent_norm(prediction):
        seen["shape"] = prediction.predictions.shape
        return {"latent_norm": float((prediction.predictions ** 2).mean())}

    trainer = make_trainer(tmp_path)
    trainer.compute_metrics = latent_norm
    metrics = trainer.evaluate()
    for key in ("eval_loss", "eval_token_accuracy", "eval_latent_variance_share", "eval_runtime",
                "eval_samples_per_second", "eval_latent_norm"):
        assert key in metrics, key
    assert seen["shape"] == (16, 4, 8)
    assert trainer.state.log_history[-1]["eval_loss"] == metrics["eval_loss"]


def test_fixed_latent_space_trains_the_autoencoder_then_only_the_denoiser(tmp_path):
    """The two-stage alternative: gamma = 0 throughout; from half the run the encoder and decoders stop changing while
    the denoiser keeps training."""
    trainer = make_trainer(tmp_path, max_steps=8, latent_space="fixed", fixed_autoencoder_ratio=0.5)
    model = trainer.model
    snapshots = {}

    class Snapshot(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            snapshots[state.global_step] = {n: p.detach().clone() for n, p in model.named_parameters()
                                            if not n.startswith("frozen_lm.")}

    trainer.add_callback(Snapshot())
    trainer.train()
    gammas = [h["gamma"] for h in trainer.state.log_history if "gamma" in h]
    assert gammas and all(g == 0.0 for g in gammas)
    assert trainer.warmup_milestones()["autoencoder_frozen_step"] == 4
    assert trainer.evaluate()["eval_gamma"] == 0.0  # the evaluation reports the gamma training used

    def changed(prefix, a, b):
        return any(not torch.equal(snapshots[a][n], snapshots[b][n]) for n in snapshots[a] if n.startswith(prefix))

    for part in ("encoder.", "latent_decoder.", "token_decoder."):
        assert changed(part, 1, 4) and not changed(part, 4, 8), part
    assert changed("denoiser.", 4, 8)


def test_fixed_latent_space_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="latent_space"):
        make_trainer(tmp_path, latent_space="frozen")
    with pytest.raises(ValueError, match="fixed_autoencoder_ratio"):
        make_trainer(tmp_path, latent_space="fixed", fixed_autoencoder_ratio=1.0)
