r"""Context distillation (Snell, Klein & Zhong 2022) on a cipher and on scratchpad addition.

Run (default preset: experiments (1) instruction and (2) scratchpad):

  python -m experiments.context_distill --config experiments/configs/context_distill.py \
      --workdir /tmp/context_distill

Other presets and overrides:

  python -m experiments.context_distill --config experiments/configs/context_distill.py:smoke \
      --workdir /tmp/cd_smoke
  python -m experiments.context_distill --config experiments/configs/context_distill.py \
      --config.experiments='("scratchpad",)' --workdir /tmp/cd_scratchpad
  python -m experiments.context_distill \
      --config experiments/configs/context_distill.py:examples --workdir /tmp/cd_examples

Runtime (MEASURED 2026-12-04, default preset, nice 5, 2 cores shared with other jobs at load
average ~9-10 from `uptime`): 14.9 min wall, 8.8 min CPU (user 468 s + sys 62 s, from
`/usr/bin/time -v`; the job got 59% of one core on average). Parts: meta-training 1,500 steps
5.1 min (4.9 steps/s), the two 400-step cipher distillations ~1.2 min each, scratchpad
pretraining 400 steps 1.8 min, its distillation and the direct fine-tune 600 steps 2.3 min each;
~10-60 s of compilation per run at this load. On 2 quiet cores the wall time should be about the
CPU time or less (not measured: the machine was never quiet). The smoke preset (one experiment,
one step per run, a 16-wide model) keeps tests/context_distill_test.py at 46 s CPU with a cold
JAX compilation cache (124 s wall at load 8) and 17-25 s CPU (18-26 s wall) with a warm one.

Result (MEASURED, default preset, exact-match accuracy of greedy answers on 256 held-out inputs):

  (1) instruction (cipher rule "fcabed" distilled, KL variant, 512 unlabeled words, 400 steps
      at lr 3e-3, replay_share 0.5: half of each batch replays meta-training rows that have a
      rule context, with the KL to the frozen teacher on those whole rows):
      rule 1: with context 1.00 -> 1.00 (kept), without context 0.00 -> 1.00 (target >= 0.9: met).
      Then rule 2 "dcbafe" distilled by that student acting as its own teacher with context:
      rule 2 without context 1.00, with context 1.00; rule 1 with context still 1.00; rule 1
      without context 0.00, as it must be: both rules answer the same context-free inputs, so
      the second distillation overwrites the first (composition of conflicting rules is
      sequential, not additive). rule2_teacher_is_rule1_student: true.
      Without replay (the first slice: 200 steps at lr 1e-3, all rows distillation rows) rule 1
      went to 0.75 without context and 0.00 with context, and rule 2 then to 0.06 without
      context. With replay but the old run (200 steps, lr 1e-3: half as many distillation rows)
      rule 1 reached only 0.21 without context (training KL still 0.34, token agreement 0.87:
      too few updates); 400 steps at lr 3e-3 reach KL ~0.003 and 1.00.
  (2) scratchpad (2-digit addition, "sampled" variant, 2,048 unlabeled pairs, 600 steps,
      replay_share 0.5 of scratchpad rows; evaluation pairs are excluded from every training
      set): teacher with scratchpad 1.00 (its 2,048 answers all correct); direct answers
      0.00 before -> 0.95 after distillation (0.949), with the scratchpad kept at
      1.00. Direct fine-tuning on the same 2,048 TRUE pairs (same replay, steps and batch):
      0.95 (0.949, identical). With a perfect greedy teacher the sampled variant's training
      rows ARE the true pairs, so the two must match; the interesting numbers are direct
      accuracy before (0.00) vs after distillation (0.95) vs the teacher with its scratchpad
      (1.00). The first slice (3-digit addition, 512 pairs, 200 steps) reached only 0.05.
  (3) examples (preset "examples", MEASURED 2026-12-04; k = 3 worked examples of a new rule,
      "fbdc=edfa;eafd=cbef;faae=ebbc;", which between them show all 6 letters of the rule;
      its own meta-model: 3,000 steps with context_mix (0.4, 0.4, 0.2); KL distillation and
      the GD-on-k baseline 400 steps each at lr 3e-3, replay_share 0.5; 256 held-out words;
      exact match, then in brackets the share of answer letters right, chance = 1/6 = 0.167):
      meta-model with the examples in context 0.00 (0.09), without context 0.00 (0.16);
      after distilling the examples: without context 0.00 (0.15), with them 0.00 (0.08);
      GD on the 3 examples (true rows, no context): without context 0.00 (0.22), with them
      0.00 (0.26). NO ANSWER at this size: the teacher never learned to read example
      contexts (its letter accuracy with them is below chance), so there is nothing to
      distil; the paper's claim (distilling k examples beats GD on them) is neither shown
      nor refuted. The same meta-model follows a written rule only 0.17 of the time (vs
      1.00 for the default preset's meta-model, 1,500 steps at mix (0.8, 0, 0.2)): the 40%
      example rows (a harder lookup: find the query letter among the 12 example letters and
      copy the letter 5 positions later) dilute the rule signal. Its meta-training loss sat
      at the uniform plateau (1.43) until step ~850, then only reached ~1.0 by step 3,000.
      Runtime: 55.3 min wall at load average 9-13 (user 768 s + sys 96 s = 14.4 min CPU);
      meta-training 46 min of it (1.1-1.4 steps/s). GD on the k examples does learn some of
      the 12 letter pairs it sees (0.22 > 0.167). Next: a meta-model that reads examples
      needs more steps, more layers (this lookup is an induction-head composition) or a
      curriculum (identity rules already on; e.g. more example rows, k = 6).
      Two more meta-models tried (2026-12-04, 2 cores shared with one other job), neither
      reads examples: mix (0.2, 0.6, 0.2) with rotary positions, 6,000 steps (23.4 min wall,
      22.5 min CPU): with the examples 0.008 exact (letters 0.21, chance 0.167), the written
      rule 0.012; after distilling them 0.008 (0.20) without context; GD on the 3 examples
      0.023 (0.38) without context. Mix (0.1, 0.7, 0.2), 3 layers, 8,000 steps: training loss
      still 1.35 at step 3,600 (stopped). So neither more example rows, rotary positions, a
      third layer nor twice the steps gets a d=128 model past the lookup; the experiment stays
      inconclusive at this size.

Presets: default (experiments (1) and (2)); examples (experiment (3) alone, above: its own
meta-model with example contexts, 3,000 steps; ~55 min wall on the loaded machine, so not in
the default); full (all three, one meta-model for (1) and (3) with the examples preset's mix
and steps; not measured); smoke (CI: experiment (1) only, one step per run, a 16-wide
one-layer model; numbers meaningless).
"""

