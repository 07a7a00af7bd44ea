"""Train the AR and MDLM baselines for a fixed wall-clock budget on the benchmark's token data (resumable).

The budget counts only optimisation time (data is tokenised once, before the clock starts), exactly as for LDLM.
State (weights, optimiser, steps, elapsed seconds) is saved every `save_every_s` seconds, so a killed run resumes
where it stopped and the budget is honoured across restarts.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .baselines import ARBaseline, MDLMBaseline


def train_for_budget(model: ARBaseline | MDLMBaseline, ids: torch.Tensor, mask: torch.Tensor, out_dir: Path,
                     budget_s: float, batch_size: int = 64, lr: float = 1e-3, warmup_steps: int = 200,
                     seed: int = 0, save_every_s: float = 120.0, log_every: int = 50) -> dict:
    """Optimise `model.loss` on random batches of (ids, mask) until `budget_s` seconds of training have passed."""
    if budget_s <= 0 or batch_size <= 0:
        raise ValueError("budget_s and batch_size must be positive")
    if len(ids) < batch_size:
        raise ValueError(f"batch_size {batch_size} is larger than the {len(ids)} training examples")
    out_dir.mkdir(parents=True, exist_ok=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    state = {"steps": 0, "elapsed_s": 0.0, "losses": []}
    if (out_dir / "state.json").exists():
        state = json.loads((out_dir / "state.json").read_text())
        model.load_state_dict(load_file(out_dir / "model.safetensors"))
        optimizer.load_state_dict(torch.load(out_dir / "optimizer.pt", weights_only=True))
    generator = torch.Generator().manual_seed(seed + state["steps"])
    model.train()
    last_save, window = time.perf_counter(), []
    while state["elapsed_s"] < budget_s:
        start = time.perf_counter()
        rows = torch.randint(len(ids), (batch_size,), generator=generator)
        batch_ids, batch_mask = ids[rows], mask[rows]
        width = int(batch_mask.sum(1).max())
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (state["steps"] + 1) / warmup_steps)
        loss = model.loss(batch_ids[:, :width] if isinstance(model, ARBaseline) else batch_ids,
                          batch_mask[:, :width] if isinstance(model, ARBaseline) else batch_mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["steps"] += 1
        state["elapsed_s"] += time.perf_counter() - start
        window.append(loss.item())
        if state["steps"] % log_every == 0:
            state["losses"].append([state["steps"], round(state["elapsed_s"], 1), sum(window) / len(window)])
            window = []
        if time.perf_counter() - last_save > save_every_s or state["elapsed_s"] >= budget_s:
            save_file(model.state_dict(), out_dir / "model.safetensors")
            torch.save(optimizer.state_dict(), out_dir / "optimizer.pt")
            (out_dir / "state.json").write_text(json.dumps(state))
            last_save = time.perf_counter()
    model.eval()
    final = state["losses"][-1][2] if state["losses"] else math.nan
    return {"steps": state["steps"], "train_seconds": state["elapsed_s"], "final_loss": final,
            "loss_curve": state["losses"]}
