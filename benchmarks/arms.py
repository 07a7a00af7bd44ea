"""Every arm of the side-by-side benchmark, one record each (benchmarks/arm.py), and LDLM's recipe ablations.

To add an arm: write its train, load and sample functions (as benchmarks/baseline_arms.py does for AR and MDLM),
add its record to `ARMS`, and give each tier that measures it the step counts its `steps` reads (benchmarks/tiers.py).
An arm with a `continuer` (its function that continues prompts) is also measured by the prompted tiers.
"""

from __future__ import annotations

from functools import partial

from .arm import Ablation, Arm
from .baseline_arms import (
    all_parameters,
    ar_continuer,
    ar_sampler,
    cdcd_steps,
    load_baseline,
    mdlm_steps,
    no_steps,
    stepped_continuer,
    stepped_sampler,
    train_baseline,
)
from .baselines import ARBaseline, MDLMBaseline
from .cdcd import CDCDBaseline
from .ldlm_arms import (
    distill_ldlm,
    distilled_sampler,
    ldlm_continuer,
    ldlm_parameters,
    ldlm_sampler,
    ldlm_steps,
    load_ldlm,
    load_students,
    student_steps,
    train_ldlm,
)

LDLM = Arm("ldlm", model="ldlm", train=train_ldlm, load=load_ldlm,
           sampler=partial(ldlm_sampler, knob_name="noise_scale"), parameters=ldlm_parameters,
           knob="noise_scale (argmax tokens)", steps=ldlm_steps, colour="tab:orange", dashed=True,
           continuer=partial(ldlm_continuer, knob_name="noise_scale"))
LDLM_SAMPLED = Arm("ldlm-sampled", model="ldlm", train=train_ldlm, load=load_ldlm,
                   sampler=partial(ldlm_sampler, knob_name="temperature"), parameters=ldlm_parameters,
                   knob="token temperature (noise_scale 1)", steps=ldlm_steps, colour="tab:red",
                   continuer=partial(ldlm_continuer, knob_name="temperature"))
LDLM_DISTILLED = Arm("ldlm-distilled", model="ldlm-distilled", train=distill_ldlm, load=load_students,
                     sampler=partial(distilled_sampler, knob_name="noise_scale"), parameters=ldlm_parameters,
                     knob="noise_scale (argmax tokens)", steps=student_steps, colour="tab:purple", dashed=True,
                     distilled=True)
LDLM_DISTILLED_SAMPLED = Arm("ldlm-distilled-sampled", model="ldlm-distilled", train=distill_ldlm,
                             load=load_students, sampler=partial(distilled_sampler, knob_name="temperature"),
                             parameters=ldlm_parameters, knob="token temperature (noise_scale 1)",
                             steps=student_steps, colour="tab:pink", distilled=True)
AR = Arm("ar", model="ar", train=partial(train_baseline, model_class=ARBaseline),
         load=partial(load_baseline, model_class=ARBaseline), sampler=ar_sampler, parameters=all_parameters,
         knob="temperature", steps=no_steps, colour="tab:blue", baseline=True, continuer=ar_continuer)
MDLM = Arm("mdlm", model="mdlm", train=partial(train_baseline, model_class=MDLMBaseline),
           load=partial(load_baseline, model_class=MDLMBaseline), sampler=stepped_sampler, parameters=all_parameters,
           knob="temperature", steps=mdlm_steps, colour="tab:green", baseline=True, continuer=stepped_continuer)
# The alternative the paper argues against: the same model and training steps, but the latent space is trained
# first (gamma = 0) and frozen for the second half while the denoiser trains on it (train/run.py --latent_space fixed).
LDLM_FIXED = Arm("ldlm-fixed", model="ldlm-fixed", train=partial(train_ldlm, args=("--latent_space", "fixed")),
                 load=load_ldlm, sampler=partial(ldlm_sampler, knob_name="noise_scale"), parameters=ldlm_parameters,
                 knob="noise_scale (argmax tokens)", steps=ldlm_steps, colour="tab:gray", dashed=True)
LDLM_FIXED_SAMPLED = Arm("ldlm-fixed-sampled", model="ldlm-fixed",
                         train=partial(train_ldlm, args=("--latent_space", "fixed")), load=load_ldlm,
                         sampler=partial(ldlm_sampler, knob_name="temperature"), parameters=ldlm_parameters,
                         knob="token temperature (noise_scale 1)", steps=ldlm_steps, colour="tab:brown")
# Continuous diffusion without a learned latent space (benchmarks/cdcd.py), for LDLM's measured seconds.
CDCD = Arm("cdcd", model="cdcd", train=partial(train_baseline, model_class=CDCDBaseline),
           load=partial(load_baseline, model_class=CDCDBaseline), sampler=stepped_sampler, parameters=all_parameters,
           knob="temperature (every step's score interpolation, and the last draw)", steps=cdcd_steps, colour="tab:cyan",
           baseline=True)
# Prompts as conditioning: the same recipe trained to continue text (its denoiser cross-attends to the frozen LM's
# states of a random prefix; 10% of rows without one), measured in prompted tiers against LDLM that follows a prompt
# by guidance (the arms above on a prompt), AR and MDLM with the prompt fixed on its canvas.
CONDITIONAL_ARGS = ("--context_conditioning", "true", "--context_dropout", "0.1")
LDLM_CONDITIONAL = Arm("ldlm-conditional", model="ldlm-conditional", train=partial(train_ldlm, args=CONDITIONAL_ARGS),
                       load=load_ldlm, sampler=partial(ldlm_sampler, knob_name="noise_scale"),
                       parameters=ldlm_parameters, knob="noise_scale (argmax tokens)", steps=ldlm_steps,
                       colour="tab:olive", dashed=True, conditional=True,
                       continuer=partial(ldlm_continuer, knob_name="noise_scale"))
