"""The benchmark tiers of `python -m benchmarks.run`: for each, the LDLM recipe, the data, the baselines' size, the
step counts the arms' records read (`ldlm_steps`, `mdlm_steps`, `cdcd_steps`, `distill["steps"]`; benchmarks/arms.py),
the knob values every arm sweeps (`knobs`, or `arm_knobs[<arm>]`), the recipe ablations and the evaluation's sample counts.
A `prompted` tier measures how the arms that can continue prompts do so (`samples` held-out prompts each;
benchmarks/continuations.py) instead of their unconditional samples.
A result records these settings next to its rows (benchmarks/summary.py)."""

TOY_LDLM_ARGS = [
    "--max_steps", "4", "--eval_steps", "2", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8",
    "--max_eval_samples", "16", "--config_overrides",
    "encoder_num_layers=1,denoiser_num_layers=1,latent_decoder_num_layers=1,token_decoder_num_layers=1,num_latents=4,"
    "encoder_hidden_size=32,denoiser_hidden_size=32,latent_decoder_hidden_size=32,token_decoder_hidden_size=32",
]
# Better-trained models are more confident: at temperature 1 the cpu-long AR and sampled LDLM write below the data's
# entropy (2.43 and 2.46 against 2.55), and reach it only at 1.3 (AR) and 1.6 (LDLM token temperature).
WIDE_KNOBS = [0.7, 0.85, 1.0, 1.3, 1.6]
TIERS: dict[str, dict] = {
    "toy": dict(ldlm_config="train/configs/quickstart.yaml", ldlm_args=TOY_LDLM_ARGS,
                max_length=32, train_lines=64, val_lines=40, drop_long_lines=True,
                baseline=dict(width=32, layers=1, heads=2),
                ldlm_steps=[2, 4], mdlm_steps=[4, 8], knobs=[0.8, 1.0], samples=8, batch=8, ablations=["no_warmup"],
                cdcd_steps=[4, 8],
                ablation_args=["--max_steps", "2"], speed_repeats=1, mauve=False,
                distill=dict(args=["--start_steps", "4", "--final_steps", "1", "--steps_per_stage", "2",
                                   "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8",
                                   "--max_eval_samples", "16",
                                   "--probe_samples", "4", "--eval_steps", "2"], steps=[1, 2])),
    # The cpu-packed tier's code path at toy size: windows of consecutive sentences, per-arm knobs, no extras.
    # The prompted tiers' code path at toy size.
    "toy-prompted": dict(ldlm_config="train/configs/quickstart.yaml", ldlm_args=TOY_LDLM_ARGS, max_length=32,
                         train_lines=64, val_lines=40, drop_long_lines=True, baseline=dict(width=32, layers=1, heads=2),
                         ldlm_steps=[2], mdlm_steps=[4], knobs=[0.8, 1.0], samples=8, batch=4, ablations=[],
                         ablation_args=[], speed_repeats=1, mauve=False, prompted=True),
    "toy-packed": dict(ldlm_config="train/configs/quickstart.yaml", ldlm_args=TOY_LDLM_ARGS, max_length=48,
                       data_mode="packed", train_lines=64, val_lines=16, drop_long_lines=True,
                       baseline=dict(width=32, layers=1, heads=2), ldlm_steps=[2], mdlm_steps=[4, 8], cdcd_steps=[4],
                       knobs=[1.0],
                       arm_knobs={"mdlm": [1.0, 1.3]}, samples=8, batch=8, ablations=[], ablation_args=[],
                       speed_repeats=1, mauve=False),
    "cpu": dict(ldlm_config="train/configs/quickstart.yaml", ldlm_args=[], max_length=64, train_lines=None,
                val_lines=2000, baseline=dict(width=256, layers=10, heads=4), ldlm_steps=[10, 25, 50, 100],
                mdlm_steps=[16, 32, 64, 128], cdcd_steps=[16, 32, 64, 128], knobs=[0.7, 0.85, 1.0], samples=128,
                batch=64,
                ablations=["no_mse", "no_warmup", "no_adaptive", "no_decoder_noise"], ablation_args=[],
                speed_repeats=3, mauve=True),
    # The paper's thesis at the quickstart's budget (~10 min of training per arm): the README's quickstart recipe as
    # the LDLM arm, the same run with a fixed latent space, and CDCD, MDLM and AR for LDLM's seconds, all on the
    # sentences that fit L = 32; 256 samples per point so that the intervals separate what they can. The jointly
    # trained model's sampled tokens stay below the data's entropy up to temperature 1.6, and CDCD's above it down to
    # 0.7, so their sweeps reach further (measured in the first run of this tier). CDCD runs the vocabulary softmax
    # at every step (score interpolation), ~2.7 min per point of 256 samples at 32 steps here, so it is measured at 32
    # steps only. No MAUVE (its
    # bootstrap refits clusters 100 times per point), no distillation, no ablations. ~1.1 h on 2 cores.
    "cpu-quick": dict(ldlm_config="train/configs/quickstart.yaml", ldlm_args=[], max_length=32, train_lines=None,
                      val_lines=2000, drop_long_lines=True, baseline=dict(width=256, layers=10, heads=4),
                      ldlm_steps=[10], mdlm_steps=[16, 32], cdcd_steps=[32], knobs=WIDE_KNOBS,
                      arm_knobs={"ldlm-sampled": [*WIDE_KNOBS, 2.5, 4.0], "cdcd": [0.3, 0.7, 0.85, 1.0]}, samples=256,
                      batch=64, ablations=[], ablation_args=[], speed_repeats=1, mauve=False),
    # Prompts as conditioning at the quickstart's budget: every arm continues the same 256 held-out prompts
    # (benchmarks/continuations.py), scored given the prompt. The quickstart recipe trained to continue text
    # (ldlm-conditional) against the plain quickstart following each prompt by guidance (ldlm, ldlm-sampled), AR and
    # MDLM with the prompt fixed on its canvas, the baselines trained for the plain LDLM run's seconds on the
    # sentences of cpu-quick. ~1.5 h on 2 cores.
    "cpu-quick-prompted": dict(ldlm_config="train/configs/quickstart.yaml", ldlm_args=[], max_length=32,
                               train_lines=None, val_lines=2000, drop_long_lines=True,
                               baseline=dict(width=256, layers=10, heads=4), ldlm_steps=[10], mdlm_steps=[16, 32],
                               knobs=WIDE_KNOBS, arm_knobs={"ldlm-sampled": [*WIDE_KNOBS, 2.5, 4.0],
                                                            "ldlm-conditional-sampled": [*WIDE_KNOBS, 2.5, 4.0]},
                               samples=256, batch=64, ablations=[], ablation_args=[], speed_repeats=3, mauve=True,
                               prompted=True),
    # Long enough for English-like text: LDLM is the cpu-long preset (~52 min), each
    # baseline gets the same seconds, and every arm trains on exactly the same sentences (those that fit L = 32).
    # ~2.6 h of training + ~0.6 h of evaluation on 2 cores; the recipe ablations stay in the "cpu" tier.
    "cpu-long": dict(ldlm_config="train/configs/cpu-long.yaml", ldlm_args=[], max_length=32, train_lines=None,
                     val_lines=2000, drop_long_lines=True, baseline=dict(width=256, layers=10, heads=4),
                     ldlm_steps=[10, 25, 50, 100], mdlm_steps=[16, 32, 64, 128], knobs=WIDE_KNOBS, samples=128,
                     batch=64, ablations=[], ablation_args=[], speed_repeats=3, mauve=True,
                     cdcd_steps=[16, 32, 64, 128],
                     distill=dict(args=[], steps=[1, 2, 4])),
    # The paper's thesis at cpu-long's budget: cpu-long's sentences and preset (3,500 steps), with the quickstart's one
    # latent per token and locality prior (N = L = 32), which decoded more of the held-out tokens than 2x compression at
    # the quickstart's budget; the same run on a fixed latent space; CDCD, MDLM and AR for LDLM's seconds (~1 h each);
    # 256 samples per point for the intervals, so each arm is measured at one or two step counts; no distillation.
    # The sweeps reach past the data's entropy (2.55 over cpu-long's 128 held-out sentences, 2.47 over these 256) on
    # both sides where cpu-long's first run found them short: LDLM's argmax texts crossed it between noise scales 1.0
    # and 1.3, AR's and MDLM's between temperatures 1.0 and 1.3; the fixed space's sampled texts at 10 steps were
    # already above it at temperature 0.7, so its sweep starts at 0.5. ~5.5 h of training and ~1 h of evaluation on 2 cores:
    # run it in parts with --arms; a part that measured an arm besides LDLM's own can be reused by the next with
    # --baselines_from, which keeps only the arms --arms names (part 1 measured LDLM alone, so part 2 names its arms
    # with --arms only; the final part names every arm, earlier ones included, to write one file).
    "cpu-long-thesis": dict(ldlm_config="train/configs/cpu-long.yaml",
                            ldlm_args=["--num_latents", "32", "--config_overrides", "latent_locality=1.0"],
                            max_length=32, train_lines=None, val_lines=2000, drop_long_lines=True,
                            baseline=dict(width=256, layers=10, heads=4), ldlm_steps=[10, 50], mdlm_steps=[32, 128],
                            cdcd_steps=[32], knobs=WIDE_KNOBS,
                            arm_knobs={"ldlm": [0.85, 1.0, 1.15, 1.3, 1.6, 2.0, 2.5],
                                       "ldlm-sampled": [*WIDE_KNOBS, 2.0, 2.5],
                                       "ldlm-fixed": [0.85, 1.0, 1.15, 1.3, 1.6, 2.0, 2.5],
                                       "ldlm-fixed-sampled": [0.5, *WIDE_KNOBS, 2.0, 2.5],
                                       "mdlm": [0.85, 1.0, 1.15, 1.3], "cdcd": [0.5, 0.7, 0.85, 1.0, 1.3]},
                            samples=256, batch=64, ablations=[], ablation_args=[], speed_repeats=1, mauve=True),
    # The LM1B length: 128-token windows of consecutive Brown sentences (benchmarks/packed_text.py; 112 tokens on
    # average), so MDLM's quality depends on its step count (32-512 steps over 128 positions) and AR pays for every
    # token. LDLM compresses 128 positions into N = 32 latents (4x): a denoiser call then costs about a quarter of a
    # position-wise one. Baselines as in cpu-long (LDLM's generation-time size); each arm trains for LDLM's seconds
    # (~25 min). One batch of 64 samples per point and one timed repeat, since a 512-step MDLM batch takes ~8 min
    # here; MDLM's temperature is swept at 1.0 and 1.3 only, the two that bracket the data's entropy in cpu-long.
    # The LDLM arm is then distilled (the distill-cpu recipe, 16 -> 1 steps) and its 1-, 2- and 4-step students are
    # arms of their own. ~3 h in all on 2 cores.
    "cpu-packed": dict(ldlm_config="train/configs/cpu-packed.yaml", ldlm_args=[], max_length=128,
                       data_mode="packed", train_lines=None, val_lines=2000, drop_long_lines=True,
                       baseline=dict(width=256, layers=10, heads=4), ldlm_steps=[5, 10, 25], mdlm_steps=[32, 128, 512],
                       knobs=WIDE_KNOBS, arm_knobs={"mdlm": [1.0, 1.3], "cdcd": [0.85, 1.0, 1.3]}, samples=64,
                       batch=64, cdcd_steps=[32, 128],
                       ablations=[], ablation_args=[], speed_repeats=1, mauve=True,
                       distill=dict(args=[], steps=[1, 2, 4])),
    # The paper's thesis at the LM1B length: the windows of cpu-packed, the LDLM arm with one latent per token
    # (N = L = 128, as a third-party reading of the paper has it; at the same seconds it decodes more of the held-out
    # tokens than 4x compression, BENCHMARKS.md section 5) and its warmup gate at token accuracy 0.4, 280 steps
    # (~the seconds of cpu-packed's 480); the same run on a fixed latent space; CDCD, MDLM and AR for LDLM's seconds.
    # 256 samples per point for the intervals, so each arm is measured at one or two step counts. LDLM's argmax
    # sweep reaches noise scale 2.5 (at 1.6 its texts were still below the data's entropy); MDLM's starts at 0.85 and
    # CDCD's at 0.7 (at 1.0 and 0.85 their texts were already above it: 4.10 and 4.13 against 4.01). Too long for one
    # sitting on 2 cores (5 x ~25 min of training, ~1.5 h of evaluation): run it in parts with --arms, each part
    # reusing the rows of the last with --baselines_from.
    "cpu-packed-thesis": dict(ldlm_config="train/configs/cpu-packed.yaml",
                              ldlm_args=["--num_latents", "128", "--gamma_start_accuracy", "0.4", "--max_steps", "280",
                                         "--eval_steps", "70", "--save_steps", "70"],
                              max_length=128, data_mode="packed", train_lines=None, val_lines=2000,
                              drop_long_lines=True, baseline=dict(width=256, layers=10, heads=4), ldlm_steps=[10],
                              mdlm_steps=[32, 128], cdcd_steps=[32], knobs=WIDE_KNOBS,
                              arm_knobs={"mdlm": [0.85, 1.0, 1.3], "cdcd": [0.7, 0.85, 1.0, 1.3],
                                         "ldlm": [*WIDE_KNOBS, 2.0, 2.5]},
                              samples=256, batch=64,
                              ablations=[], ablation_args=[], speed_repeats=1, mauve=True),
    # cpu-packed-thesis at two and a half times its budget, so that the latent space can decode at 128 tokens: there,
    # 280 steps left LDLM's reconstruction at 0.673 with the token decoder reading only 0.718 of the tokens from the
    # frozen LM's own states (the free vocabulary head, not the latents, was the limit), and the frozen-embedding head
    # lifted that ceiling to 0.905 (reconstruction 0.820) in the same seconds. So here LDLM (and the fixed latent space,
    # the same run) reads tokens through the frozen-embedding head, trains 700 steps (78 min on 2 cores), and its
    # warmup gate waits for token accuracy 0.6, so the joint phase starts once the latents decode most tokens. The same
    # windows, arms and evaluation as cpu-packed-thesis; each baseline trains for LDLM's seconds: ~6.5 h of training and
    # ~1.5 h of evaluation on 2 cores, run in parts with --arms as cpu-long-thesis is. LDLM's sweeps are four points
    # each (a point of 256 samples at 128 tokens takes 3-4 min here): this run's argmax texts are already above the
    # data's entropy at noise scale 1.6 (4.24 against 4.01; cpu-packed-thesis's crossed it only between 2.0 and 2.5).
    # The fixed latent space's sampled texts stay above it at every temperature (4.12 at 0.3, 4.14 at 0.7): its
    # temperature sweep runs 0.3-1.0, to come as close as it can. Its argmax texts cross the data's entropy between
    # noise scales 0.7 and 0.85 (3.98, 4.06), so its sweep has a point between them.
    "cpu-packed-long-thesis": dict(ldlm_config="train/configs/cpu-packed.yaml",
                                   ldlm_args=["--num_latents", "128", "--gamma_start_accuracy", "0.6",
                                              "--config_overrides", "latent_locality=1.0,token_head=frozen_embeddings",
                                              "--max_steps", "700", "--eval_steps", "100", "--save_steps", "100"],
                                   max_length=128, data_mode="packed", train_lines=None, val_lines=2000,
                                   drop_long_lines=True, baseline=dict(width=256, layers=10, heads=4), ldlm_steps=[10],
                                   mdlm_steps=[32, 128], cdcd_steps=[32], knobs=WIDE_KNOBS,
                                   arm_knobs={"mdlm": [0.85, 1.0, 1.3], "cdcd": [0.7, 0.85, 1.0, 1.3],
                                              "ldlm": [0.7, 1.0, 1.3, 1.6], "ldlm-sampled": [1.0, 1.3, 1.6, 2.0],
                                              "ldlm-fixed-sampled": [0.3, 0.5, 0.7, 0.85, 1.0],
                                              "ldlm-fixed": [0.7, 0.775, 0.85, 1.0, 1.3, 1.6]},
                                   samples=256, batch=64,
                                   ablations=[], ablation_args=[], speed_repeats=1, mauve=True),
    "gpu": dict(ldlm_config="train/configs/gpu-h200.yaml", ldlm_args=[], max_length=128, train_lines=None,
                val_lines=2000, baseline=dict(width=768, layers=12, heads=12), ldlm_steps=[10, 25, 50, 100],
                mdlm_steps=[32, 64, 128, 256], cdcd_steps=[32, 64, 128, 256], knobs=WIDE_KNOBS, samples=256, batch=64,
                ablations=["no_mse", "no_warmup", "no_adaptive", "no_decoder_noise"], ablation_args=[],
                speed_repeats=5, mauve=True),
}
