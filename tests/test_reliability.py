"""Reliability (RELIABILITY.md): a SIGKILL in the middle of a checkpoint write, NaN/Inf losses, mixed
precision, corrupted or mismatched checkpoint files, junk training data, untrusted code paths, and `generate`
under threads and in a long loop."""

import ast
import gc
import os
import signal
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from modeling_ldlm import LDLMForDiffusionGeneration
from tests.conftest import VOCAB, tiny_lm_folder, tiny_model, tiny_sizes, token_batch
from tests.train.test_train_run import argv
from tests.train.test_train_trainer import make_trainer
from train.data import load_text
from train.run import main
from train.trainer import STAGING_DIR, LDLMTrainer

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("reliability")
    lm = tiny_lm_folder(base / "lm")
    lines = [" ".join(f"w{(i * 7 + j) % 90}" for j in range(i % 9 + 1)) for i in range(200)]
    (base / "train.txt").write_text("\n".join(lines))
    return base, lm


# ---- faults in training -------------------------------------------------------------------------------------------
KILL_DURING_SAVE = """
import os, signal, sys
sys.path.insert(0, {root!r})
from transformers import Trainer
from train.run import main
save = Trainer._save_optimizer_and_scheduler
def save_then_die(self, output_dir):
    if self.state.global_step == 4:  # checkpoint-4: the weights are on disk, the optimizer state is not
        os.kill(os.getpid(), signal.SIGKILL)
    return save(self, output_dir)
Trainer._save_optimizer_and_scheduler = save_then_die
main(sys.argv[1:])
"""


def test_sigkill_during_a_checkpoint_write_keeps_the_previous_one_and_resume_continues(corpus, tmp_path, monkeypatch):
    base, lm = corpus
    out = tmp_path / "out"
    args = argv(base, lm, out, "--max_steps", "6", "--save_steps", "2", "--eval_strategy", "no", "--num_samples", "0")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE.format(root=str(ROOT)), *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == -signal.SIGKILL, res.stderr[-3000:]
    half = out / STAGING_DIR / "checkpoint-4"
    assert (half / "model.safetensors").is_file() and not (half / "optimizer.pt").exists()  # killed mid-write
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    assert LDLMForDiffusionGeneration.from_pretrained(out / "checkpoint-2") is not None

    steps_run = []
    compute_loss = LDLMTrainer.compute_loss

    def counting(self, model, inputs, *a, **kw):
        if model.training:
            steps_run.append(self.state.global_step)
        return compute_loss(self, model, inputs, *a, **kw)

    monkeypatch.setattr(LDLMTrainer, "compute_loss", counting)
    summary = main([*args, "--resume_from_checkpoint", "true"])
    assert steps_run == [2, 3, 4, 5]  # continued after step 2, did not start again
    assert summary["metrics"]["train_loss"] > 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert not (out / STAGING_DIR).exists()


# ---- numerics -----------------------------------------------------------------------------------------------------
class _PoisonDenoiser(TrainerCallback):
    """Make the denoiser output NaN during the given (1-based) optimiser steps."""

    def __init__(self, model, steps):
        self.steps, self.on = set(steps), False
        model.denoiser.register_forward_hook(lambda m, i, out: out * float("nan") if self.on else None)

    def on_step_begin(self, args, state, control, **kwargs):
        self.on = state.global_step + 1 in self.steps


class _PoisonGradient(TrainerCallback):
    """Make one parameter's gradient NaN (from a finite loss) during the given (1-based) optimiser steps."""

    def __init__(self, model, steps):
        self.steps, self.on = set(steps), False
        param = next(p for p in model.denoiser.parameters() if p.requires_grad)
        param.register_hook(lambda g: g * float("nan") if self.on else g)

    def on_step_begin(self, args, state, control, **kwargs):
        self.on = state.global_step + 1 in self.steps


class _WeightsPerStep(TrainerCallback):
    """The trainable weights after each optimiser step, keyed by that step (1-based); 0: before training."""

    def __init__(self, model):
        self.model, self.after = model, {}

    def snapshot(self):
        return [p.detach().clone() for p in self.model.parameters() if p.requires_grad]

    def on_train_begin(self, args, state, control, **kwargs):
        self.after[0] = self.snapshot()

    def on_step_end(self, args, state, control, **kwargs):
        self.after[state.global_step] = self.snapshot()

    def unchanged(self, step):
        return all(torch.equal(a, b) for a, b in zip(self.after[step - 1], self.after[step]))


