"""Command-line arguments of `train/run.py` and `train/distill.py`: dataclasses for `HfArgumentParser`, each checking
its own values in `__post_init__` (a ValueError naming the flag and what to do).

`TrainerArguments` holds what both trainers use (weight EMA, the non-finite guard, evaluation batches, samples);
`LDLMTrainingArguments` adds the joint-training recipe and `DistillationArguments` the distillation stages.
Every part of the four-part recipe is switchable, so the paper's ablations can be rerun: `--decoder_loss ce`,
`--gamma_warmup false`, `--adaptive_timesteps false`, `--decoder_noise_std 0`, `--self_conditioning_prob 0`,
`--ema_decay 0`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments

from .config_fields import parse_config_overrides
from .progressive import LOSS_WEIGHTINGS, stage_steps

NONFINITE_POLICIES = ("stop", "skip")
NEXT_TEACHERS = ("ema", "live")
MODEL_FLAGS = ("frozen_lm_layer", "max_sequence_length", "num_latents", "latent_dim", "decoder_noise_std",
               "decoder_loss", "token_loss_stop_gradient", "self_conditioning_prob", "noise_schedule_d",
               "context_conditioning", "context_dropout")


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
    context_conditioning: bool | None = field(default=None, metadata={
        "help": "Train a conditional model: the denoiser reads a random prefix of each sequence (a new model only)."})
    context_dropout: float | None = field(default=None, metadata={
        "help": "Share of rows trained without their prefix (unconditional samples, classifier-free guidance)."})
    config_overrides: str | None = field(
        default=None, metadata={"help": "More LDLMConfig fields for a new model: 'denoiser_num_layers=6,dropout=0.1'."})

    def __post_init__(self) -> None:
        if self.frozen_lm is None and self.model_name_or_path is None:
            raise ValueError("Give --frozen_lm (start a new model) or --model_name_or_path (fine-tune an LDLM).")
        self.config_fields()  # a malformed --config_overrides or an unknown field raises here

    def config_fields(self) -> dict[str, Any]:
        """The LDLMConfig fields these flags set: the named ones that were given, then --config_overrides."""
        fields = {name: getattr(self, name) for name in MODEL_FLAGS if getattr(self, name) is not None}
        return {**fields, **parse_config_overrides(self.config_overrides)}


@dataclass
class DistillModelArguments:
    teacher: str = field(default=None, metadata={
        "help": "The LDLM checkpoint to distil (its EMA weights): a local folder or a Hub model id."})
    student_init: str | None = field(default=None, metadata={
        "help": "Checkpoint the student starts from (default: the teacher); its latent shape must be the teacher's."})

    def __post_init__(self) -> None:
        if self.teacher is None:
            raise ValueError("Give --teacher: the LDLM checkpoint to distil.")


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

    def __post_init__(self) -> None:
        if self.streaming and self.cache_hidden_states:
            raise ValueError("--cache_hidden_states needs the whole corpus tokenised up front; it cannot be combined "
                             "with --streaming.")

    def check_steps(self, training_args: TrainingArguments) -> None:
        """The one rule that needs the training arguments too: a stream needs a step count."""
        if self.streaming and training_args.max_steps <= 0:
            raise ValueError("--streaming needs --max_steps > 0: a stream's length, and so an epoch, is unknown.")


@dataclass
class TrainerArguments(TrainingArguments):
    """What both trainers use: the weight EMA, the non-finite guard, evaluation batches and end-of-run samples."""

    ema_decay: float = field(default=0.999, metadata={"help": "EMA of the weights saved for generation; 0: off."})
    max_eval_batches: int | None = 8
    nonfinite_loss: str = field(default="stop", metadata={
        "help": "A NaN/Inf loss or gradient: 'stop' raises naming the term and step; 'skip' skips that batch or "
                "optimiser step (it still stops after --max_nonfinite_skips skips in a row)."})
    max_nonfinite_skips: int = field(default=10, metadata={"help": "Consecutive skipped batches before stopping."})
    num_samples: int = field(default=4, metadata={"help": "Samples printed at the end (needs model.generate)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nonfinite_loss not in NONFINITE_POLICIES:
            raise ValueError(f"--nonfinite_loss must be 'stop' or 'skip', got {self.nonfinite_loss!r}.")
        if self.max_nonfinite_skips < 1:
            raise ValueError(f"--max_nonfinite_skips must be >= 1, got {self.max_nonfinite_skips}.")


@dataclass
class LDLMTrainingArguments(TrainerArguments):
    """Training arguments of train/run.py: the joint objective's recipe on top of `TrainerArguments`."""

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
    collapse_threshold: float = field(default=0.1, metadata={"help": "Warn when the latent variance share is below."})
    sample_steps: int = 100
    latent_space: str = field(default="joint", metadata={
        "help": "'joint' (the paper: the encoder also learns from the diffusion loss, through the gamma warmup) or "
                "'fixed' (the two-stage alternative the paper argues against: gamma = 0, and after "
                "--fixed_autoencoder_ratio of the steps the encoder and decoders are frozen while the denoiser "
                "trains on; the same network calls per step, so the same budget)."})
    fixed_autoencoder_ratio: float = field(default=0.5, metadata={
        "help": "--latent_space fixed: the share of the optimiser steps that trains the autoencoder."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_steps == 0 or (self.max_steps < 0 and self.num_train_epochs <= 0):
            raise ValueError("Zero training steps: set --max_steps > 0 or --num_train_epochs > 0.")
        if not 0.0 < self.token_loss_fraction <= 1.0:
            raise ValueError(f"--token_loss_fraction must be in (0, 1], got {self.token_loss_fraction}.")
        if self.gamma_warmup_ratio < 0 or (self.gamma_warmup_steps is not None and self.gamma_warmup_steps < 0):
            raise ValueError("--gamma_warmup_ratio and --gamma_warmup_steps must be >= 0.")
        if self.gamma_start_accuracy is not None and not 0.0 <= self.gamma_start_accuracy <= 1.0:
            raise ValueError(f"--gamma_start_accuracy must be in [0, 1], got {self.gamma_start_accuracy}.")
        if self.latent_space not in ("joint", "fixed"):
            raise ValueError(f"--latent_space must be 'joint' or 'fixed', got {self.latent_space!r}.")
        if not 0.0 < self.fixed_autoencoder_ratio < 1.0:
            raise ValueError(f"--fixed_autoencoder_ratio must be in (0, 1), got {self.fixed_autoencoder_ratio}.")


@dataclass
class DistillationArguments(TrainerArguments):
    """Training arguments of train/distill.py. Only the denoiser trains; max_steps is set from the stages."""

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

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_distillation_values()
        stages = len(self.stages)
        if self.max_steps > 0 and self.max_steps != stages * self.steps_per_stage:
            raise ValueError(f"--max_steps is set by the stages ({stages} x --steps_per_stage = "
                             f"{stages * self.steps_per_stage}); leave it unset.")
        self.max_steps = stages * self.steps_per_stage
        self.remove_unused_columns = False  # the Trainer's model is the denoiser; the text columns feed the encoder

    def _check_distillation_values(self) -> None:
        if self.steps_per_stage <= 0:
            raise ValueError(f"--steps_per_stage must be > 0, got {self.steps_per_stage}.")
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"--loss_weighting must be one of {LOSS_WEIGHTINGS}, got {self.loss_weighting!r}.")
        if self.next_teacher not in NEXT_TEACHERS:
            raise ValueError(f"--next_teacher must be 'ema' or 'live', got {self.next_teacher!r}.")
        if self.next_teacher == "ema" and self.ema_decay <= 0:
            raise ValueError("--next_teacher ema needs the weight EMA: pass --ema_decay > 0 or --next_teacher live.")
        if not 0.0 < self.distill_t_max <= 1.0:
            raise ValueError(f"--distill_t_max must be in (0, 1], got {self.distill_t_max}.")

    @property
    def stages(self) -> list[int]:
        """The student's step count in each stage (checks --start_steps and --final_steps)."""
        return stage_steps(self.start_steps, self.final_steps)
