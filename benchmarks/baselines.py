"""Token-level baselines for the side-by-side benchmark: autoregressive and MDLM masked diffusion.

Both share one bidirectional-or-causal transformer over tokens (`TokenTransformer`) sized to match LDLM's
generation-time parameters (denoiser + latent decoder + token decoder).

AR: L = -sum_t log p(w_t | w_<t) over non-pad positions; sampling with a KV cache, one network call per token.

MDLM (Sahoo et al. 2024): absorbing-state diffusion with the log-linear schedule alpha_t = 1 - t. Each token is
replaced by [MASK] with probability t; the SUBS parameterisation never predicts [MASK] and copies unmasked tokens,
and the continuous-time ELBO is L = E_t [ 1/t * sum_{masked l} -log p(w_l | z_t) ] / L. The ancestral sampler goes
from all-[MASK] at t = 1 down to t = 0 in S steps: a masked token stays masked with probability s/t, else it becomes
x0 ~ p(x0 | z_t). Which tokens are revealed does not depend on x0, so the sampler draws that first and runs the
vocabulary head and the draw of x0 only at the revealed positions (the same distribution as drawing x0 everywhere,
for a fraction of the cost). A step that reveals nothing leaves z unchanged and makes no network call, as in MDLM's
cached sampler.
The mask token gets its own id (vocab_size), so it never clashes with pad/eos.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from modeling_ldlm.canvas import cut_at_eos
from modeling_ldlm.generation_ldlm import sample_tokens
from modeling_ldlm.random_rows import uniform_rows


def row_generators(batch: int, seed: int) -> list[torch.Generator]:
    """One generator per row, so a row's sample does not depend on the batch it is drawn in."""
    return [torch.Generator().manual_seed(seed * 100_003 + row) for row in range(batch)]


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, causal: bool, cache: list | None = None) -> torch.Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None:  # (k, v) of the previous positions
            if cache[0] is not None:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[0], cache[1] = k, v
        # Right padding needs no key mask: causally nothing attends to later pads, and for MDLM pads are canvas.
        # A cached single-token step attends to every previous position.
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal and n > 1)
        x = x + self.proj(out.transpose(1, 2).reshape(b, n, w))
        return x + self.mlp(self.norm2(x))


class TokenTransformer(nn.Module):
    """Embeddings (tied with the head) + transformer blocks; `causal` selects AR or bidirectional attention."""

    def __init__(self, vocab_size: int, max_length: int, width: int, layers: int, heads: int, causal: bool):
        super().__init__()
        self.causal = causal
        self.embed = nn.Embedding(vocab_size, width)
        self.pos = nn.Embedding(max_length, width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)

    def hidden(self, ids: torch.Tensor, caches: list | None = None, offset: int = 0) -> torch.Tensor:
        """Final-norm hidden states (B, n, W), before the vocabulary head."""
        positions = torch.arange(offset, offset + ids.shape[1], device=ids.device)
        x = self.embed(ids) + self.pos(positions)[None]
        for i, block in enumerate(self.blocks):
            x = block(x, self.causal, None if caches is None else caches[i])
        return self.norm(x)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.embed.weight.T  # (..., V)

    def forward(self, ids: torch.Tensor, caches: list | None = None, offset: int = 0) -> torch.Tensor:
        return self.head(self.hidden(ids, caches, offset))  # (B, n, V)


