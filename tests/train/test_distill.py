"""Progressive distillation: the objective's known answers, the stage schedule, train/distill.py end to end on a tiny
random teacher (the loss falls, resume is exact, the student is a normal remote-code checkpoint), bad input."""

import json
import logging
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from modeling_ldlm import LDLMForDiffusionGeneration
from modeling_ldlm.noise_schedules import alpha_sigma
from modeling_ldlm.solvers import ddim_step, trailing_timesteps
from tests.conftest import tiny_lm_folder, tiny_sizes
from tests.modeling_ldlm.test_remote_code import run_fresh
from train.distill import main
from train.progressive import progressive_target, stage_steps, student_transitions, two_teacher_steps

pytestmark = pytest.mark.usefixtures("one_thread")


def schedule(t):
    return alpha_sigma(t, "tan", 3.0)


def test_a_constant_teacher_gives_itself_as_target():
    """DDIM is exact when the x0 estimate does not change along the way: the two-step target is that constant."""
    constant = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(0))
    z = torch.randn(3, 4, 8, generator=torch.Generator().manual_seed(1))
    t, s = torch.tensor([1.0, 0.6, 0.25]), torch.tensor([0.5, 0.3, 0.0])
    target = progressive_target(lambda z_t, tt: constant, z, t, s, schedule)
    torch.testing.assert_close(target, constant, atol=1e-5, rtol=1e-5)


