"""Speed and memory measurement: median wall time of warm runs, and peak memory while a function runs.

Peak memory is `torch.cuda.max_memory_allocated` on a GPU; on a CPU it is the peak resident set size of the process
sampled every millisecond from /proc (a coarse but honest figure: it includes everything the process holds).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable

import torch


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
