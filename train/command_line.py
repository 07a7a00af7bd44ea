"""The command lines of `train/run.py` and `train/distill.py`: `[CONFIG.yaml] [--flags]` -> argument dataclasses.

A YAML preset is a mapping of flag names to values; flags given after it override them. A GPU preset (`--bf16 true`)
on a machine without an accelerator gets `--use_cpu true`, which the Trainer needs to train in bf16 on the CPU.
"""

from __future__ import annotations

import os

import torch
import yaml
from transformers import HfArgumentParser
from transformers.utils import logging

from .arguments import (
    DataArguments,
    DistillationArguments,
    DistillModelArguments,
    LDLMTrainingArguments,
    ModelArguments,
)

logger = logging.get_logger(__name__)

RUN_ARGUMENTS = (ModelArguments, DataArguments, LDLMTrainingArguments)
DISTILL_ARGUMENTS = (DistillModelArguments, DataArguments, DistillationArguments)


def parse_run_args(argv: list[str]) -> tuple[ModelArguments, DataArguments, LDLMTrainingArguments]:
    """The arguments of train/run.py."""
    return _parse(argv, RUN_ARGUMENTS)


def parse_distill_args(argv: list[str]) -> tuple[DistillModelArguments, DataArguments, DistillationArguments]:
    """The arguments of train/distill.py."""
    return _parse(argv, DISTILL_ARGUMENTS)


def _parse(argv: list[str], dataclasses: tuple[type, type, type]) -> tuple:
    if argv and argv[0].endswith((".yaml", ".yml")):
        argv = yaml_to_argv(argv[0]) + argv[1:]
    model_args, data_args, training_args = HfArgumentParser(dataclasses).parse_args_into_dataclasses(
        args=with_cpu_bf16(argv))
    data_args.check_steps(training_args)
    return model_args, data_args, training_args


def yaml_to_argv(path: str) -> list[str]:
    """A YAML mapping of argument names to values, as command-line flags (later flags override them). `base: FILE`
    (a path relative to this file) starts from another config's flags, which this file's values then override."""
    if not os.path.isfile(path):
        raise ValueError(f"Config file {path!r} does not exist.")
    with open(path) as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of argument names to values.")
    argv: list[str] = []
    base = values.pop("base", None)
    if base is not None:
        argv = yaml_to_argv(os.path.join(os.path.dirname(path), str(base)))
    for key, value in values.items():
        if value is None:
            continue
        argv.append(f"--{key}")
        if isinstance(value, list):
            argv.extend(str(v) for v in value)
        else:
            argv.append(str(value).lower() if isinstance(value, bool) else str(value))
    return argv


def with_cpu_bf16(argv: list[str]) -> list[str]:
    """A GPU preset (--bf16 true) on a machine without an accelerator: add --use_cpu true, which the Trainer needs to
    train in bf16 on the CPU ("Your setup doesn't support bf16/gpu" otherwise), and say so."""
    accelerated = torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
    if _last_value(argv, "--bf16") == "true" and _last_value(argv, "--use_cpu") is None and not accelerated:
        logger.warning("--bf16 on a machine without a GPU: training in bf16 on the CPU (--use_cpu true added).")
        return [*argv, "--use_cpu", "true"]
    return argv


def _last_value(argv: list[str], flag: str) -> str | None:
    """The flag's last value in argv (lower case); a bare boolean flag means true; None when absent."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag:
            bare = i + 1 == len(argv) or argv[i + 1].startswith("--")
            value = "true" if bare else argv[i + 1].lower()
    return value


__all__ = ["DISTILL_ARGUMENTS", "RUN_ARGUMENTS", "parse_distill_args", "parse_run_args", "with_cpu_bf16",
           "yaml_to_argv"]
