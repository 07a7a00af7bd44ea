"""train/run.py end to end on a tiny random frozen LM: the final folder is self-contained (what push_to_hub uploads),
loads with remote code in a fresh process and generates; bad arguments raise; the 2-process launch (slow)."""

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import tiny_lm_folder
from train.command_line import parse_distill_args, parse_run_args, with_cpu_bf16, yaml_to_argv
from train.run import main
from train.summary import warmup_report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ("max_sequence_length=16,num_latents=4,latent_dim=8,encoder_hidden_size=32,encoder_num_layers=1,"
        "encoder_num_heads=2,denoiser_hidden_size=32,denoiser_num_layers=1,denoiser_num_heads=2,"
        "latent_decoder_hidden_size=32,latent_decoder_num_layers=1,latent_decoder_num_heads=2,"
        "token_decoder_hidden_size=32,token_decoder_num_layers=1,token_decoder_num_heads=2")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("run")
    lm = tiny_lm_folder(base / "lm")
    lines = [" ".join(f"w{(i * 7 + j) % 90}" for j in range(i % 9 + 1)) for i in range(200)] + ["", "  "]
    (base / "train.txt").write_text("\n".join(lines))
    return base, lm


def argv(base, lm, out, *extra):
    return ["--frozen_lm", str(lm), "--preset", "none", "--config_overrides", TINY, "--train_file",
            str(base / "train.txt"), "--output_dir", str(out), "--max_steps", "4", "--per_device_train_batch_size",
            "8", "--use_cpu", "true", "--report_to", "none", "--disable_tqdm", "true", "--save_steps", "2",
            "--eval_strategy", "steps", "--eval_steps", "2", "--logging_steps", "1", "--num_samples", "2",
            "--sample_steps", "3", *extra]


def uploaded_files(folder):
    """The files Trainer.push_to_hub uploads: output_dir without `_*` and `checkpoint-*` (its ignore_patterns)."""
    keep = []
    for dirpath, _, files in os.walk(folder):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), folder)
            if not any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel.split(os.sep)[0], p)
                       for p in ("_*", "checkpoint-*")):
                keep.append(rel)
    return sorted(keep)