def test_target_step_lands_where_two_teacher_steps_land():
    """With the teacher as its own student (before any training), one student DDIM step with the target x0 equals the
    teacher's two DDIM steps, on the trailing grids the stages use."""
    torch.manual_seed(0)
    teacher = LDLMForDiffusionGeneration(tiny_config()).eval()
    denoise = lambda z_t, tt: teacher.denoise(z_t, tt)  # noqa: E731
    z = torch.randn(4, 4, 8)
    t, s = student_transitions(4, torch.tensor([0, 1, 2, 3]))
    assert t.tolist() == trailing_timesteps(4).tolist() and s.tolist() == [0.75, 0.5, 0.25, 0.0]
    target = progressive_target(denoise, z, t, s, teacher.alpha_sigma)
    (at, st), (as_, ss) = teacher.alpha_sigma(t), teacher.alpha_sigma(s)
    with torch.no_grad():
        two = two_teacher_steps(denoise, z, t, s, teacher.alpha_sigma)
    torch.testing.assert_close(ddim_step(z, target, at, st, as_, ss), two, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(target[3], two[3])  # the last transition ends at t = 0: the target is z_0 itself


def tiny_config():
    from tests.conftest import tiny_config as make

    return make()


@pytest.mark.parametrize("start, final, expected", [(16, 1, [8, 4, 2, 1]), (8, 4, [4]), (32, 2, [16, 8, 4, 2])])
def test_stage_steps(start, final, expected):
    assert stage_steps(start, final) == expected


@pytest.mark.parametrize("start, final, match", [(0, 1, "start_steps"), (8, -1, "final_steps"), (12, 1, "power"),
                                                 (4, 4, "power"), (2, 4, "power")])
def test_bad_step_targets(start, final, match):
    with pytest.raises(ValueError, match=match):
        stage_steps(start, final)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    base = tmp_path_factory.mktemp("distill")
    lm = tiny_lm_folder(base / "lm")
    torch.manual_seed(0)
    model = LDLMForDiffusionGeneration.from_frozen_lm(str(lm), **tiny_sizes())
    model.generation_config.num_inference_steps = 4
    model.save_pretrained(base / "teacher")
    torch.manual_seed(1)  # a student that starts away from the teacher, so that its loss has somewhere to fall
    LDLMForDiffusionGeneration.from_frozen_lm(str(lm), **tiny_sizes()).save_pretrained(base / "student0")
    lines = [" ".join(f"w{(i * 7 + j) % 90}" for j in range(i % 9 + 1)) for i in range(200)]
    (base / "train.txt").write_text("\n".join(lines))
    return base


def argv(base, out, *extra):
    return ["--teacher", str(base / "teacher"), "--train_file", str(base / "train.txt"), "--output_dir", str(out),
            "--start_steps", "4", "--final_steps", "1", "--steps_per_stage", "6", "--per_device_train_batch_size", "8",
            "--use_cpu", "true", "--report_to", "none", "--disable_tqdm", "true", "--logging_steps", "1",
            "--eval_strategy", "steps", "--eval_steps", "6", "--max_eval_samples", "16", "--probe_samples", "4",
            "--num_samples", "2", "--learning_rate", "3e-3", "--ema_decay", "0.5", "--save_steps", "4", *extra]


def test_distill_end_to_end(teacher, tmp_path):
    out = tmp_path / "out"
    summary = main(argv(teacher, out, "--student_init", str(teacher / "student0")))
    assert summary["stages"] == [2, 1]
    losses = [h["loss_distill"] for h in json.loads((out / "checkpoint-12" / "trainer_state.json").read_text())
              ["log_history"] if "loss_distill" in h and h["student_steps"] == 2]
    assert losses[-1] < losses[0], losses  # the distillation loss falls within a stage
    assert (out / "student-2-steps" / "model.safetensors").exists() and (out / "README.md").exists()
    card = (out / "README.md").read_text()
    assert "distilled" in card and str(teacher / "teacher") in card and "1 denoiser" in card
    config = json.loads((out / "generation_config.json").read_text())
    assert config["num_inference_steps"] == config["distilled_steps"] == 1 and config["time_spacing"] == "trailing"
    # the student's parts other than the denoiser are the teacher's, bit for bit
    student, original = load_file(out / "model.safetensors"), load_file(teacher / "teacher" / "model.safetensors")
    assert all(torch.equal(student[k], v) for k, v in original.items() if not k.startswith("denoiser."))
    assert any(not torch.equal(student[k], v) for k, v in original.items() if k.startswith("denoiser."))
    assert "eval_probe_token_agreement" in summary["metrics"]


FRESH = textwrap.dedent("""
    import json, sys
    sys.modules["modeling_ldlm"] = None  # the package must not be importable here
    import torch
    from transformers import AutoModel, AutoTokenizer, pipeline
    folder = sys.argv[1]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    out = model.generate(num_return_sequences=2, return_dict_in_generate=True)
    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    prompted = model.generate(**tok(["w1 w2"], return_tensors="pt"), max_new_tokens=3)
    filled = model.generate(fixed_tokens=torch.tensor([[2, 6, 0, 8]]), fixed_mask=torch.tensor([[1, 1, 0, 1]]))
    text = pipeline("text-generation", model=folder, trust_remote_code=True)("w1 w2", max_new_tokens=3)
    from handler import EndpointHandler
    answer = EndpointHandler(folder)({"inputs": "w1", "parameters": {"max_new_tokens": 2, "seed": 0}})
    print(json.dumps({"calls": out.num_network_calls, "prompted": prompted.shape[1], "filled": filled.tolist(),
                      "text": text[0]["generated_text"], "handler": answer}))
""")


def test_distilled_student_is_a_normal_checkpoint(teacher, tmp_path, caplog):
    out = tmp_path / "out"
    main(argv(teacher, out, "--steps_per_stage", "2", "--eval_strategy", "no"))
    env_code = FRESH.replace("from handler import", f"sys.path.insert(0, {str(out)!r}); from handler import")
    result = json.loads(run_fresh(env_code, str(out), tmp_path=tmp_path))
    assert result["calls"] == 1  # its defaults: the distilled step count
    assert result["prompted"] >= 5 and result["filled"][0][:2] == [2, 6] and result["filled"][0][3] == 8
    assert result["text"].startswith("w1 w2") and "error" not in result["handler"][0]
    student = LDLMForDiffusionGeneration.from_pretrained(out)
    with caplog.at_level(logging.WARNING):
        student.generate(num_inference_steps=3)
    assert "distilled for num_inference_steps=1" in caplog.text


def test_resume_is_exact(teacher, tmp_path):
    full = tmp_path / "full"
    main(argv(teacher, full, "--eval_strategy", "no"))
    part = tmp_path / "part"
    main(argv(teacher, part, "--eval_strategy", "no", "--max_steps", "12"))  # the same run, to resume from step 8
    resumed = main(argv(teacher, part, "--eval_strategy", "no", "--resume_from_checkpoint", str(part / "checkpoint-8")))
    assert resumed["stages"] == [2, 1]
    a, b = load_file(full / "model.safetensors"), load_file(part / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("make, match", [
    (lambda base, tmp: ["--teacher", str(tmp)], "no config.json"),
    (lambda base, tmp: ["--teacher", str(base / "lm")], "not an LDLM"),
    (lambda base, tmp: ["--start_steps", "6"], "power of two"),
    (lambda base, tmp: ["--final_steps", "0"], "final_steps"),
    (lambda base, tmp: ["--max_steps", "5"], "set by the stages"),
])
def test_bad_distillation_input(teacher, tmp_path, make, match):
    with pytest.raises(ValueError, match=match):
        main(argv(teacher, tmp_path / "out") + make(teacher, tmp_path))


def test_a_teacher_given_as_a_hub_id_is_downloaded(teacher, monkeypatch):
    import train.models

    asked = []
    folder = str(teacher / "teacher")  # stands in for the Hub's download
    monkeypatch.setattr(train.models, "snapshot_download", lambda name: asked.append(name) or folder)
    model = train.models.load_ldlm("you/ldlm", "teacher")
    assert asked == ["you/ldlm"] and model.name_or_path == folder
    assert train.models.load_ldlm(folder, "teacher") is not None and asked == ["you/ldlm"]  # a folder: no download


def test_a_teacher_that_is_neither_a_folder_nor_on_the_hub_is_named(monkeypatch, tmp_path):
    from huggingface_hub.errors import LocalEntryNotFoundError

    import train.models

    def offline(name):
        raise LocalEntryNotFoundError("cannot reach the Hub")

    monkeypatch.setattr(train.models, "snapshot_download", offline)
    with pytest.raises(ValueError, match="not a local folder, and downloading it from the Hub failed"):
        train.models.load_ldlm("runs/no-such-teacher", "teacher")
    with pytest.raises(ValueError, match="neither a local folder nor a Hub model id"):
        train.models.load_ldlm(str(tmp_path / "no" / "such" / "teacher"), "teacher")


def test_the_distillation_trainer_shares_the_base_not_the_joint_recipe():
    from train.arguments import DistillationArguments, LDLMTrainingArguments, TrainerArguments
    from train.base_trainer import TrainerBase
    from train.distill_trainer import DistillationTrainer
    from train.trainer import LDLMTrainer

    assert issubclass(DistillationTrainer, TrainerBase) and not issubclass(DistillationTrainer, LDLMTrainer)
    assert issubclass(DistillationArguments, TrainerArguments)
    assert not issubclass(DistillationArguments, LDLMTrainingArguments)
    recipe = {"gamma_warmup", "gamma_k", "adaptive_timesteps", "token_loss_fraction", "timestep_uniform_mix"}
    assert not recipe & set(DistillationArguments.__dataclass_fields__)


def test_student_of_another_latent_shape_is_refused(teacher, tmp_path):
    lm = tiny_lm_folder(tmp_path / "lm")
    other = LDLMForDiffusionGeneration.from_frozen_lm(str(lm), **{**tiny_sizes(), "num_latents": 3})
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="num_latents"):
        main(argv(teacher, tmp_path / "out", "--student_init", str(tmp_path / "other")))


def test_a_conditional_teacher_is_refused(teacher, tmp_path):
    lm = tiny_lm_folder(tmp_path / "lm")
    conditional = LDLMForDiffusionGeneration.from_frozen_lm(str(lm), **tiny_sizes(), context_conditioning=True)
    conditional.save_pretrained(tmp_path / "conditional")
    args = argv(teacher, tmp_path / "out")
    args[args.index("--teacher") + 1] = str(tmp_path / "conditional")
    with pytest.raises(ValueError, match="conditional LDLM"):
        main(args)
