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

Trains a 2-layer character transformer (d=64, ~0.1M parameters) for 3000 steps on Countdown
(k = 3 and 4 starting numbers from 1..12, targets 10..50; the validation split is disjoint by a
hash of (numbers, target)). Every step writes the numbers left ("7*5=35|3 35"); 90% of the
training rows are random solver solutions and 10% honest near misses (random moves, then the
closest last result written as it is). It then samples 4 solutions of each of 1024 training
questions, adds 4 solver solutions per question, labels every step prefix with 8 Monte-Carlo
rollouts of the policy, fits a PRM (value head on a copy of the policy trunk), and runs greedy,
best-of-N (naive / majority / weighted), PRM beam search (M = 4), lookahead (k = 1) and DVTS
over budgets N = 1..64 on 100 validation questions, bins them by an oracle pass@1 from 32
independent samples, and runs the cross-validated compute-optimal selector over 5 difficulty
bins. Writes results.json, report.json (with the PRM's AUC on the validation best-of-N
samples), accuracy_vs_budget.png, accuracy_vs_budget_hard.png. The "trace" preset instead trains
a policy on search traces ("{<best-first trace>}Answer:\n<solution>", k = 3) and writes
budget_forcing.json: pass@k of budget forcing at thinking budgets B and of NoThinking.

Measured on ONE CPU core (taskset -c 0/1, the other core busy), jax 0.10.2:
  default: about 25 min end to end: policy 6.6 min + PRM labels 6.7 min (23,950 prefixes) +
    PRM 2.2 min, search 8.7 min. smoke: < 1 min. trace: 16 min (trace policy 15 min at ~1.1
    steps/s, rows of up to 352 tokens; evaluation 1.2 min). reduced: not measured.
Measured result (default): policy pass@1 0.15 (k=3: 0.24, k=4: 0.06; greedy 0.13), best-of-N
coverage 0.25 / 0.40 / 0.72 / 0.90 at N = 2 / 4 / 16 / 64, PRM AUC on the 6,400 validation
samples 0.970. 100 questions: one standard error ~0.05. Accuracy, all questions:

  N                         1      2      4      8     16     32     64
  greedy                0.130  0.130  0.130  0.130  0.130  0.130  0.130
  best_of_n_naive       0.139  0.242  0.380  0.495  0.598  0.660  0.680
  best_of_n_majority    0.139  0.140  0.133  0.140  0.150  0.160  0.150
  best_of_n_weighted    0.139  0.242  0.377  0.489  0.575  0.630  0.650
  beam (M=4)            0.115  0.155  0.195  0.318  0.383  0.425  0.420
  lookahead (k=1)       0.152  0.228  0.372  0.495  0.610  0.625  0.690
  dvts                  0.163  0.193  0.222  0.320  0.430  0.500  0.560
  compute_optimal       0.192  0.228  0.364  0.497  0.573  0.635  0.640
  best_single           0.163  0.242  0.380  0.495  0.610  0.660  0.690

Hardest bin (20 questions, oracle pass@1 0.002), N = 1 / 2 / 4 / 8 / 16: lookahead 0.037 /
0.075 / 0.138 / 0.237 / 0.200 beats weighted best-of-N 0.025 / 0.042 / 0.075 / 0.125 / 0.200
and greedy (0.0) up to N = 8 and ties it at 16 (naive 0.225); plain beam search reaches
best-of-N only at N = 4 (0.013 / 0.037 / 0.075 / 0.075 / 0.138): the PRM judges finished
solutions well but intermediate states poorly, and lookahead scores a step after a greedy
rollout to (for k = 3) the final line. Weighted >= majority holds
everywhere, majority >= naive does not: with pass@1 0.15 the most frequent solution is rarely
right, while the PRM's maximum is. The compute-optimal selector is within noise of the
in-sample best single strategy (above it at N = 1 and 8, up to 0.05 below at N = 16 / 64).
With vote_on="number" (votes count the number a solution reaches; measured with 2 references)
majority rises to 0.20 at N = 16 but weighted falls to 0.485 / 0.530 at N = 16 / 64: many near
misses sharing a wrong number outvote one right solution.

How the PRM got there (same 100 questions; PRM AUC on held-out training questions from a
separate 80/20 fit, "mid" = intermediate steps vs label > 0):
  steps as "7*5=35" only (earlier preset): held-out AUC mid 0.68, final 0.67, weighted
    best-of-N 0.18 at N = 64 (policy pass@1 0.15);
  + the numbers left on every step: mid 0.64, final 0.71; pass@1 0.20, greedy 0.22, weighted
    0.23 / 0.25 at N = 16 / 64 (coverage 0.77 / 0.94: selection was the bottleneck);
  + 25% near misses (trained on solutions only, the policy ends every attempt with
    "=<target>", so only recomputing the last step exposes a wrong one): final 0.75; weighted
    0.28 / 0.32, but pass@1 0.12;
  + 2 solver solutions per question among the labelled rows (the policy's own samples give
    mean label 0.06 and few right answers): PRM AUC on validation samples 0.93, weighted
    0.44 / 0.56; with 10% near misses 0.965 and 0.59 / 0.66; 4 solver solutions (the default)
    0.970, beam 0.34 -> 0.38 and lookahead 0.56 -> 0.61 at N = 16; 16 rollouts per prefix
    instead of 8 (2 references) was worse: 0.912, weighted 0.47 / 0.50.
A 4-layer d=128 PRM from scratch, a frozen policy trunk (AUC 0.57 / 0.64) and 4x policy
samples did not help.

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
  c.prm_references = 4  # solver solutions per PRM problem, labelled by the same rollouts
  c.eval_problems = 100  # validation questions
  c.write_pool = True  # every step writes the numbers left: "7*5=35|3 35"
  c.near_miss_fraction = 0.1  # policy rows that are honest failed attempts
  c.max_len = 64  # prefix buffer (prompt + solution tokens)
  c.step_len = 20  # most tokens in one step
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
  c.vote_on = "solution"  # votes count identical solutions ("number": the number reached)
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
