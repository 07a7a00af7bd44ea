import torch

from benchmarks.baselines import ARBaseline, MDLMBaseline

V, L = 20, 12


def test_ar_kv_cache_matches_full_forward():
    torch.manual_seed(0)
    model = ARBaseline(V, L, width=32, layers=2, heads=2, bos=1, eos=2, pad=0).eval()
    ids = torch.randint(3, V, (2, 7))
    full = model.net(ids)
    caches = [[None, None] for _ in model.net.blocks]
    steps = torch.cat([model.net(ids[:, i:i + 1], caches=caches, offset=i) for i in range(7)], 1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-4)


def test_ar_generate_counts_one_call_per_token_and_pads_after_eos():
    torch.manual_seed(0)
    model = ARBaseline(V, L, width=32, layers=1, heads=2, bos=1, eos=2, pad=0).eval()
    seq, calls = model.generate(3, seed=0)
    again, _ = model.generate(3, seed=0)
    assert torch.equal(seq, again)
    assert seq.shape[0] == 3 and calls == seq.shape[1] - 1 <= L - 1
    for row in seq.tolist():
        if 2 in row:
            assert all(t == 0 for t in row[row.index(2) + 1:])


def test_mdlm_loss_and_sampler_call_count():
    torch.manual_seed(0)
    model = MDLMBaseline(V, L, width=32, layers=1, heads=2, bos=1, eos=2, pad=0)
    ids = torch.randint(3, V, (4, L))
    loss = model.loss(ids, torch.ones_like(ids))
    loss.backward()
    assert torch.isfinite(loss) and model.net.embed.weight.grad is not None
    seq, calls = model.eval().generate(2, steps=8, seed=0)
    assert seq.shape[0] == 2 and seq.shape[1] <= L and 1 <= calls <= 8
    assert (seq != model.mask_id).all()  # every position revealed by t = 0


def test_mdlm_never_predicts_mask():
    model = MDLMBaseline(V, L, width=32, layers=1, heads=2, bos=1, eos=2, pad=0)
    logits = model.subs_logits(torch.full((1, L), model.mask_id))
    assert torch.isinf(logits[..., model.mask_id]).all()
