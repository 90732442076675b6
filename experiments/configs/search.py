r"""Test-time compute on Countdown: best-of-N, votes, PRM beam / lookahead search, DVTS.

Run (default preset):

  python -m experiments.search --config experiments/configs/search.py --workdir /tmp/search

Other presets and overrides:

  python -m experiments.search --config experiments/configs/search.py:reduced --workdir /tmp/s
  python -m experiments.search --config experiments/configs/search.py:smoke --workdir /tmp/s0
  python -m experiments.search --config experiments/configs/search.py:trace --workdir /tmp/st
  python -m experiments.search --config experiments/configs/search.py --config.budgets='(1,4,16)'
  python -m experiments.search --config experiments/configs/search.py --workdir /tmp/search \
      --resume   # reuse the trained policy, PRM labels and PRM from the workdir

Trains a 2-layer character transformer (d=64, ~0.1M parameters) for 3000 steps on random
solver solutions of Countdown (k = 3 and 4 starting numbers from 1..12, targets 10..50; the
validation split is disjoint by a hash of (numbers, target)), labels 4 sampled solutions of each
of 1024 training questions with 8 Monte-Carlo rollouts per step prefix, fits a PRM (value head on
a copy of the policy trunk), then runs greedy, best-of-N (naive / majority / weighted), PRM beam
search (M = 4), lookahead (k = 1) and DVTS over budgets N = 1..64 on 100 validation questions,
bins them by an oracle pass@1 from 32 independent samples, and runs the cross-validated
compute-optimal selector over 5 difficulty bins. Writes results.json, report.json,
accuracy_vs_budget.png, accuracy_vs_budget_hard.png. The "trace" preset instead trains a policy
on search traces ("{<best-first trace>}Answer:\n<solution>", k = 3) and writes
budget_forcing.json: pass@k of budget forcing at thinking budgets B and of NoThinking.

Measured on ONE CPU core (taskset -c 1), jax 0.10.2:
  default: 12 min end to end with the earlier PRM setting (384 x 2 solutions, 16 rollouts,
    600 PRM steps); with the current PRM setting the PRM part was re-run on the same (identical,
    deterministic) policy: policy 4.5 min + PRM labels 2 min + PRM 2 min + search 6.2 min
    (about 15 min). smoke: < 1 min. trace: 16 min (trace policy 15 min at ~1.1 steps/s, rows
    of up to 352 tokens; evaluation 1.2 min). reduced: not measured.
Measured result (default): policy pass@1 0.15 (k=3: 0.24, k=4: 0.06), best-of-N coverage
0.26 / 0.39 / 0.66 / 0.87 at N = 2 / 4 / 16 / 64, but the PRM barely ranks (within-question
AUC of its final-step score 0.56 on validation samples), so search gains are within noise
(100 questions: one standard error ~0.035). Accuracy, all questions:

  N                         1      2      4      8     16     32     64
  greedy                0.150  0.150  0.150  0.150  0.150  0.150  0.150
  best_of_n_naive       0.150  0.160  0.169  0.170  0.168  0.160  0.150
  best_of_n_majority    0.150  0.150  0.153  0.169  0.180  0.205  0.180
  best_of_n_weighted    0.150  0.160  0.172  0.176  0.182  0.165  0.180
  beam (M=4)            0.147  0.142  0.122  0.140  0.150  0.135  0.180
  lookahead             0.140  0.163  0.130  0.163  0.175  0.155  0.150
  dvts                  0.135  0.147  0.151  0.160  0.168  0.160  0.140
  compute_optimal       0.160  0.132  0.181  0.161  0.198  0.190  0.210
  best_single           0.150  0.163  0.172  0.176  0.182  0.205  0.180

Hardest bin (20 questions, oracle pass@1 0.0): every strategy 0.00-0.075; beam does NOT beat
best-of-N there (beam 0.037/0.037/0.025/0.013/0.013 vs weighted best-of-N
0.027/0.041/0.050/0.044/0.000 at N = 1..16; greedy 0.05). Weighted >= majority >= naive holds at
N = 64 (0.180 = 0.180 > 0.150) but not at N = 32 (majority 0.205 > weighted 0.165). The
cross-validated compute-optimal selector is >= the in-sample best single strategy at 4 of 7
budgets (N = 1, 4, 16, 64). What is missing is a PRM that verifies arithmetic: the policy ends
every solution with "=<target>" whether or not the arithmetic holds, so a step is judged only by
recomputing it, which this PRM (12k labelled steps, mean label 0.07) has not learned.
Diagnosis (PRM trained on 80% of the labelled questions, scored on the other 20%): the policy
fails at planning, not arithmetic (7% of its intermediate steps miscompute, but only 17-22% of
the states it reaches stay solvable), and the PRM memorises questions instead of learning to
judge a state: with 4x the labels (2000 questions x 8 samples, 46.7k steps, 8 min) and 2000
steps its AUC is 0.83 (mid steps vs label > 0) / 0.97 (final steps) on training questions but
0.65 / 0.66 on held-out ones (0.63 vs solvability), no better than with 1x labels (0.68 / 0.67);
a 4-layer d=128 PRM from scratch is worse (0.60 / 0.68). Writing the remaining numbers after
each step of the same labelled rows ("7*5=35|3 35", PRM only; the policy keeps the old format)
lifts held-out AUC to 0.71 / 0.75 (0.70 vs solvability; training questions 0.88 / 0.98): the
direction to take, with a policy trained on that format too.

Measured result (trace): 1448 of 1500 k = 3 traces fit 352 tokens; after 1000 steps (loss 0.06)
the policy writes well-formed traces ("#1 [5 7] h=0 / 7*5=35 -> [35] goal}Answer:...") with
wrong arithmetic, and pass@1..8 is 0.0 for NoThinking (37 tokens per sample) and for budget
forcing at B = 16 / 64 / 128 / 256 (47 / 101 / 163 / 274 tokens; thinking cut by the budget in
100 / 99.8 / 99.1 / 65 % of samples). The budget-forcing comparison needs a policy that solves
k = 3 problems from traces: far more steps (or a wider model) than one CPU core gives in 20 min.
"""

