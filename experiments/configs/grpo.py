r"""Online RL on Countdown and the 3-token bandit (`jaxlm.algos.online`, `jaxlm.algos.pg`).

Run (default preset: GRPO on Countdown from the direct-answer SFT policy):

  python -m experiments.grpo --workdir /tmp/grpo
  python -m experiments.grpo --config experiments/configs/grpo.py:positive_only --workdir W
  python -m experiments.grpo --config experiments/configs/grpo.py:bandit --workdir /tmp/b \
      --config.rl.estimator=rloo        # grpo | dr_grpo | rloo | gae (PPO, critic "head")
  python -m experiments.grpo --config experiments/configs/grpo.py:smoke --workdir /tmp/g0

The default trains the search experiment's direct-answer policy first (its `policy` run,
`experiments/configs/search.py`), then GRPO. Measured results: see the bottom of this docstring.
"""

from jaxlm import config as config_lib
from jaxlm.algos import online

PRESETS = (None, "positive_only", "bandit", "smoke")


def get_config(arg: str | None = None):
  """Every field of `jaxlm.algos.online.Config`, then preset `arg`."""
  c = config_lib.config_dict(online.Config())
  # Countdown problems and the starting policy: the search experiment's default preset.
  c.countdown.update(num_numbers=(3, 4), max_number=12, max_target=50)
  c.countdown.policy.update(num_steps=3000, batch_size=64, lr=3e-3, warmup=50, log_every=250,
                            checkpoint_every=1000)
  c.rl.sampling.update(max_new_tokens=48, temperature=1.0)
  c.rl.train.update(num_steps=300, batch_size=256, lr=3e-4, warmup=10, log_every=10,
                    checkpoint_every=50)
  c.rl.update(group_size=8, estimator="grpo", aggregation="token_mean", clip_low=0.2,
              clip_high=0.28, epochs=1, minibatches=2, eval_every=50, eval_samples=4)
  if arg in (None, "", "default"):
    pass
  elif arg == "positive_only":
    c.update(name="grpo_positive_only")
    c.rl.advantage_mode = "positive_only"
  elif arg == "bandit":
    c.update(task="bandit", name="bandit")
    c.rl.model.update(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=8)
    c.rl.sampling.update(max_new_tokens=3)
    c.rl.train.update(num_steps=400, batch_size=64, lr=3e-3, warmup=0, log_every=10,
                      checkpoint_every=200)
    c.rl.update(group_size=8, entropy_coef=0.1, clip_high=0.2, minibatches=1, eval_every=100,
                eval_samples=8, critic="none")
  elif arg == "smoke":
    c.countdown.update(train_problems=64, eval_problems=8, solutions_per_problem=1)
    c.countdown.model.update(d_model=32, d_ff=64)
    c.countdown.policy.update(num_steps=4, batch_size=8, log_every=2, checkpoint_every=100)
    c.rl.train.update(num_steps=2, batch_size=16, log_every=1, checkpoint_every=100)
    c.rl.update(group_size=4, eval_samples=2, minibatches=2)
    c.rl.sampling.update(max_new_tokens=16)
  else:
    raise ValueError(f"unknown grpo preset {arg!r}; expected one of {PRESETS}")
  return c
