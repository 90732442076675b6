r"""PPO on LMRL-Gym Maze from the BC policy (`jaxlm.algos.online` task "env", `jaxlm.algos.pg`).

Run:
  python -m experiments.ppo --workdir /tmp/ppo                    # FO Maze (default)
  python -m experiments.ppo --config experiments/configs/ppo.py:maze_po --workdir W
  python -m experiments.ppo --config experiments/configs/ppo.py:smoke --workdir /tmp/p0

The BC start is the ILQL job's BC baseline (`ilql.baseline_configs`: the same 1000 offline
episodes, 2-layer d=64 transformer, 400 updates), so "bc" here is the ILQL table's BC row.
PPO then plays fresh episodes with that policy (free-text moves decoded by jaxlm.generate,
an illegal move costs -4), one row per turn, GAE across the turns of an episode.

Settings (LMRL-Gym's PPO values as the starting point: gamma 0.99, lambda 0.95, clip 0.2,
value coefficient 0.5, KL 0.001; lr 1e-4 rather than 1e-5 for a model trained from scratch):
100 rollout batches of 16 episodes at temperature 1, a separate critic transformer initialised
from the BC policy, rewards x 0.1 for the critic's targets, k1 KL in the reward, 2 epochs x 2
minibatches per batch, token-mean loss; evaluation on the ILQL job's 64 episode seeds.

Measured (jax 0.10.2, 2 CPU cores shared with other jobs, seed 0; normalised score +- 95% CI
on 64 episodes; LMRL-Gym Table 2 for orientation):
  preset     BC (start)       PPO                         runtime    LMRL-Gym BC / PPO
  maze_fo    17.0 +- 8.3      54.9 +- 8.8 (success 0.81)  15 min     58.2 / 79.7
  maze_po    9.9 +- 6.7       53.8 +- 9.0 (success 0.73)  37 min     (PPO 42.4, ILQL 76.3)
PPO's evaluation during the FO run (every 25 batches): 17.0, 52.6, 61.4, 51.8, 54.9 - the
gain comes in the first 25-50 batches, then the score stays level within its CI (+-8).
maze_po reads 8 transitions of context (96-token rows; the ILQL job's PO windows) and plays
60 batches of 8 episodes (a PO turn row is ~4x an FO one and the BC start rarely finishes its
episodes, so a batch costs ~4x): evaluations every 20 batches 9.9, 44.4, 56.8, 53.8. Both
runtimes were measured with two or three other jobs on the 2 cores (not measured alone).
PPO beats its BC start on both mazes (by ~4 CIs). Against LMRL-Gym: below their FO PPO (79.7)
and FO BC (58.2), above their PO PPO (42.4); our BC start is far weaker (17 vs 58 on FO): a
2-layer d=64 model trained from scratch for 400 updates (the ILQL table's BC row), theirs GPT-2.
"""

from jaxlm import config as config_lib
from jaxlm.algos import ilql
from jaxlm.algos import online

PRESETS = (None, "maze_po", "smoke")


def get_config(arg: str | None = None):
  """Every field of `jaxlm.algos.online.Config` for task "env", then preset `arg`."""
  c = config_lib.config_dict(online.Config(task="env", name="ppo"))
  c.bc = config_lib.config_dict(ilql.baseline_configs(ilql.Config())["bc"])
  c.rl.sampling.update(max_new_tokens=4, temperature=1.0)
  c.rl.train.update(num_steps=100, batch_size=16, lr=1e-4, warmup=0, log_every=5,
                    checkpoint_every=25)
  c.rl.update(group_size=1, estimator="gae", critic="separate", gamma=0.99, gae_lambda=0.95,
              clip_low=0.2, clip_high=0.2, vf_coef=0.5, vf_clip=None, reward_scale=0.1,
              kl_coef=0.001,
              kl_estimator="k1", kl_placement="in_reward", epochs=2, minibatches=2,
              eval_every=25, eval_episodes=64, aggregation="token_mean")
  if arg in (None, "", "default", "maze_fo"):
    pass
  elif arg == "maze_po":
    c.bc.update(env="maze_po", max_len=96, window_transitions=8)
    c.rl.train.update(num_steps=60, batch_size=8, checkpoint_every=10)
    c.rl.eval_every = 20
  elif arg == "smoke":
    c.bc.update(num_trajectories=40, eval_episodes=4)
    c.bc.model.update(d_model=32, n_layers=1, n_heads=2, d_ff=64)
    c.bc.train.update(num_steps=4, batch_size=8, log_every=2)
    c.rl.train.update(num_steps=2, batch_size=4, log_every=1)
    c.rl.update(eval_every=0, eval_episodes=4)
  else:
    raise ValueError(f"unknown ppo preset {arg!r}; expected one of {PRESETS}")
  return c
