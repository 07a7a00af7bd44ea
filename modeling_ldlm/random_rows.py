"""Random draws with one `torch.Generator` per batch row, so that a row's sample never depends on the batch it is in.

`row_generators` turns what a caller passes (one generator, a list of one per row, or None) into one generator per
row; `normal_rows` and `uniform_rows` draw (B, ...) tensors from them. A single generator (or None: the global RNG)
may also draw a whole tensor at once (`normal_rows` with a plain generator), as the stochastic solvers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

Generators = torch.Generator | Sequence[torch.Generator] | None


def row_generators(generator: Any, batch: int) -> list[torch.Generator]:
    """One generator per row. A list is used as given; a single generator (or None: the global RNG) hands out one
    seed per row in order, so row b of a batch equals a batch of b + 1 rows' last row started from the same state."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != batch or not all(isinstance(g, torch.Generator) for g in generator):
            raise ValueError(f"generator must be one torch.Generator or a list of {batch} (one per output row), "
                             f"got a list of {len(generator)}.")
        return list(generator)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or a list of them, got {type(generator).__name__}.")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    seeds = [int(torch.randint(0, 2**62, (1,), generator=generator, device=gen_device)) for _ in range(batch)]
    return [torch.Generator(device=gen_device).manual_seed(s) for s in seeds]


def normal_rows(shape: Sequence[int], generator: Generators, device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal (B, *rest) in fp32. With a list of B generators row b is drawn from generator b alone; a
    single generator (or None: the global RNG) draws the whole tensor at once."""
    shape = tuple(shape)
    if generator is None or isinstance(generator, torch.Generator):
        gen_device = generator.device if generator is not None else device
        return torch.randn(shape, generator=generator, device=gen_device).to(device)
    if len(generator) != shape[0]:
        raise ValueError(f"Got {len(generator)} generators for a batch of {shape[0]}: pass one per row.")
    rows = [torch.randn(shape[1:], generator=g, device=g.device) for g in generator]
    return torch.stack(rows).to(device)


def uniform_rows(shape: Sequence[int], generators: Sequence[torch.Generator],
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """Uniform [0, 1) draws (B, *rest), row b from generator b."""
    shape = tuple(shape)
    return torch.stack([torch.rand(shape[1:], generator=g, device=g.device) for g in generators]).to(device)


__all__ = ["Generators", "normal_rows", "row_generators", "uniform_rows"]
