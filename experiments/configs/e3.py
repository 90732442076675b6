r"""e3 on Countdown (`jaxlm.algos.e3`): attempt-chain SFT, then RL in a coupled curriculum.

Run:
  python -m experiments.e3 --workdir /tmp/e3                        # default
  python -m experiments.e3 --config experiments/configs/e3.py:smoke --workdir /tmp/e3s

Default: a 2-layer d=64 character policy learns attempt chains (each with its
exact verdict; 1-3 attempts, rows up to 320 tokens) on 4000 training problems with 3 or 4 starting numbers from 1..12 (targets
10..50), 1000 SFT steps; then, for advantage_mode "full" and "positive_only", GRPO from that
policy through two stages: 3 numbers then 4, 40 rollout batches of 8 prompts x 8 traces each,
the budget of each stage the smallest of 64/128/192/256 tokens that truncates at most 20% of 64
probe traces; evaluation on the 100 validation problems at the last stage's budget (1x) and at
twice it (2x), 4 samples each.

Measured (jax 0.10.2, 2 cores shared with 2-4 other jobs, load ~9; seed 0), TARGETS NOT REACHED:
the SFT stage took 40 min here (1000 steps, loss 1.11 -> 0.14) and its policy writes well-formed
attempt chains (stage 0 probe: budget 192 chosen; 1.9 attempts, 139 tokens per trace) whose
verdict lines follow the grammar, but its arithmetic is wrong ("9*3=32", then "verify 32
goal"), so held-out pass@1 was 0.00 and every RL group had zero reward variance
(zero_variance_share 1.0 for all 40 batches of the "full" run's first stage): no policy
gradient at all. The run was stopped there. What limits it: a 0.1M-parameter policy trained
from scratch on long rows sees too little arithmetic; the direct-answer policy of
experiments/configs/search.py needs 3000 steps of short rows for pass@1 0.16. Next: start the
attempt-chain SFT from that policy (as search.py's trace policy does with trace_init="policy")
or train longer, then RL. The smoke preset runs the whole pipeline in about a minute.

Preset "policy" (MEASURED 2026-12-04, `python -m experiments.e3 --config
experiments/configs/e3.py:policy --workdir /tmp/e3p`; 52 min wall, 27 min CPU, mostly at nice 15
beside other jobs): the attempt-chain SFT starts from the direct-answer policy (3000 steps x 64,
loss 0.13), 1000 SFT steps (loss 0.057; all 4000 traces fit 320 tokens). The start now has a
signal: SFT pass@1 0.218 at the 1x budget and 0.228 at 2x (2.88 attempts, 195 tokens per
trace). The probe chose 256 tokens (the largest budget) for both stages. RL (40 batches per
stage): "full" stage 0 (3 numbers) train reward 0.31 -> 0.44 with held-out pass@1 flat at 0.20;
stage 1 (4 numbers) reward 0.00-0.08, zero-variance groups 62-100%. Final, 100 validation
problems x 4 samples: full 0.100 at 1x / 0.100 at 2x (2.49 attempts, 182 tokens);
positive_only 0.163 / 0.165 (2.51 attempts, 175 tokens); sft 0.218 / 0.228. TARGETS NOT
REACHED: RL lowers accuracy in both modes, and with negative gradients the attempts and the
trace length shrink (2.88 -> 2.49, 195 -> 182) instead of growing; 2x > 1x only by 0.01 (SFT,
positive_only), 0 for full. What limits it: stage 1's 4-number problems give almost no reward
to a policy at pass@1 ~0.1 there (most groups all-zero), and 80 small-batch steps at lr 3e-4
move a 0.1M-parameter policy mostly by shortening its traces. Next: a curriculum that stays on
3 numbers until accuracy there rises, more prompts per step (fewer zero-variance groups), a
lower lr, and a larger policy.
"""

from jaxlm import config as config_lib
from jaxlm.algos import e3

PRESETS = (None, "policy", "smoke")


def get_config(arg: str | None = None):
  """Every field of `jaxlm.algos.e3.Config`, then preset `arg`."""
  c = config_lib.config_dict(e3.Config())
  c.countdown.update(num_numbers=(3, 4), max_number=12, max_target=50, train_problems=4000)
  c.countdown.update(trace_init="scratch")
  c.countdown.trace_policy.update(num_steps=1000, batch_size=32, lr=3e-3, warmup=50,
                                  log_every=100, checkpoint_every=500)
  c.rl.sampling.update(temperature=1.0)
  c.rl.train.update(batch_size=64, lr=3e-4, warmup=5, log_every=5, checkpoint_every=20)
  c.rl.update(group_size=8, estimator="grpo", aggregation="token_mean", clip_low=0.2,
              clip_high=0.28, minibatches=2, eval_every=10)
  c.stages = ((3, 40), (4, 40))
  if arg in (None, "", "default"):
    pass
  elif arg == "policy":  # the attempt-chain SFT starts from the direct-answer policy
    c.countdown.update(trace_init="policy")
    c.countdown.policy.update(num_steps=3000, batch_size=64, lr=3e-3, log_every=250,
                              checkpoint_every=1000)
    c.countdown.trace_policy.update(num_steps=1500, log_every=250)
    c.update(max_attempts=4, give_up=0.2, sft_max_len=384, budgets=(128, 192, 256, 320, 384),
             stages=((3, 60), (4, 60)))
    c.rl.train.update(batch_size=128, lr=1e-4)  # 16 prompts x 8 traces
  elif arg == "smoke":
    c.countdown.update(train_problems=64, eval_problems=8)
    c.countdown.model.update(d_model=32, d_ff=64)
    c.countdown.update(trace_init="policy")
    for run in (c.countdown.policy, c.countdown.trace_policy):
      run.update(num_steps=4, batch_size=8, log_every=2, checkpoint_every=100)
    c.rl.train.update(batch_size=8, log_every=1, checkpoint_every=100)
    c.rl.update(group_size=4, minibatches=1, eval_every=0)
    # probe_problems = eval_problems and eval_samples = 1: the probe, the evaluations during
    # RL and the final 1x evaluation are one compiled sampler (same rows, same budget).
    c.update(stages=((3, 2), (4, 1)), budgets=(16, 24), probe_problems=8, eval_samples=1,
             sft_max_len=400, budget_multiples=(1.0, 2.0))
  else:
    raise ValueError(f"unknown e3 preset {arg!r}; expected one of {PRESETS}")
  return c
