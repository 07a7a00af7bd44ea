"""The harness's evaluation cache: each stage's output saved in `<work>/eval/<name>.json` as it finishes, so a rerun
computes only what is missing (delete the folder to re-measure, e.g. speed on a quieter machine)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .log import log


def cached(work: Path, name: str, compute: Callable[[], Any]) -> Any:
    """`compute()`, or what an earlier run saved under `name`."""
    path = work / "eval" / f"{name}.json"
    if path.exists():
        return json.loads(path.read_text())
    log(f"evaluate {name}")
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, default=float))
    return value


def cached_sweep(work: Path, name: str, compute_point: Callable[[int, float], list[dict]], steps_list: Sequence[int],
                 knobs: Sequence[float]) -> list[dict]:
    """The quality rows of one knob sweep (every step count x every knob), saved in `<work>/eval/<name>.json` point by
    point: a rerun computes only the points that are missing, so widening a tier's sweep keeps what was measured.
    `compute_point(steps, knob)` returns that point's rows. Rows come back in sweep order, only those asked for."""
    path = work / "eval" / f"{name}.json"
    rows = json.loads(path.read_text()) if path.exists() else []
    have = {(r["steps"], r["knob"]) for r in rows}
    missing = [(s, k) for s in steps_list for k in knobs if (s, k) not in have]
    if missing:
        log(f"evaluate {name}: {len(missing)} of {len(steps_list) * len(knobs)} sweep points")
        path.parent.mkdir(parents=True, exist_ok=True)
    for steps, knob in missing:
        rows += compute_point(steps, knob)
        path.write_text(json.dumps(rows, default=float))
    order = {(s, k): i for i, (s, k) in enumerate((s, k) for s in steps_list for k in knobs)}
    return sorted((r for r in rows if (r["steps"], r["knob"]) in order), key=lambda r: order[(r["steps"], r["knob"])])
