r"""Test-time compute on Countdown: best-of-N, votes, PRM beam / lookahead search, DVTS.

Run (default preset):

  python -m experiments.search --config experiments/configs/search.py --workdir /tmp/search

Other presets and overrides:

  python -m experiments.search --config experiments/configs/search.py:reduced --workdir /tmp/s
  python -m experiments.search --config experiments/configs/search.py:smoke --workdir /tmp/s0
  python -m experiments.search --config experiments/configs/search.py:trace --workdir /tmp/st
  python -m experiments.search --config experiments/configs/search.py --config.budgets='(1,4,16)'
  python -m experiments.search --config experiments/configs/search.py \
      --config.policy.num_steps=500 --config.prm.lr=3e-4 --workdir /tmp/s1
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
samples), accuracy.npz (per-question accuracy), accuracy_vs_budget.png and
accuracy_vs_budget_hard.png. The "trace" preset instead trains the direct-answer policy on k = 3
and fine-tunes it on search traces ("{<best-first trace>}Answer:\n<solution>"), then writes
budget_forcing.json: pass@k of budget forcing at thinking budgets B and of NoThinking.

Measured on ONE CPU core of a machine ~1.8x slower than the one of the earlier table (taskset,
the other core busy), jax 0.10.2; runs are deterministic on one machine, but the policy (and so
every number) differs across machines: the earlier machine gave greedy 0.13, pass@1 0.15.
  default: about 56 min end to end: policy 11.7 min + PRM labels 14.2 min (23,954 prefixes) +
    PRM ~4 min, search 21.6 min (beam and lookahead 8 min each). smoke: < 1 min.
  trace: about 64 min: direct policy 14 min, trace policy 46 min (1500 steps, ~1.8 s/step with
    a third job on the machine; ~1 s/step alone), evaluation 3 min. reduced: not measured.
Measured result (default): policy pass@1 0.165 (k=3: 0.26, k=4: 0.07; greedy 0.21), best-of-N
coverage 0.27 / 0.43 / 0.75 / 0.92 at N = 2 / 4 / 16 / 64, PRM AUC on the 6,400 validation
samples 0.967. 100 questions: one standard error ~0.05. Accuracy, all questions:

  N                         1      2      4      8     16     32     64
  greedy                0.210  0.210  0.210  0.210  0.210  0.210  0.210
  best_of_n_naive       0.158  0.263  0.405  0.530  0.613  0.630  0.610
  best_of_n_majority    0.158  0.161  0.171  0.196  0.210  0.235  0.260
  best_of_n_weighted    0.158  0.263  0.400  0.534  0.627  0.720  0.750
  beam (M=4)            0.145  0.182  0.205  0.347  0.393  0.485  0.480
  lookahead (k=1)       0.147  0.292  0.380  0.530  0.608  0.670  0.670
  dvts                  0.190  0.198  0.239  0.361  0.482  0.575  0.630
  compute_optimal       0.185  0.250  0.356  0.540  0.598  0.710  0.690
  best_single_cv        0.160  0.292  0.405  0.507  0.613  0.720  0.750
  best_single           0.210  0.292  0.405  0.534  0.627  0.720  0.750

Measured result (trace): 1448 of 1500 k = 3 traces fit 352 tokens. The trace policy starts from
the direct-answer policy (trace_init="policy": its character ids are kept, the trace symbols
are new rows of the embedding) and reaches loss 0.010 after 1500 steps. pass@1 / pass@8 of
budget forcing at thinking budgets B (tokens per sample; share of samples whose thinking was
cut), 100 validation questions x 8 samples:
  B                  16      64     128     256     320
  tokens / sample    68     117     181     279     292
  thinking cut     100%   99.4%   99.8%   70.3%    1.5%
  pass@1          0.000   0.000   0.001   0.044   0.124
  pass@8          0.000   0.000   0.010   0.210   0.430

What these numbers say, the ablations behind the preset (how the PRM got there, hard labels,
votes on numbers) and the budget-forcing findings: docs/search.md.
"""

from jaxlm import config as config_lib
from jaxlm.algos import test_time


def _train(num_steps, batch_size, lr, log_every=50, checkpoint_every=500):
  """One training run (`jaxlm.config.TrainConfig`): every field a run sets, the rest (accum_steps,
  keep_checkpoints, sharding_rules, transfer_guard, on_nonfinite, allow_config_change) at the
  library defaults."""
  return config_lib.config_dict(config_lib.TrainConfig(
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


PRESETS = (None, "reduced", "trace", "smoke")


def get_config(arg: str | None = None):
  """Every field of `jaxlm.algos.test_time.Config` (documented there), then preset `arg` in
  {None/"default", "reduced", "trace", "smoke"}."""
  c = config_lib.config_dict(test_time.Config())
  # The default preset, where it differs from the library defaults.
  c.update(
      num_numbers=(3, 4),  # starting-number counts k mixed in every split (difficulty spread)
      max_number=12,  # largest starting number
      max_target=50,  # largest target
      prm_problems=1024,  # problems whose policy samples get Monte-Carlo labels
      prm_samples=4,  # policy solutions sampled per PRM problem
      prm_references=4,  # solver solutions per PRM problem, labelled by the same rollouts
  )
  c.policy = _train(3000, 64, 3e-3, log_every=250, checkpoint_every=1000)  # behaviour cloning
  c.prm = _train(1000, 64, 1e-3, log_every=100)  # PRM fit to Monte-Carlo soft labels
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
             thinking_budgets=(16, 64, 128, 256, 320), max_rows=512)
    c.trace_policy = _train(1500, 32, 3e-3, log_every=100)
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