def test_nonfinite_loss_stops_naming_the_term_and_step(tmp_path):
    model = tiny_model()
    trainer = make_trainer(tmp_path, model=model)
    trainer.add_callback(_PoisonDenoiser(model, [3]))
    with pytest.raises(FloatingPointError, match=r"non-finite loss_diffusion at optimiser step 3 .*--nonfinite_loss"):
        trainer.train()


def test_nonfinite_loss_skip_drops_the_batch_and_stops_after_a_streak(tmp_path):
    model = tiny_model()
    trainer = make_trainer(tmp_path / "a", model=model, nonfinite_loss="skip")
    trainer.add_callback(_PoisonDenoiser(model, [3, 5]))
    weights = _WeightsPerStep(model)
    trainer.add_callback(weights)
    trainer.train()
    assert trainer.state.global_step == 6 and trainer.skipped_nonfinite_batches == 2
    assert trainer.skipped_optimizer_steps == 2
    # AdamW's momentum and weight decay would move the weights on a zero gradient: the skipped steps do not
    assert [s for s in range(1, 7) if weights.unchanged(s)] == [3, 5]
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    assert all(bool(torch.isfinite(b).all()) for b in model.timestep_sampler.buffers())  # NaN never reached it
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert logged and all(v == v for v in logged)

    model = tiny_model()
    trainer = make_trainer(tmp_path / "b", model=model, nonfinite_loss="skip", max_nonfinite_skips=2)
    trainer.add_callback(_PoisonDenoiser(model, range(1, 7)))
    with pytest.raises(FloatingPointError, match="after 3 skipped batches in a row"):
        trainer.train()
    with pytest.raises(ValueError, match="nonfinite_loss"):
        make_trainer(tmp_path / "c", nonfinite_loss="ignore")


def test_nonfinite_gradient_from_a_finite_loss_stops_or_skips_the_step(tmp_path):
    model = tiny_model()
    trainer = make_trainer(tmp_path / "a", model=model)
    trainer.add_callback(_PoisonGradient(model, [2]))
    with pytest.raises(FloatingPointError, match="non-finite gradient at optimiser step 2 from a finite loss"):
        trainer.train()

    model = tiny_model()
    trainer = make_trainer(tmp_path / "b", model=model, nonfinite_loss="skip", max_grad_norm=1.0)
    trainer.add_callback(_PoisonGradient(model, [2, 4]))
    weights = _WeightsPerStep(model)
    trainer.add_callback(weights)
    trainer.train()
    assert trainer.state.global_step == 6 and trainer.skipped_optimizer_steps == 2
    assert [s for s in range(1, 7) if weights.unchanged(s)] == [2, 4]
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())  # clipping a NaN norm would spread it

    model = tiny_model()
    trainer = make_trainer(tmp_path / "c", model=model, nonfinite_loss="skip", max_nonfinite_skips=2)
    trainer.add_callback(_PoisonGradient(model, range(1, 7)))
    with pytest.raises(FloatingPointError, match="after 3 skipped batches in a row: non-finite gradient"):
        trainer.train()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_training_and_generation_stay_finite(dtype):
    model = tiny_model()
    ids, mask = token_batch(4, 12)
    with torch.autocast("cpu", dtype=dtype):
        out = model(input_ids=ids, attention_mask=mask)
        alpha, sigma = model.alpha_sigma(torch.rand(4).to(dtype))
    out.loss.backward()
    assert alpha.dtype == sigma.dtype == torch.float32  # schedule math in fp32 whatever the input
    for term in (out.loss, out.loss_diffusion, out.loss_hidden, out.loss_token):
        assert bool(torch.isfinite(term)), term
    assert all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.autocast("cpu", dtype=dtype):
        seq = model.generate(num_return_sequences=4, num_inference_steps=5, generator=torch.Generator().manual_seed(0))
    assert seq.dtype == torch.long and int(seq.min()) >= 0 and int(seq.max()) < VOCAB


def test_bf16_trainer_run_is_finite(tmp_path):
    trainer = make_trainer(tmp_path, bf16=True, max_steps=4)
    trainer.train()
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 4 and all(torch.isfinite(torch.tensor(logged)))


# ---- checkpoint files ---------------------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    folder = tmp_path / "ckpt"
    tiny_model().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_corrupted_weights_file_is_named(saved, damage):
    path = saved / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": b"\x00" * 64}[damage])
    with pytest.raises(ValueError, match="not a readable safetensors file.*force_download"):
        LDLMForDiffusionGeneration.from_pretrained(saved)