import ml_collections


def _train(num_steps, batch_size, lr, log_every=50, checkpoint_every=500):
  return ml_collections.ConfigDict(dict(
      num_steps=num_steps,  # optimizer updates
      batch_size=batch_size,  # rows per update
      lr=lr,  # peak AdamW learning rate
      warmup=min(50, num_steps // 10),  # linear warmup steps
      weight_decay=0.0,  # decoupled weight decay on matrices
      clip=1.0,  # global gradient-norm clip
      seed=0,  # init and data order
      log_every=log_every,  # steps between metric logs
      checkpoint_every=checkpoint_every,  # steps between checkpoints
      mesh=(-1, 1, 1),  # (data, fsdp, tensor); -1 = all devices
  ))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Preset `arg` in {None/"default", "reduced", "trace", "smoke"}."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # problems, training and search randomness
  c.num_numbers = (3, 4)  # starting-number counts k mixed in every split (difficulty spread)
  c.max_number = 12  # largest starting number
  c.min_target = 10  # smallest target
  c.max_target = 50  # largest target
  c.train_problems = 4000  # behaviour-cloning problems
  c.solutions_per_problem = 4  # random solver solutions per training problem
  c.prm_problems = 1024  # problems whose policy samples get Monte-Carlo labels
  c.prm_samples = 4  # policy solutions sampled per PRM problem
  c.prm_rollouts = 8  # rollouts per step prefix (soft label resolution)
  c.eval_problems = 100  # validation questions
  c.max_len = 48  # prefix buffer (prompt + solution tokens)
  c.step_len = 10  # most tokens in one step
  c.model = ml_collections.ConfigDict(dict(
      d_model=64,  # residual width
      n_layers=2,  # decoder blocks
      n_heads=4,  # attention heads
      d_ff=256,  # MLP width
      pos="rope",  # rotary positions (no position table limit for left-padded decode)
  ))
  c.policy = _train(3000, 64, 3e-3, log_every=250, checkpoint_every=1000)  # behaviour cloning
  c.prm = _train(1000, 64, 1e-3, log_every=100)  # PRM fit to Monte-Carlo soft labels
  c.temperature = 1.0  # proposal sampling temperature
  c.budgets = (1, 2, 4, 8, 16, 32, 64)  # budgets N (samples / beams)
  c.strategies = ("greedy", "best_of_n", "beam", "lookahead", "dvts")  # see STRATEGIES
  c.beam_width = 4  # M of beam search, lookahead and DVTS
  c.lookahead = 1  # greedy rollout steps per scored step (lookahead search)
  c.max_repeats = 4  # per-budget repeats of beam/lookahead searches (variance at small N)
  c.max_rows = 2048  # candidate rows per jitted search call
  c.num_bins = 5  # difficulty bins (bin 0 hardest)
  c.num_folds = 5  # cross-validation folds of the compute-optimal selector
  c.difficulty_samples = 32  # independent samples per question for the oracle pass@1 bins
  c.thinking_budgets = ()  # budget-forcing budgets B; () skips the search-trace policy
  c.thinking_samples = 8  # samples per question for pass@k of budget forcing / NoThinking
  c.trace_max_len = 352  # search-trace training row buffer (longer traces are dropped)
  c.trace_policy = _train(1000, 32, 3e-3, log_every=100)  # search-trace policy

  if arg in (None, "", "default"):
    pass
  elif arg == "reduced":
    c.update(prm_problems=256, prm_rollouts=8, eval_problems=60, budgets=(1, 2, 4, 8, 16),
             difficulty_samples=16, max_rows=1024)
    c.policy = _train(1500, 64, 3e-3, log_every=250, checkpoint_every=1000)
    c.prm = _train(300, 64, 1e-3)
  elif arg == "trace":
    c.update(num_numbers=(3,), train_problems=1500, prm_problems=8, strategies=(),
             thinking_budgets=(16, 64, 128, 256), max_len=32, max_rows=512)
  elif arg == "smoke":
    c.model.update(d_model=32, d_ff=64)
    c.update(train_problems=64, solutions_per_problem=1, prm_problems=8, prm_samples=1,
             prm_rollouts=2, eval_problems=6, budgets=(1, 2, 4), beam_width=2,
             max_repeats=1, max_rows=16, num_bins=2, num_folds=2, difficulty_samples=2,
             strategies=("greedy", "best_of_n", "beam", "dvts"))
    c.policy = _train(4, 8, 3e-3, log_every=2, checkpoint_every=100)
    c.prm = _train(2, 8, 1e-3, log_every=1, checkpoint_every=100)
    c.trace_policy = _train(2, 8, 3e-3, log_every=1, checkpoint_every=100)
  else:
    raise ValueError(f"unknown search preset {arg!r}; choose default, reduced, trace or smoke")
  return c