LDLM_CONDITIONAL_SAMPLED = Arm("ldlm-conditional-sampled", model="ldlm-conditional",
                               train=partial(train_ldlm, args=CONDITIONAL_ARGS), load=load_ldlm,
                               sampler=partial(ldlm_sampler, knob_name="temperature"), parameters=ldlm_parameters,
                               knob="token temperature (noise_scale 1)", steps=ldlm_steps, colour="navy",
                               conditional=True, continuer=partial(ldlm_continuer, knob_name="temperature"))
# The conditional model with classifier-free guidance at w = 2 (one denoiser call on twice the batch per step).
CFG_SCALE = 2.0
LDLM_CONDITIONAL_CFG = Arm("ldlm-conditional-cfg", model="ldlm-conditional",
                           train=partial(train_ldlm, args=CONDITIONAL_ARGS), load=load_ldlm,
                           sampler=partial(ldlm_sampler, knob_name="noise_scale"), parameters=ldlm_parameters,
                           knob=f"noise_scale (argmax tokens, context_guidance_scale {CFG_SCALE})", steps=ldlm_steps,
                           colour="gold", dashed=True, conditional=True,
                           continuer=partial(ldlm_continuer, knob_name="noise_scale",
                                             context_guidance_scale=CFG_SCALE))
# the order of a result's rows (new arms last)
ARMS = (LDLM, LDLM_SAMPLED, LDLM_DISTILLED, LDLM_DISTILLED_SAMPLED, LDLM_FIXED_SAMPLED, AR, MDLM, CDCD,
        LDLM_FIXED, LDLM_CONDITIONAL, LDLM_CONDITIONAL_SAMPLED, LDLM_CONDITIONAL_CFG)
# The claims of a result (benchmarks/intervals.py), each the best matched frontier of the LDLM arms on the left
# against that of the arm on the right: a jointly learned against a fixed latent space, decoding by decoding; then
# LDLM (either decoding) against continuous diffusion, masked diffusion and autoregression.
JOINT = (LDLM.name, LDLM_SAMPLED.name)
COMPARISONS = (((LDLM.name,), LDLM_FIXED.name), ((LDLM_SAMPLED.name,), LDLM_FIXED_SAMPLED.name),
               (JOINT, CDCD.name), (JOINT, MDLM.name), (JOINT, AR.name))

# A prompted tier's claims: conditional against guided LDLM, decoding by decoding (and with classifier-free
# guidance, argmax), then conditional LDLM (its best) against AR and MDLM continuing the same prompts.
CONDITIONAL = (LDLM_CONDITIONAL.name, LDLM_CONDITIONAL_SAMPLED.name, LDLM_CONDITIONAL_CFG.name)
PROMPTED_COMPARISONS = (((LDLM_CONDITIONAL.name,), LDLM.name), ((LDLM_CONDITIONAL_SAMPLED.name,), LDLM_SAMPLED.name),
                        ((LDLM_CONDITIONAL_CFG.name,), LDLM.name), (CONDITIONAL, AR.name), (CONDITIONAL, MDLM.name))

# The summary's LDLM arm: its knob is a token temperature like the baselines', and it reaches the data's entropy,
# which LDLM's argmax decoding does not at small budgets. A prompted tier's is the conditional model's.
HEADLINE = LDLM_SAMPLED
PROMPTED_HEADLINE = LDLM_CONDITIONAL_SAMPLED
# Each ablation is measured with both: argmax shows a collapse plainly; the token-temperature arm is matched.
ABLATED = (LDLM, LDLM_SAMPLED)
BASELINE_ARMS = tuple(arm.name for arm in ARMS if arm.baseline)

# The train/run.py switch that turns each recipe part off, next to the paper's claim.
ABLATIONS = {a.name: a for a in (
    Ablation("no_mse", ("--decoder_loss", "ce"), "MSE decoder loss keeps the latent space smooth"),
    Ablation("no_warmup", ("--gamma_warmup", "false"), "diffusion-to-encoder warmup prevents latent collapse"),
    Ablation("no_adaptive", ("--adaptive_timesteps", "false"), "adaptive timestep sampling balances training over t"),
    Ablation("no_decoder_noise", ("--decoder_noise_std", "0"), "decoder-input noise makes decoding robust to errors"),
)}


def arms_of(tier: dict) -> list[Arm]:
    """The arms a tier measures, in the order of its result's rows: in a prompted tier every arm that continues
    prompts; otherwise every arm but the conditional ones (and the distilled students only where it distils).
    A tier run with `--arms` (its `arms` setting) measures only those and LDLM's own two arms, which every run
    trains: LDLM's training seconds are every baseline's budget."""
    if tier.get("prompted"):
        arms = [arm for arm in ARMS if arm.continuer is not None]
    else:
        arms = [arm for arm in ARMS if not arm.conditional and (tier.get("distill") or not arm.distilled)]
    selected = tier.get("arms")
    return arms if selected is None else [arm for arm in arms if arm.name in selected or arm.model == LDLM.model]


def comparisons_of(tier: dict) -> tuple[tuple[tuple[str, ...], str], ...]:
    return PROMPTED_COMPARISONS if tier.get("prompted") else COMPARISONS


def headline_of(tier: dict) -> Arm:
    return PROMPTED_HEADLINE if tier.get("prompted") else HEADLINE


def ablations_of(tier: dict) -> list[Ablation]:
    return [ABLATIONS[name] for name in tier["ablations"]]


def ablation_arms(tier: dict) -> list[Arm]:
    """The ablated LDLM arms of a tier: each arm of `ABLATED` on each ablation's run."""
    return [arm.ablated(ablation) for ablation in ablations_of(tier) for arm in ABLATED]