class ARBaseline(nn.Module):
    def __init__(self, vocab_size: int, max_length: int, width: int, layers: int, heads: int, bos: int, eos: int,
                 pad: int):
        super().__init__()
        self.net = TokenTransformer(vocab_size, max_length, width, layers, heads, causal=True)
        self.max_length, self.bos, self.eos, self.pad = max_length, bos, eos, pad

    def loss(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.net(ids[:, :-1])
        target_mask = mask[:, 1:].bool()
        return F.cross_entropy(logits[target_mask], ids[:, 1:][target_mask])

    @torch.no_grad()
    def generate(self, batch: int, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                 prompts: list[list[int]] | None = None) -> tuple[torch.Tensor, int]:
        """(sequences (B, <= max_length), network calls) with a KV cache. Each row starts from its prompt (ids that
        begin with BOS; default [BOS]): one call reads the positions every prompt has, then one call per position,
        where a row whose prompt is longer reads its own next prompt token instead of the sampled one."""
        device = self.net.embed.weight.device
        prompts = [[self.bos]] * batch if prompts is None else prompts
        seq, lengths = prompt_rows(prompts, self.max_length, self.pad, device)
        generators = row_generators(batch, seed)
        caches = [[None, None] for _ in self.net.blocks]
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        shared = int(lengths.min())
        logits = self.net(seq[:, :shared], caches=caches)[:, -1]
        calls = 1
        for position in range(shared, self.max_length):
            nxt = sample_tokens(logits[:, None], temperature > 0, temperature, None, top_p, generators)[:, 0]
            forced = position < lengths
            nxt = torch.where(forced, seq[:, position], torch.where(done, torch.full_like(nxt, self.pad), nxt))
            seq[:, position] = nxt
            done |= (nxt == self.eos) & ~forced
            if done.all() or position == self.max_length - 1:
                break
            logits = self.net(nxt[:, None], caches=caches, offset=position)[:, -1]
            calls += 1
        return seq[:, :position + 1], calls


def prompt_rows(prompts: list[list[int]], max_length: int, pad: int,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, max_length) canvas with each prompt at its start and pad after it, and the prompts' lengths (B,)."""
    if any(not 0 < len(p) < max_length for p in prompts):
        raise ValueError(f"Each prompt needs 1 to {max_length - 1} ids (its BOS included) to leave room to write.")
    seq = torch.full((len(prompts), max_length), pad, dtype=torch.long, device=device)
    for row, p in enumerate(prompts):
        seq[row, :len(p)] = torch.tensor(p, dtype=torch.long, device=device)
    return seq, torch.tensor([len(p) for p in prompts], device=device)


class MDLMBaseline(nn.Module):
    def __init__(self, vocab_size: int, max_length: int, width: int, layers: int, heads: int, bos: int, eos: int,
                 pad: int):
        super().__init__()
        self.mask_id = vocab_size  # an id of its own
        self.net = TokenTransformer(vocab_size + 1, max_length, width, layers, heads, causal=False)
        self.max_length, self.bos, self.eos, self.pad = max_length, bos, eos, pad

    def subs_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.subs_head(self.net.hidden(z))

    def subs_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """SUBS logits from hidden states (..., W): the vocabulary head with [MASK] never predicted."""
        logits = self.net.head(hidden).float()
        logits[..., self.mask_id] = float("-inf")
        return logits

    def loss(self, ids: torch.Tensor, mask: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """Padding is part of the canvas (the model learns where the sentence ends), so every position counts."""
        b, n = ids.shape
        if n < self.max_length:
            ids = F.pad(ids, (0, self.max_length - n), value=self.pad)
        t = torch.rand(b, device=ids.device).clamp_min(1e-3) if t is None else t
        masked = torch.rand(ids.shape, device=ids.device) < t[:, None]
        z = torch.where(masked, torch.full_like(ids, self.mask_id), ids)
        nll = F.cross_entropy(self.subs_logits(z).transpose(1, 2), ids, reduction="none")  # (B, L)
        return ((nll * masked) / t[:, None]).sum(1).mean() / self.max_length

    @torch.no_grad()
    def generate(self, batch: int, steps: int, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                 prompts: list[list[int]] | None = None) -> tuple[torch.Tensor, int]:
        """Ancestral sampling from all-[MASK] after each row's prompt (ids that begin with BOS; default [BOS]), which
        stays fixed on the canvas (SUBS copies unmasked tokens); returns (sequences cut after the first EOS after
        the prompt, executed network calls)."""
        device = self.net.embed.weight.device
        generators = row_generators(batch, seed)
        prompts = [[self.bos]] * batch if prompts is None else prompts
        z, lengths = prompt_rows(prompts, self.max_length, self.mask_id, device)
        times = torch.linspace(1.0, 0.0, steps + 1)
        calls = 0
        for t, s in zip(times[:-1].tolist(), times[1:].tolist()):
            unmask_prob = (t - s) / t if s > 0 else 1.0
            u = uniform_rows(tuple(z.shape), generators, device)
            reveal = (z == self.mask_id) & (u < unmask_prob)
            if not reveal.any():  # z is unchanged, so the network's output would be too: no call
                continue
            logits = self.subs_head(self.net.hidden(z)[reveal])  # (revealed, V): one pass over the head
            calls += 1
            rows, cols = reveal.nonzero(as_tuple=True)  # row-major, the order of hidden[reveal]
            start = 0
            for row, count in zip(*(x.tolist() for x in rows.unique_consecutive(return_counts=True))):
                z[row, cols[start:start + count]] = sample_tokens(logits[None, start:start + count], temperature > 0,
                                                                  temperature, None, top_p, [generators[row]])[0]
                start += count
        eos = torch.tensor([self.eos], device=device)
        return cut_at_eos(z, eos, self.pad, lengths), calls
