"""Speed, memory and work measurement: median wall time of warm runs, peak memory while a function runs, and the
floating-point operations it executes.

Peak memory is `torch.cuda.max_memory_allocated` on a GPU; on a CPU it is the peak resident set size of the process
sampled every millisecond from /proc (a coarse but honest figure: it includes everything the process holds).
FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` (matrix products and attention; element-wise work is
not counted), so they are a property of the computation, not of the machine.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def median_time(fn: Callable[[], object], warmup: int = 1, repeats: int = 5) -> dict[str, float | list[float]]:
    """Run `fn` `warmup` times untimed, then `repeats` times; report the median and every run (seconds)."""
    if repeats <= 0:
        raise ValueError("repeats must be positive")
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        runs.append(time.perf_counter() - start)
    return {"median_s": statistics.median(runs), "runs_s": runs}


def _rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(fn: Callable[[], object]) -> dict[str, float | str]:
    """Peak memory in MiB while `fn` runs (GPU allocator peak, or sampled process RSS on CPU)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        fn()
        return {"peak_mib": torch.cuda.max_memory_allocated() / 2**20, "kind": "cuda_allocated"}
    peak, stop = [_rss_bytes()], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        fn()
    finally:
        stop.set()
        thread.join()
    return {"peak_mib": peak[0] / 2**20, "kind": "process_rss"}


class _TotalOnly:
    """Stands in for FlopCounterMode's module tracker, whose forward hooks fail on a view of a parameter under
    `torch.no_grad()` (such a view still reports requires_grad, but has no autograd node to hook). Only the total is
    needed here, and FlopCounterMode files every count under the tracker's current `parents`."""

    parents = frozenset({"Global"})

    def __enter__(self) -> _TotalOnly:
        return self

    def __exit__(self, *exc) -> None:
        return None


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of `fn` under `torch.no_grad()` (matmuls and attention, as FlopCounterMode counts them)."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _TotalOnly()  # per-module counts are not needed, and their hooks break inference
    with counter, torch.no_grad():
        fn()
    return int(counter.get_total_flops())
