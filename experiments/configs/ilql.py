"""ILQL on LMRL-Gym text games, with BC, filtered BC and MC-returns baselines on the same data.

Run (the README's main job):
  python -m experiments.ilql --workdir /tmp/ilql
  python -m experiments.ilql --config experiments/configs/ilql.py:maze_fo --workdir W [--resume]

Presets:
  maze_fo (default)  fully observed double-T Maze, 1000 episodes (90% random walkers, 10%
                     epsilon-BFS), phrase tokens (a move or a coordinate is one token), 2-layer
                     d=64 transformers from scratch, 5000 MC and ILQL updates (value heads in
                     units of the data's return std, jaxlm.models.heads). 5m53s on 2 CPU cores,
                     8m53s on one core. Measured (64 episodes per policy, normalised score +- 95%
                     CI, beta 2 reported):
                       seed 0: BC 17.0 +- 8.3, filtered BC 82.6 +- 7.1, MC 39.0 +- 11.5,
                               ILQL 99.1 +- 0.6 (success 1.00; beta 8 / 32: 99.3 / 99.3)
                       seed 1: BC 27.4, filtered BC 92.6, MC 85.5, ILQL 100.0 (beta 8: 100.1)
                       seed 2 (ILQL only): beta 2 / 8: 100.1 / 100.2
                     LMRL-Gym reports ILQL 99.9, MC 75.0, %BC 68.9, BC 58.2. ILQL needs about
                     22 Bellman backups to carry the goal to the far cells (tabular expectile
                     iteration on this data); at batch 32 that took ~4000 updates: with 1000 the
                     far cells' values were still flat (ILQL ~10-57).
  maze_po            partially observed Maze (walls only; whole episodes need longer windows).
  lmrl_gym_gpt2      GPT-2 small from a local HF checkpoint (--config.hf_model=DIR), BPE
  lmrl_gym_gpt2_po   tokens, 12 transitions per 1024-token window, batch 128, lr 1e-4, 20k
                     updates (FO / PO Maze). For accelerators (hours on a GPU/TPU host; not
                     runnable on a laptop CPU); these are our settings at LMRL-Gym's scale,
                     not numbers copied from their repository. Not measured here.
  wordle             Wordle on a 100-word subset (wordle_words=100: answers and valid guesses
                     from jaxlm.envs.wordle.word_subset, scored against that subset's own
                     constants: min -6, data mean -3.28, solver -1.62); free-text guesses decoded
                     token by token with jaxlm.generate, char tokens, whole episodes in one
                     136-token window, 10k episodes, d=128 transformers from scratch, 1000 BC /
                     700 MC and ILQL updates, 128 evaluation episodes. `python -m experiments.ilql
                     --config experiments/configs/ilql.py:wordle --workdir W`: 22 min on one CPU
                     core. Measured (raw return +- 95% CI, normalised score; ILQL at beta 4):
                       seed 0: BC -4.67 +- 0.36 (30.2), filtered BC -4.08 (45.7),
                               MC -5.83 (4.2), ILQL -4.56 +- 0.37 (32.7)
                       seed 1: BC -5.05 +- 0.33 (22.0), filtered BC -4.26 (41.5),
                               MC -5.91 (2.3), ILQL -4.51 +- 0.38 (34.2)
                     ILQL > BC on both seeds (pooled -4.54 vs -4.86, ~1.8 standard errors) but
                     below filtered BC; ILQL's own LM head (beta 0) scores -4.91 / -5.02, so the
                     Q - V term adds 0.3-0.5 (beta 1 / 16 are seed-dependent: -4.45 / -4.34 on
                     seed 0, -5.09 / -4.90 on seed 1). MC's LM head stays undertrained at 700
                     updates (beta 0: -5.95). On the whole 2,943-word list (wordle_words=0) a
                     char model trained on this budget never learns the lexicon: every algorithm
                     -6.00 (10-37% valid guesses). LMRL-Gym (GPT-2, full list, far more compute)
                     reports ILQL -2.04, MC -2.16, BC -2.81; the scripted solver -2.58 here.
  wordle_smoke       the wordle settings at smoke size (tests).
  smoke              seconds-long run for tests.
"""

from jaxlm import config as config_lib
from jaxlm.algos import ilql

PRESETS = ("maze_fo", "maze_po", "lmrl_gym_gpt2", "lmrl_gym_gpt2_po", "wordle", "wordle_smoke",
           "smoke")


def get_config(preset: str | None = None):
  """Every field of `jaxlm.algos.ilql.Config` (defaults: the maze_fo preset), then the preset's."""
  c = config_lib.config_dict(ilql.Config())
  if preset in (None, "", "maze_fo"):
    pass
  elif preset == "maze_po":
    c.env, c.max_len, c.window_transitions = "maze_po", 96, 8
  elif preset in ("lmrl_gym_gpt2", "lmrl_gym_gpt2_po"):
    # GPT-2 small from HF weights, BPE tokens, whole episodes in one window as in LMRL-Gym.
    # Pass the checkpoint: --config.hf_model=/path/to/gpt2 (AutoModelForCausalLM
    # .from_pretrained("gpt2").save_pretrained(path) plus its tokenizer). Accelerators only.
    c.env = "maze_fo" if preset == "lmrl_gym_gpt2" else "maze_po"
    c.max_len, c.window_transitions, c.bc_steps = 1024, 12, 5_000
    c.train.update(batch_size=128, num_steps=20_000, lr=1e-4, warmup=500, log_every=200,
                   checkpoint_every=2000)
    c.polyak, c.cql_weight, c.tau, c.betas = 0.005, 0.01, 0.7, (16.0, 0.0, 4.0, 64.0)
    c.eval_episodes = 256
  elif preset in ("wordle", "wordle_smoke"):
    # Whole episodes per window: BOS + "Wordle:\n" + 6 x ("c r a n e\n" + "b y g b b\n") = 129.
    c.env, c.tokenizer, c.max_len, c.window_transitions = "wordle", "char", 136, 6
    c.wordle_words, c.num_trajectories = 100, 10_000
    c.model.update(d_model=128, d_ff=512)
    c.train.update(num_steps=700, checkpoint_every=1000, lr=3e-3)
    c.bc_steps, c.betas, c.eval_episodes = 1000, (4.0, 0.0, 1.0, 16.0), 128
    if preset == "wordle_smoke":
      c.num_trajectories, c.bc_steps, c.eval_episodes, c.betas = 10, 2, 2, (4.0, 0.0)
      c.model.update(d_model=32, n_layers=1, n_heads=2, d_ff=64)
      c.train.update(num_steps=2, batch_size=8, log_every=1)
  elif preset == "smoke":
    c.num_trajectories, c.bc_steps, c.eval_episodes, c.betas = 40, 4, 4, (4.0, 0.0)
    c.model.update(d_model=32, n_layers=1, n_heads=2, d_ff=64)
    c.train.update(num_steps=4, batch_size=8, log_every=2)
  else:
    raise ValueError(f"unknown ilql preset {preset!r}; expected one of {PRESETS}")
  return c
