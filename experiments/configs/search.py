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

Naive best-of-N over-optimises the PRM (0.630 at N = 32, 0.610 at 64) while the weighted vote
keeps rising (0.750): weighted > naive from N = 16 on, as Snell et al. find; weighted >=
majority everywhere; majority >= naive never holds here (the most frequent solution of a policy
with pass@1 0.17 is rarely right). Hardest bin (20 questions, 0 of 32 oracle samples right),
N = 1 / 2 / 4 / 8 / 16: weighted best-of-N 0.023 / 0.045 / 0.087 / 0.156 / 0.212, beam 0.025 /
0.075 / 0.037 / 0.075 / 0.100, lookahead 0.037 / 0.037 / 0.075 / 0.050 / 0.075, DVTS 0.025 /
0.075 / 0.056 / 0.100 / 0.163, greedy 0. On the earlier machine lookahead led there up to N = 8
(0.037 / 0.075 / 0.138 / 0.237 vs weighted 0.025 / 0.042 / 0.075 / 0.125) and beam did not:
on 20 questions (one standard error ~0.08) the ordering of the search methods on the hard bin
is not stable across two policies, and no method beats best-of-N there robustly. The PRM ranks
finished solutions well (AUC 0.97) but three-number states poorly (held-out AUC ~0.7, below).
The compute-optimal selector (5 bins, 5 folds) is up to 0.06 below the in-sample best single
strategy; against the cross-validated best single strategy (best_single_cv, chosen on the same
training folds without bins) it is +0.025 / -0.042 / -0.049 / +0.033 / -0.015 / -0.010 / -0.060
at N = 1 .. 64: within noise, binning by difficulty does not pay on 100 questions (20 per bin).
PRM target ablation (prm_label="hard", Math-Shepherd's HE: 1 if any of the 8 rollouts succeeds,
same policy and rollouts): validation AUC 0.776 (soft 0.967), weighted best-of-N 0.343 / 0.410
at N = 16 / 64 (soft 0.627 / 0.750), beam 0.260 at N = 8 (soft 0.347). A hard label is a
monotone function of the same rollouts' success rate, so it ranks states no better in the limit;
in practice most three-number states of the references become 1 and the head loses the
final-step resolution. Soft labels stay the default.
With vote_on="number" (votes count the number a solution reaches; measured with 2 references
on the earlier machine) majority rises to 0.20 at N = 16 but weighted falls to 0.485 / 0.530 at
N = 16 / 64: many near misses sharing a wrong number outvote one right solution.

How the PRM got there (earlier machine; PRM AUC on held-out training questions from a
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
NoThinking ("{}Answer:" pre-filled; 56 tokens per sample) stays at 0.0: a model that only ever
saw traces before its answer does not answer without one, unlike the reasoning models of Ma et
al. 2025 whose base model could; at matched tokens (up to 5 NoThinking samples per thinking
sample) thinking wins from B = 256 on (0.044 / 0.124 vs 0.0). Accuracy grows with the thinking
budget as in s1: a cut trace rarely leads to a right answer (pass@1 0.124 with 1.5% cut vs 0.044
with 70% cut). The traces cost: the direct-answer policy alone solves k = 3 at pass@1 0.26 (the
default run) in ~25 tokens. From scratch (trace_init="scratch", earlier machine, 1000 steps,
loss 0.06) the traces were well formed with wrong arithmetic and every pass@k was 0.0, at
B = 256 too.
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
  c.prm_label = "soft"  # PRM target: fraction of rollouts that succeed ("hard": any succeeds)
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
  c.trace_init = "policy"  # start the trace policy from the direct-answer policy ("scratch")

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
