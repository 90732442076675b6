r"""Context distillation (Snell, Klein & Zhong 2022) on a cipher and on scratchpad addition.

Run (default preset: experiments (1) instruction, (2) scratchpad and (3) examples):

  python -m experiments.context_distill --config experiments/configs/context_distill.py \
      --workdir /tmp/context_distill

Other presets and overrides:

  python -m experiments.context_distill --config experiments/configs/context_distill.py:smoke \
      --workdir /tmp/cd_smoke
  python -m experiments.context_distill --config experiments/configs/context_distill.py \
      --config.experiments='("scratchpad",)' --workdir /tmp/cd_scratchpad

Runtime (MEASURED, 2 cores shared with other jobs at load average 11-14, nice 5): the default
preset did NOT meet the 10-minute target here: "instruction" alone took 20 min wall (meta-training
1,500 steps at ~1.5-4 steps/s, two 200-step distillations, ~60 s of compilation per run), and
"scratchpad" 23 min (1,000 scratchpad steps on 42-token rows at ~1 step/s, then two 200-step
runs). Total about 43 min at that load; CPU time is a fraction of it (the smoke preset takes
9.5 min wall but 1.5 min user CPU at the same load).

Result (MEASURED, default preset, exact-match accuracy on 256 held-out inputs, greedy):

  (1) instruction (cipher rule "fcabed" distilled, KL variant, 512 unlabeled words):
      with context 1.00 -> 0.00, without context 0.00 -> 0.75 (target: approach 1.00; missed
      by 0.25). Distilling a second rule over it then fails (rule 2 without context 0.06),
      because the student FORGOT how to read a rule in its context (with context 0.00 after
      distillation): its teacher for rule 2 is itself, and it no longer follows the rule.
      Composition works mechanically (rule2_teacher_is_rule1_student: true).
      With 800 meta-training steps (teacher with context only 0.18) distillation took the
      student to 0.125 without context, i.e. most of the way to its teacher.
  (2) scratchpad (3-digit addition, sampled variant, 512 unlabeled pairs, 200 steps): teacher
      with scratchpad 1.00 (its 512 answers all correct); direct 0.00 -> 0.05 after distilling,
      equal to direct fine-tuning on the same 512 TRUE pairs (0.05): with a perfect greedy
      teacher the two training sets are identical. With context after distillation 0.00
      (forgotten, as in (1)). 200 steps on 512 pairs are too few to learn direct addition.
  (3) examples: not measured at full scale (preset "full"; ran only in the smoke preset).

Presets: default (experiments (1) and (2)); full (adds (3): meta-training also on k-example
contexts, 3,000 steps; not measured); smoke (CI: tiny model, a few steps; numbers meaningless).
"""

from jaxlm import config as config_lib
from jaxlm.algos import context_distill


def get_config(arg: str | None = None):
  """Every field of `jaxlm.algos.context_distill.Config`, then preset `arg` in {None/"default",
  "full", "smoke"}."""
  c = config_lib.config_dict(context_distill.Config())
  if arg in (None, "", "default"):
    pass
  elif arg == "full":
    c.update(experiments=context_distill.EXPERIMENTS, context_mix=(0.4, 0.4, 0.2))
    c.meta_train.update(num_steps=3000)
  elif arg == "smoke":
    c.model.update(d_model=32, n_layers=1, n_heads=2, d_ff=64)
    c.update(experiments=context_distill.EXPERIMENTS, context_mix=(0.4, 0.4, 0.2),
             meta_rows=256, addition_rows=256, distill_inputs=16, eval_size=16)
    for run in (c.meta_train, c.addition_train, c.distill_train):
      run.update(num_steps=2, batch_size=8, warmup=1, log_every=1)
  else:
    raise ValueError(f"unknown context_distill preset {arg!r}; choose default, full or smoke")
  return c