from jaxlm import config as config_lib
from jaxlm.algos import context_distill_experiments

PRESETS = (None, "examples", "full", "smoke")


def get_config(arg: str | None = None):
  """Every field of `jaxlm.algos.context_distill_experiments.Config`, then preset `arg` in
  {None/"default", "examples", "full", "smoke"}."""
  c = config_lib.config_dict(context_distill_experiments.Config())
  if arg in (None, "", "default"):
    pass
  elif arg == "examples":  # experiment (3) alone: its own meta-model (example contexts)
    c.update(experiments=("examples",), context_mix=(0.4, 0.4, 0.2))
    c.meta_train.update(num_steps=3000)
  elif arg == "full":
    c.update(experiments=context_distill_experiments.EXPERIMENTS, context_mix=(0.4, 0.4, 0.2))
    c.meta_train.update(num_steps=3000)
  elif arg == "smoke":  # the fewest compilations: one experiment, one step per run
    c.model.update(d_model=16, n_layers=1, n_heads=2, d_ff=32)
    c.update(experiments=("instruction",), meta_rows=64, addition_rows=64, distill_inputs=8,
             scratchpad_inputs=8, eval_size=8)
    for run in (c.meta_train, c.addition_train, c.distill_train, c.scratchpad_train):
      run.update(num_steps=1, batch_size=8, warmup=0, log_every=1)
  else:
    raise ValueError(f"unknown context_distill preset {arg!r}; choose default, examples, full "
                     "or smoke")
  return c
