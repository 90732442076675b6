r"""CALM (Snell et al. 2022) on synthetic flight booking: BC vs relabel vs aux head vs both.

Run (default preset: 4 variants x 1 seed x 1,200 steps of 32 dialogues, a d=64, 3-layer,
4-head model; full: the same in 3 seeds, seeds 0-2, seed 0 being exactly the default run):

  python -m experiments.calm --config experiments/configs/calm.py --workdir /tmp/calm
  python -m experiments.calm --config experiments/configs/calm.py:full --workdir /tmp/calm_full
  python -m experiments.calm --config experiments/configs/calm.py:long --workdir /tmp/calm_long

Other presets and overrides:

  python -m experiments.calm --config experiments/configs/calm.py:smoke --workdir /tmp/calm_s
  python -m experiments.calm --config experiments/configs/calm.py --config.task.noise=0.5 \
      --config.variants='("bc", "calm")' --workdir /tmp/calm_noise

Runtime (MEASURED 2026-12-04, nice 5, load average 8-13 from other jobs): full 53.5 min wall,
17.2 min CPU (user 999 s + sys 32 s; ~4.5 min wall per variant and seed at 3-4 steps/s,
~45 s of compilation and 7 held-out evaluations included). The default (its seed-0 third)
took 28 min wall while another experiment of mine ran beside it, ~5.7 min CPU: OVER the
15-minute budget at this load;
on 2 quiet cores it should take about its CPU time (not measured: the machine was never quiet).

Measured result (full preset; 500 held-out dialogues with fresh tables, the same for every
seed; success = the greedy final action is valid; mean +- SE over the 3 seeds, then per seed):

  bc       0.466 +- 0.032   (0.442, 0.426, 0.530)
  relabel  0.464 +- 0.022   (0.442, 0.442, 0.508)
  aux      0.471 +- 0.026   (0.436, 0.456, 0.522)
  calm     0.527 +- 0.049   (0.444, 0.612, 0.526)
  calm - bc (paired by seed) +0.061 +- 0.062
  best fixed action 0.396; the logged agent 0.699; relabeling makes 0.936 of logged final
  actions valid. Default preset = seed 0: bc 0.442, relabel 0.442, aux 0.436, calm 0.444.

The aux head's accuracy rises with dialogue position (mean of 3 seeds): aux 0.350 (table) ->
0.429 -> 0.520 -> 0.556 (turns 1-3) -> 0.587 ("agent:"); calm 0.350 -> 0.437 -> 0.518 -> 0.562
-> 0.591. TARGET NOT SHOWN at 1,200 steps: CALM is ahead of BC by one standard error only (+0.061 +-
0.062; one seed of three carries it), and relabel or aux alone are level with BC (see preset
long below: with 3,000 steps it is shown).

Why (diagnosed on seed 0; scripts not kept): no variant learns to read the table within
1,200 steps. The final policies are nearly constant: on the 500 held-out dialogues BC books flight 1
438 times and says "no flight" 61 times (calm 426/62, aux 399/59), i.e. a count-of-constraints
heuristic; BC is valid on only 0.476 of its OWN training dialogues, so it is underfitting, not
memorising the noisy labels (relabeling, a data-quality fix, then has nothing to act on).
Success curves (calm.png) sit at a constant action (0.376) to step 400, jump to such
heuristics (0.45-0.55) around step 600 and wander there. Single-seed probes that did not
change this: RoPE instead of learned positions (bc 0.436 at 1,200 steps, same curve);
aux_weight 5 (the aux loss stayed at ~1.0 for 500 steps); d=64 4 layers with batch 64 (1.4
steps/s on this machine: stopped before it finished). The lookup the task needs (up to three
stated constraints, given after the table, conjoined against every row) is a multi-hop circuit
that this model does not find in ~1,200 steps; the previous default (d=128, 2 layers, 600
steps: bc 0.476, relabel 0.494, aux 0.542, calm 0.488, one seed on another held-out set) was
in the same regime. Checked and correct: relabeled batches really carry the relabeled table
(tests/calm_test.py parses the table back out of the tokens; the aux labels are its valid
set), and the aux loss is -log of the summed factored probability p(status) p(slot) of the
valid actions (numpy reference test). The aux targets are the valid actions of the logged
customer goal under the table the model sees (the paper's correct action for the context),
so the aux-only variant also trains its head on clean labels.

Preset long (all four variants, 3,000 steps, 3 seeds; MEASURED 2026-12-04 with its one
command, 19.6 min wall on the 2 cores with no other job; same held-out set):

  bc       0.479 +- 0.006   (0.466, 0.486, 0.484)
  relabel  0.519 +- 0.045   (0.436, 0.592, 0.530)
  aux      0.718 +- 0.088   (0.800, 0.812, 0.542)
  calm     0.658 +- 0.058   (0.634, 0.768, 0.572)
  calm - bc (paired) +0.179 +- 0.056 (+0.168, +0.282, +0.088: every seed positive)
  aux accuracy by position (mean of 3): aux 0.350 -> 0.437 -> 0.595 -> 0.717 -> 0.787;
  calm 0.350 -> 0.437 -> 0.568 -> 0.644 -> 0.693.

TARGET MET at 3,000 steps: CALM beats conditional BC on held-out tables by 0.18 (3.2 SE). BC
is still at the heuristic after 3,000 steps, while the variants with the aux head start reading
the table between steps 1,500 and 3,000. The ablation says the aux head carries the gain:
aux alone 0.718 vs calm 0.658 (within one SE of each other), relabel alone 0.519 (+0.04 over
BC, within one SE). Relabeling on top of the aux head does not help here, plausibly because
the aux labels already come from the table the model sees (clean labels), which is the
relabeling's job.

Writes, per seed and variant, <workdir>/seed<s>/<variant>/{metrics.jsonl, tb/,
learning_curve.png, checkpoints/}, and results.json (the ablation table: mean, SE and per-seed
success per variant, the paired calm - bc difference) and calm.png (success by variant with
the seeds, aux accuracy by dialogue position, mean success over training) in <workdir>.
Presets: default, full (3 seeds), long (all variants, 3,000 steps, 3 seeds), smoke (CI: the
calm variant only, 4 steps of a d=32 model; most of its time is compilation).
"""

from jaxlm import config as config_lib
from jaxlm.algos import calm

PRESETS = (None, "full", "long", "smoke")


def get_config(arg: str | None = None):
  """Every field of `jaxlm.algos.calm.Config` (defaults: the default preset), then preset `arg`
  in {None/"default", "full", "long", "smoke"}."""
  c = config_lib.config_dict(calm.Config())
  if arg in (None, "", "default"):
    pass
  elif arg == "full":  # the claim: every variant in 3 replicates (seed 0 is the default run)
    c.seeds = 3
  elif arg == "long":  # the ablation at 2.5x the steps, 3 seeds (docstring: measured result)
    c.update(eval_every=500, seeds=3)
    c.train.update(num_steps=3000, checkpoint_every=1000)
  elif arg == "smoke":
    c.model.update(d_model=32, n_layers=1, n_heads=2, d_ff=64)
    c.update(variants=("calm",), num_dialogues=64, eval_dialogues=8, eval_every=0)
    c.train.update(batch_size=8, num_steps=4, warmup=1, log_every=2, checkpoint_every=2)
  else:
    raise ValueError(f"unknown calm preset {arg!r}; choose default, full, long or smoke")
  return c