def test_run_end_to_end_and_push_folder(setup, tmp_path):
    base, lm = setup
    out = tmp_path / "out"
    summary = main(argv(base, lm, out, "--cache_hidden_states", "true", "--hidden_states_cache_dir",
                        str(tmp_path / "cache")))
    assert summary["metrics"]["eval_token_accuracy"] >= 0 and "eval_latent_variance_share" in summary["metrics"]
    # the default warmup: S_wu = 0.3 x 4 steps, rounded to 1, from step 0 (no --gamma_start_accuracy)
    assert {k: summary["metrics"][k] for k in ("gamma_start_step", "gamma_one_step", "gamma_one_fraction")} == {
        "gamma_start_step": 0, "gamma_one_step": 1, "gamma_one_fraction": 0.75}
    assert warmup_report(summary["metrics"]) == ("gamma warmup: started at step 0, reached 1 at step 1 (75% of the "
                                                 "run trained jointly).")
    assert "never started" in warmup_report({"gamma_start_step": None, "gamma_one_step": None})
    files = uploaded_files(out)
    for name in ("config.json", "model.safetensors", "modeling_ldlm.py", "configuration_ldlm.py",
                 "tokenizer_config.json", "README.md"):
        assert name in files, files
    assert os.path.isfile(out / "checkpoint-4" / "ema_weights.safetensors")
    card = open(out / "README.md").read()
    assert "{{" not in card and "eval_token_accuracy" in card and "prompts steer the sample through guidance" in card
    upload = tmp_path / "upload"  # exactly what would be pushed, loaded with remote code in a fresh process
    for rel in files:
        os.makedirs(upload / os.path.dirname(rel), exist_ok=True)
        shutil.copy(out / rel, upload / rel)
    code = (
        "import sys, torch; from transformers import AutoModel, AutoTokenizer\n"
        f"m = AutoModel.from_pretrained({str(upload)!r}, trust_remote_code=True)\n"
        f"t = AutoTokenizer.from_pretrained({str(upload)!r}, trust_remote_code=True)\n"
        "assert type(m).__module__.startswith('transformers_modules'), type(m).__module__\n"
        "assert not any(p.requires_grad for p in m.frozen_lm.parameters())\n"
        "ids = m.generate(num_return_sequences=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0))\n"
        "assert ids.shape[0] == 2 and ids.dtype == torch.long\n"
        "print('OK', type(m).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]


CONDITIONAL_USE = textwrap.dedent("""
    import json, sys
    sys.modules["modeling_ldlm"] = None  # the package must not be importable here
    import torch
    from transformers import AutoModel, pipeline
    folder = sys.argv[1]
    m = AutoModel.from_pretrained(folder, trust_remote_code=True)
    t = m.tokenizer
    enc = t(["w1 w2 w3", "w4"], return_tensors="pt", padding=True)
    out = m.generate(**enc, num_inference_steps=3, max_new_tokens=4, return_dict_in_generate=True)
    guided = m.generate(**enc, num_inference_steps=3, max_new_tokens=4, context_guidance_scale=2.0)
    pipe = pipeline("text-generation", model=folder, trust_remote_code=True)
    text = pipe("w1 w2 w3", max_new_tokens=4, num_inference_steps=3)[0]["generated_text"]
    sys.path.insert(0, folder)  # as an Inference Endpoint runs the folder's handler.py
    from handler import EndpointHandler
    answer = EndpointHandler(folder)({"inputs": "w1 w2", "parameters": {"num_inference_steps": 3}})
    print(json.dumps({"calls": out.num_network_calls, "keeps_prompt": bool(torch.equal(
        out.sequences[:, :enc.input_ids.shape[1]], enc.input_ids)), "guided": list(guided.shape), "text": text,
        "answer": answer[0]["generated_text"], "guidance": m.generation_config.guidance_scale}))
""")


def test_a_conditional_run_trains_and_its_folder_continues_prompts_in_a_fresh_process(setup, tmp_path):
    base, lm = setup
    out = tmp_path / "cond"
    summary = main(argv(base, lm, out, "--context_conditioning", "true", "--context_dropout", "0.2",
                        "--cache_hidden_states", "true", "--hidden_states_cache_dir", str(tmp_path / "cache")))
    assert summary["metrics"]["train_loss"] > 0 and len(summary["continuations"]) == 2  # the report continues prompts
    assert "its denoiser reads the prompt" in (out / "README.md").read_text()  # the card says how prompts work
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", CONDITIONAL_USE, str(out)], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    used = json.loads(res.stdout.strip().splitlines()[-1])
    assert used["calls"] == 3 and used["keeps_prompt"] and used["guidance"] == 0.0
    assert used["text"].startswith("w1 w2 w3") and used["answer"].startswith("w1 w2") and used["guided"][0] == 2
    with pytest.raises(ValueError, match="--context_conditioning cannot change when fine-tuning"):
        main(["--model_name_or_path", str(out), "--context_conditioning", "false",
              *argv(base, lm, tmp_path / "ft", "--num_samples", "0")[4:]])


def test_resume_and_fine_tune_paths(setup, tmp_path):
    base, lm = setup
    out = tmp_path / "out"
    main(argv(base, lm, out, "--num_samples", "0"))
    main(argv(base, lm, out, "--num_samples", "0", "--max_steps", "6", "--resume_from_checkpoint",
              str(out / "checkpoint-4")))
    tuned = main(["--model_name_or_path", str(out), "--decoder_noise_std", "0.0", *argv(base, lm, tmp_path / "ft",
                  "--num_samples", "0")[4:]])
    assert tuned["metrics"]["train_loss"] > 0
    with pytest.raises(ValueError, match="--denoiser_num_layers cannot change when fine-tuning"):
        main(["--model_name_or_path", str(out), *argv(base, lm, tmp_path / "ft2", "--config_overrides",
                                                      "denoiser_num_layers=2")[4:]])


def test_config_overrides_name_an_unknown_field_and_the_valid_ones():
    with pytest.raises(ValueError, match=r"'no_such_field', which LDLMConfig does not have; its fields are: "
                                         r"frozen_lm_layer, .*latent_dim, .*denoiser_num_layers, "):
        parse_run_args(["--frozen_lm", "unused", "--config_overrides", "no_such_field=3"])
    with pytest.raises(ValueError, match="key=value"):
        parse_run_args(["--frozen_lm", "unused", "--config_overrides", "dropout"])
    model_args, _, _ = parse_run_args(["--frozen_lm", "unused", "--num_latents", "8", "--config_overrides",
                                       "dropout=0.1, latent_locality=1.0,token_loss_stop_gradient=false"])
    assert model_args.config_fields() == {"num_latents": 8, "dropout": 0.1, "latent_locality": 1.0,
                                          "token_loss_stop_gradient": False}


@pytest.mark.parametrize("parse, flags, match", [
    ("run", ["--token_loss_fraction", "0"], "--token_loss_fraction must be in"),
    ("run", ["--gamma_start_accuracy", "2"], "--gamma_start_accuracy must be in"),
    ("run", ["--nonfinite_loss", "ignore"], "--nonfinite_loss must be"),
    ("run", ["--max_steps", "0"], "Zero training steps"),
    ("run", ["--streaming", "true", "--cache_hidden_states", "true", "--max_steps", "3"], "cannot be combined"),
    ("distill", ["--loss_weighting", "l1"], "--loss_weighting must be one of"),
    ("distill", ["--ema_decay", "0"], "--next_teacher ema needs the weight EMA"),
    ("distill", ["--distill_t_max", "0"], "--distill_t_max must be in"),
    ("distill", ["--steps_per_stage", "0"], "--steps_per_stage must be > 0"),
    ("distill", ["--gamma_warmup", "false"], "not used by the HfArgumentParser"),  # not a distillation flag
])
def test_argument_checks_run_when_the_command_line_is_parsed(parse, flags, match):
    """Every argument check sits in the dataclasses: the command line fails before any model or data is loaded."""
    model = ["--frozen_lm", "unused"] if parse == "run" else ["--teacher", "unused"]
    call = parse_run_args if parse == "run" else parse_distill_args
    with pytest.raises(ValueError, match=match):
        call([*model, "--output_dir", "/tmp/unused", *flags])


def test_a_run_needs_a_model_to_start_from():
    with pytest.raises(ValueError, match="Give --frozen_lm"):
        parse_run_args(["--output_dir", "/tmp/unused"])
    with pytest.raises(ValueError, match="Give --teacher"):
        parse_distill_args(["--output_dir", "/tmp/unused"])


def test_bad_arguments(setup, tmp_path):
    base, lm = setup
    with pytest.raises(ValueError, match="Zero training steps"):
        main(argv(base, lm, tmp_path / "a", "--max_steps", "0", "--num_train_epochs", "0"))
    with pytest.raises(ValueError, match="one batch needs"):
        main(argv(base, lm, tmp_path / "b", "--per_device_train_batch_size", "1000"))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty"):
        main(argv(base, lm, tmp_path / "c", "--train_file", str(tmp_path / "empty.txt")))
    with pytest.raises(ValueError, match="frozen_lm"):
        main(argv(base, lm, tmp_path / "d")[2:])


def test_streaming_run_trains_and_refuses_what_a_stream_cannot_do(setup, tmp_path):
    base, lm = setup
    summary = main(argv(base, lm, tmp_path / "s", "--streaming", "true", "--streaming_validation_rows", "30",
                        "--num_samples", "0"))
    assert summary["train_examples"] is None  # a stream's length is unknown
    assert summary["metrics"]["train_loss"] > 0 and summary["metrics"]["eval_token_accuracy"] >= 0
    with pytest.raises(ValueError, match="--streaming needs --max_steps"):
        main(argv(base, lm, tmp_path / "e", "--streaming", "true", "--max_steps", "-1", "--num_train_epochs", "1"))
    with pytest.raises(ValueError, match="cannot be combined with --streaming"):
        main(argv(base, lm, tmp_path / "f", "--streaming", "true", "--cache_hidden_states", "true"))


def test_an_fsdp_launch_that_accelerate_would_not_shard_is_refused(setup, tmp_path, monkeypatch):
    """accelerate enables FSDP only on accelerators: on the CPU the FSDP config would silently train unsharded."""
    base, lm = setup
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # what `accelerate launch --config_file fsdp.yaml` sets
    with pytest.raises(ValueError, match="accelerate enables FSDP only on GPUs"):
        main(argv(base, lm, tmp_path / "fsdp", "--num_samples", "0", "--ema_decay", "0"))


def test_yaml_presets_parse_and_override(tmp_path):
    for name in os.listdir(os.path.join(ROOT, "train", "configs")):
        # the paper presets ask for bf16 (GPUs); this CPU test switches it off
        path = os.path.join(ROOT, "train", "configs", name)
        if name.startswith("distill"):  # train/distill.py's presets; max_steps comes from the stages
            model_args, data_args, training_args = parse_distill_args([path])
            assert model_args.teacher and training_args.steps_per_stage > 0 and data_args.train_file
            continue
        model_args, data_args, training_args = parse_run_args([path, "--bf16", "false"])
        assert training_args.max_steps > 0 and (data_args.train_file or data_args.dataset_name)
    path = os.path.join(ROOT, "train", "configs", "quickstart.yaml")
    model_args, data_args, training_args = parse_run_args([path, "--decoder_noise_std", "3.0", "--max_steps", "7"])
    assert model_args.decoder_noise_std == 3.0 and training_args.max_steps == 7
    assert "--max_steps" in yaml_to_argv(path)
    # `base:` starts from another preset's values, which the file's own then override
    conditional = os.path.join(ROOT, "train", "configs", "quickstart-conditional.yaml")
    model_args, data_args, training_args = parse_run_args([conditional])
    assert model_args.context_conditioning and model_args.num_latents == 32 and training_args.max_steps == 600
    assert training_args.output_dir.endswith("runs/quickstart-conditional")
    (tmp_path / "child.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ValueError, match="missing.yaml"):
        yaml_to_argv(str(tmp_path / "child.yaml"))


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_gloo_launch(setup, tmp_path):
    # `accelerate launch --cpu --num_processes 2` starts ONE process (accelerate 1.15): use --multi_gpu + USE_CPU.
    base, lm = setup
    env = dict(os.environ, ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--main_process_port", str(free_port()),
           "--mixed_precision", "no", "--dynamo_backend", "no",
           os.path.join(ROOT, "train", "run.py"), *argv(base, lm, out, "--per_device_train_batch_size", "4",
                                                          "--cache_hidden_states", "true", "--num_samples", "0")]
    cmd[cmd.index("--use_cpu") + 1] = "true"
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    state = json.load(open(out / "checkpoint-4" / "trainer_state.json"))
    assert state["global_step"] == 4
    log = res.stdout + res.stderr
    assert "WORLD_SIZE=2 rank=0" in log and "WORLD_SIZE=2 rank=1" in log


@pytest.mark.slow
def test_quickstart_preset(tmp_path):
    """The README's quickstart (about 10 minutes on 2 free cores): trains, saves, loads fresh, generates."""
    out = tmp_path / "qs"
    res = subprocess.run([sys.executable, "train/run.py", "train/configs/quickstart.yaml", "--output_dir", str(out),
                          "--disable_tqdm", "true"], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stderr[-4000:]
    code = (f"import torch; from transformers import AutoModel; m = AutoModel.from_pretrained({str(out)!r}, "
            "trust_remote_code=True); ids = m.generate(num_return_sequences=2, num_inference_steps=10, "
            "generator=torch.Generator().manual_seed(0)); print('OK', tuple(ids.shape))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0 and "OK" in res.stdout, res.stderr[-3000:]


def test_a_hidden_state_cache_over_budget_is_refused_with_its_size(setup, tmp_path):
    from train.data import check_hidden_cache_budget

    with pytest.raises(ValueError, match="13,841.2 GB"):  # OpenWebText packed at L = 1024 around GPT-2 small
        check_hidden_cache_budget(8_800_000, 1024, 768, max_gb=20)
    assert check_hidden_cache_budget(1000, 32, 384, max_gb=20) == pytest.approx(0.024576)
    base, lm = setup
    with pytest.raises(ValueError, match="hidden_states_cache_max_gb"):
        main(argv(base, lm, tmp_path / "out", "--cache_hidden_states", "true", "--hidden_states_cache_max_gb", "1e-6"))


def test_bf16_on_a_cpu_only_machine_adds_use_cpu():
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert with_cpu_bf16(["--bf16", "true"])[-2:] == ["--use_cpu", "true"]
    assert with_cpu_bf16(["--bf16", "--max_steps", "3"])[-2:] == ["--use_cpu", "true"]
    assert with_cpu_bf16(["--bf16", "true", "--use_cpu", "false"]) == ["--bf16", "true", "--use_cpu", "false"]
    assert with_cpu_bf16(["--bf16", "false"]) == ["--bf16", "false"]
    model_args, data_args, training_args = parse_run_args(["--frozen_lm", "unused", "--bf16", "true", "--output_dir",
                                                           "/tmp/unused"])
    assert training_args.bf16 and training_args.use_cpu