def test_missing_or_pickled_or_nonfinite_weights(saved):
    from safetensors.torch import load_file, save_file

    weights = load_file(saved / "model.safetensors")
    name = next(k for k in weights if k.startswith("denoiser."))
    weights[name][0] = float("inf")
    save_file(weights, saved / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=f"NaN/Inf values in .*{name}"):
        LDLMForDiffusionGeneration.from_pretrained(saved)
    os.remove(saved / "model.safetensors")
    with pytest.raises(OSError, match="model.safetensors"):
        LDLMForDiffusionGeneration.from_pretrained(saved)
    torch.save(weights, saved / "pytorch_model.bin")  # pickle: never read
    with pytest.raises(OSError, match="safetensors"):
        LDLMForDiffusionGeneration.from_pretrained(saved)


def test_tokenizer_that_does_not_match_the_config_is_rejected(tmp_path):
    lm = tiny_lm_folder(tmp_path / "lm")
    model = LDLMForDiffusionGeneration.from_frozen_lm(str(lm), **tiny_sizes())
    model.save_pretrained(tmp_path / "ok")
    assert LDLMForDiffusionGeneration.from_pretrained(tmp_path / "ok").tokenizer is not None
    model.config.eos_token_id = 7
    model.save_pretrained(tmp_path / "eos")
    with pytest.raises(ValueError, match="eos_token_id=3 but the model's config has eos_token_id=7"):
        LDLMForDiffusionGeneration.from_pretrained(tmp_path / "eos")
    with pytest.raises(ValueError, match="vocabulary has 50"):
        LDLMForDiffusionGeneration.from_frozen_lm(str(lm), **{**tiny_sizes(), "vocab_size": 50})


# ---- training data ------------------------------------------------------------------------------------------------
def test_junk_training_data(tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 au lait\nthe cat sat\n".encode("latin-1") * 20)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 40)
    for path in (latin1, junk):
        with pytest.raises(ValueError, match="is not UTF-8 text.*--encoding_errors replace"):
            load_text(train_file=str(path))
    assert load_text(train_file=str(latin1), encoding_errors="replace")["train"][0]["text"] == "caf\ufffd au lait"
    assert len(load_text(train_file=str(junk), encoding_errors="ignore")["train"]) > 0
    with pytest.raises(ValueError, match="encoding_errors"):
        load_text(train_file=str(latin1), encoding_errors="backslash")


# ---- untrusted code paths -----------------------------------------------------------------------------------------
def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            yield node, f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None


def test_no_pickle_eval_or_unsafe_torch_load_in_the_package():
    sources = [p for d in ("modeling_ldlm", "train", "benchmarks", "examples") for p in (ROOT / d).rglob("*.py")]
    assert len(sources) > 20
    problems = []
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            problems += [f"{path}: imports {n}" for n in names if n.split(".")[0] in ("pickle", "dill", "marshal",
                                                                                          "shelve", "cloudpickle")]
        for node, name in _calls(tree):
            if name in ("eval", "exec") and isinstance(node.func, ast.Name):
                problems.append(f"{path}:{node.lineno}: {name}()")
            if name == "load" and isinstance(node.func, ast.Attribute) and getattr(node.func.value, "id", "") == "torch":
                safe = any(k.arg == "weights_only" and getattr(k.value, "value", None) is True for k in node.keywords)
                if not safe:
                    problems.append(f"{path}:{node.lineno}: torch.load without weights_only=True")
    assert not problems, problems


# ---- load -----------------------------------------------------------------------------------------------------------
def test_generate_from_several_threads_matches_serial_calls():
    model = tiny_model().eval()
    prompt, mask = token_batch(2, 5, lengths=[5, 3])

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        if seed % 2:
            return model.generate(input_ids=prompt, attention_mask=mask, max_new_tokens=6, num_inference_steps=4,
                                  guidance_steps=2, generator=g)
        return model.generate(num_return_sequences=3, num_inference_steps=6, solver="euler_maruyama", generator=g)

    serial = [run(seed) for seed in range(8)]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(run, range(8)))
    assert all(torch.equal(a, b) for a, b in zip(serial, threaded))


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # gc also holds torch's deprecated `reduce_op`, which warns when inspected
        warnings.simplefilter("ignore", FutureWarning)
        return sum(1 for o in gc.get_objects() if torch.is_tensor(o))


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS is read from /proc")
def test_long_generation_loop_does_not_grow_memory():
    model = tiny_model().eval()

    def run(i):
        model.generate(num_return_sequences=4, num_inference_steps=5, generator=torch.Generator().manual_seed(i),
                       return_dict_in_generate=True, output_history=True)

    for i in range(10):
        run(i)
    tensors, rss = _live_tensors(), _rss_bytes()
    for i in range(200):
        run(i)
    grown = _rss_bytes() - rss
    assert _live_tensors() == tensors
    assert grown < 32 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 200 calls"
