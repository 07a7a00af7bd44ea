"""Command-line arguments of `train/run.py`: model, data and training dataclasses for `HfArgumentParser`.

Every part of the four-part recipe is switchable here, so the paper's ablations can be rerun:
`--decoder_loss ce`, `--gamma_warmup false`, `--adaptive_timesteps false`, `--decoder_noise_std 0`,
`--self_conditioning_prob 0`, `--ema_decay 0`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments


@dataclass
class ModelArguments:
    frozen_lm: str | None = field(default=None, metadata={"help": "Hub name or folder of the frozen LM (new model)."})
    model_name_or_path: str | None = field(default=None, metadata={"help": "An LDLM checkpoint to fine-tune."})
    preset: str | None = field(default="cpu-small", metadata={"help": "Size preset of LDLMConfig (new model)."})
    frozen_lm_layer: int | None = None
    max_sequence_length: int | None = None
    num_latents: int | None = field(default=None, metadata={"help": "N, latents per sequence."})
    latent_dim: int | None = None
    decoder_noise_std: float | None = field(default=None, metadata={"help": "sigma_dec; 0 switches it off."})
    decoder_loss: str | None = field(default=None, metadata={"help": "'mse' (recipe) or 'ce' (ablation)."})
    token_loss_stop_gradient: bool | None = None
    self_conditioning_prob: float | None = field(default=None, metadata={"help": "0 switches self-conditioning off."})
    noise_schedule_d: float | None = None
    config_overrides: str | None = field(
        default=None, metadata={"help": "More LDLMConfig fields for a new model: 'denoiser_num_layers=6,dropout=0.1'."})

    def config_fields(self) -> dict:
        names = ["frozen_lm_layer", "max_sequence_length", "num_latents", "latent_dim", "decoder_noise_std",
                 "decoder_loss", "token_loss_stop_gradient", "self_conditioning_prob", "noise_schedule_d"]
        fields = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        for item in (self.config_overrides or "").split(","):
            if item.strip():
                if "=" not in item:
                    raise ValueError(f"--config_overrides entries look like key=value, got {item!r}.")
                key, value = (s.strip() for s in item.split("=", 1))
                fields[key] = _parse_value(value)
        return fields


def _parse_value(text: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset (e.g. 'openwebtext', 'lm1b')."})
    dataset_config_name: str | None = None
    train_file: str | None = field(default=None, metadata={"help": "Local text file(s), one example/document a line."})
    validation_file: str | None = None
    text_column: str = "text"
    encoding_errors: str = field(default="strict", metadata={
        "help": "Bytes of --train_file that are not UTF-8: 'strict' (stop and say where), 'replace' or 'ignore'."})
    validation_split_percentage: float = 5.0
    data_mode: str = field(default="sentence", metadata={"help": "'sentence' (one line each) or 'packed'."})
    long_lines: str = field(default="truncate", metadata={"help": "Over-long sentences: 'truncate' or 'drop'."})
    max_train_samples: int | None = None
    max_eval_samples: int | None = 512
    preprocessing_num_workers: int | None = None
    cache_hidden_states: bool = field(default=False, metadata={"help": "Precompute frozen-LM states once (fp16)."})
    hidden_states_cache_dir: str | None = None
    hidden_states_cache_max_gb: float = field(default=20.0, metadata={
        "help": "Refuse --cache_hidden_states when the cache (held in RAM and on disk, fp16) would exceed this."})
    hidden_stats_examples: int = 2000
    streaming: bool = field(default=False, metadata={
        "help": "Read and tokenise the text lazily as training consumes it (datasets iterable datasets): nothing "
                "is materialised. Needs --max_steps; not with --cache_hidden_states."})
    streaming_validation_rows: int = field(default=1000, metadata={
        "help": "--streaming without a validation split: hold out this many first rows of the training text."})
    streaming_shuffle_buffer: int = field(default=10_000, metadata={
        "help": "--streaming: examples held in the shuffle buffer (shuffling a stream is approximate)."})


@dataclass
class LDLMTrainingArguments(TrainingArguments):
    gamma_warmup: bool = field(default=True, metadata={"help": "Diffusion-to-encoder warmup; false: gamma = 1."})
    gamma_warmup_steps: int | None = field(default=None, metadata={"help": "S_wu in steps (overrides the ratio)."})
    gamma_warmup_ratio: float = field(default=0.3, metadata={"help": "S_wu as a fraction of the run."})
    gamma_k: float = 10.0
    gamma_c: float = 0.8
    gamma_min: float = 1e-3
    gamma_start_accuracy: float | None = field(
        default=None, metadata={"help": "Start the gamma ramp once the training token accuracy EMA reaches this."})
    adaptive_timesteps: bool = field(default=True, metadata={"help": "CDCD time warping; false: t ~ U(0, 1)."})
    timestep_uniform_mix: float = 0.1
    timestep_ema_decay: float = 0.99
    token_loss_fraction: float = field(default=1.0, metadata={"help": "Share of positions scored by the token loss."})
    ema_decay: float = field(default=0.999, metadata={"help": "EMA of the weights saved for generation; 0: off."})
    max_eval_batches: int | None = 8
    collapse_threshold: float = field(default=0.1, metadata={"help": "Warn when the latent variance share is below."})
    nonfinite_loss: str = field(default="stop", metadata={
        "help": "A NaN/Inf loss or gradient: 'stop' raises naming the term and step; 'skip' skips that batch or "
                "optimiser step (it still stops after --max_nonfinite_skips skips in a row)."})
    max_nonfinite_skips: int = field(default=10, metadata={"help": "Consecutive skipped batches before stopping."})
    num_samples: int = field(default=4, metadata={"help": "Samples printed at the end (needs model.generate)."})
    sample_steps: int = 100


@dataclass
class DistillModelArguments:
    teacher: str = field(default=None, metadata={"help": "The LDLM checkpoint to distil (its EMA weights)."})
    student_init: str | None = field(default=None, metadata={
        "help": "Checkpoint the student starts from (default: the teacher); its latent shape must be the teacher's."})


@dataclass
class DistillationArguments(LDLMTrainingArguments):
    """Training arguments of train/distill.py. Only the denoiser trains; the joint-training recipe flags (gamma_*,
    adaptive_timesteps, token_loss_fraction) do not apply. max_steps is set from the stages."""

    start_steps: int = field(default=16, metadata={"help": "Teacher steps of the first stage (halved each stage)."})
    final_steps: int = field(default=1, metadata={"help": "Student steps after the last stage."})
    steps_per_stage: int = field(default=1000, metadata={"help": "Optimiser steps of each halving stage."})
    distill_t_max: float = field(default=1.0, metadata={"help": "First time of the trailing grids."})
    loss_weighting: str = field(default="snr_trunc", metadata={
        "help": "'snr_trunc' (max(SNR, 1), Salimans & Ho) or 'none' (plain x0 MSE)."})
    teacher_self_conditioning: bool = field(default=True, metadata={
        "help": "The original teacher's estimates are self-conditioned (two passes per call), as it was trained."})
    next_teacher: str = field(default="ema", metadata={
        "help": "Which student weights teach the next stage: 'ema' or 'live'."})
    probe_samples: int = field(default=32, metadata={
        "help": "Seeded samples of the quality probe: agreement with the teacher's own generate() samples."})
    save_stage_students: bool = field(default=True, metadata={
        "help": "Save each stage's student as <output_dir>/student-<N>-steps (the last is also output_dir)."})
