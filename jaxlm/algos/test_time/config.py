"""The Countdown test-time-compute experiment's configuration and its table of strategies."""

from __future__ import annotations

import dataclasses

from jaxlm.config import TrainConfig
from jaxlm.envs import countdown_data
from jaxlm.models import TransformerConfig
from jaxlm.search import labels, synthetic

VOTE_ON = ("number", "solution")
TRACE_INIT = ("policy", "scratch")


@dataclasses.dataclass(frozen=True)
class Strategy:
  """A search family: kind in {"greedy", "best_of_n", "beam", "dvts"}, its selections."""
  kind: str
  selections: tuple[str, ...] = ("weighted",)
  lookahead: bool = False


STRATEGIES = {
    "greedy": Strategy("greedy", ("naive",)),
    "best_of_n": Strategy("best_of_n", synthetic.SELECTIONS),
    "beam": Strategy("beam"),
    "lookahead": Strategy("beam", lookahead=True),
    "dvts": Strategy("dvts"),
}


def result_names(name: str) -> list[str]:
  """Result keys of a strategy: one per selection when it has several."""
  sels = STRATEGIES[name].selections
  return [f"{name}_{s}" for s in sels] if len(sels) > 1 else [name]


def check_vote_on(vote_on: str) -> None:
  if vote_on not in VOTE_ON:
    raise ValueError(f"vote_on must be one of {VOTE_ON}, got {vote_on!r}")


@dataclasses.dataclass(frozen=True)
class Config:
  """Countdown test-time-compute experiment.

  Attributes:
    seed: problems, training and search randomness.
    num_numbers: starting-number counts k mixed in every split (the difficulty knob).
    max_number: largest starting number.
    min_target, max_target: target range.
    train_problems: problems for the policy's behaviour cloning.
    solutions_per_problem: random solver solutions per training problem.
    prm_problems: further training problems whose policy samples get Monte-Carlo labels.
    prm_samples: policy solutions sampled per PRM problem.
    prm_rollouts: rollouts per step prefix (the soft label's denominator).
    prm_references: reference (solver) solutions per PRM problem, labelled by the same
      rollouts (``jaxlm.search.labels.label_solutions``).
    prm_label: the PRM's target, "soft" (fraction of rollouts that succeed) or "hard" (1 if
      any does), Math-Shepherd's SE and HE (``jaxlm.search.labels.estimate_labels``).
    eval_problems: validation questions.
    write_pool: the policy writes the numbers left after every step ("7*5=35|3 35"), so a
      state's solvability is a function of the step's own line (for the policy and the PRM).
    near_miss_fraction: share of the policy's training rows that are honest failed attempts
      (random moves, the closest last result written as it is), so the policy computes its last
      step instead of always claiming the target.
    max_len: prefix buffer length (prompt + solution tokens).
    step_len: most tokens in one step (newline included).
    model: the transformer of the policy and of the PRM trunk (vocab_size, max_len set here).
    policy: policy training run (`jaxlm.config.TrainConfig`).
    prm: PRM training run.
    temperature: sampling temperature of proposals.
    vote_on: what a vote counts as the same answer: "solution" (identical written step
      lines) or "number" (the number a solution arrives at).
    budgets: N values.
    strategies: names among STRATEGIES.
    beam_width: M of beam search, lookahead and DVTS (min(M, N) at small N).
    lookahead: k greedy rollout steps per scored step in lookahead search.
    max_repeats: a budget N is run max(1, min(max_repeats, max(budgets) // N)) times per
      question (lower variance at small N).
    max_rows: candidate rows per search call (questions are chunked).
    num_bins: difficulty bins (bin 0 is the hardest).
    num_folds: cross-validation folds of the compute-optimal selector.
    difficulty_samples: policy samples per validation question, independent of the evaluated
      ones, whose mean correctness (oracle pass@1) bins the questions by difficulty; 0 reuses
      the best-of-N pool (then a bin's best-of-N accuracy is biased by its own definition).
    thinking_budgets: thinking-token budgets B of budget forcing; empty skips the search-trace
      policy and the budget-forcing / NoThinking evaluation.
    thinking_samples: samples per validation question in that evaluation (pass@k, k <= this).
    trace_max_len: buffer of a search-trace training row (longer traces are dropped).
    trace_policy: training run of the search-trace policy.
    trace_init: "policy" starts the search-trace policy from the direct-answer policy (trained
      first with ``policy``), "scratch" from a random init.
  """
  seed: int = 0
  num_numbers: tuple[int, ...] = (4,)
  max_number: int = 9
  min_target: int = 10
  max_target: int = 40
  train_problems: int = 4000
  solutions_per_problem: int = 4
  prm_problems: int = 512
  prm_samples: int = 2
  prm_rollouts: int = 8
  prm_references: int = 0
  prm_label: str = "soft"
  eval_problems: int = 100
  write_pool: bool = True
  near_miss_fraction: float = 0.1
  max_len: int = 64
  step_len: int = 20
  model: TransformerConfig = TransformerConfig(d_model=64, n_layers=2, n_heads=4, d_ff=256,
                                               pos="rope")
  policy: TrainConfig = TrainConfig(lr=3e-3)
  prm: TrainConfig = TrainConfig(num_steps=500, lr=3e-3)
  temperature: float = 1.0
  vote_on: str = "solution"
  budgets: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
  strategies: tuple[str, ...] = ("greedy", "best_of_n", "beam", "lookahead", "dvts")
  beam_width: int = 4
  lookahead: int = 1
  max_repeats: int = 4
  max_rows: int = 2048
  num_bins: int = 5
  num_folds: int = 5
  difficulty_samples: int = 32
  thinking_budgets: tuple[int, ...] = ()
  thinking_samples: int = 8
  trace_max_len: int = 352
  trace_policy: TrainConfig = TrainConfig(batch_size=32, lr=3e-3)
  trace_init: str = "policy"

  def __post_init__(self):
    unknown = sorted(set(self.strategies) - set(STRATEGIES))
    if unknown:
      raise ValueError(f"strategies {unknown} unknown; choose from {sorted(STRATEGIES)}")
    if self.thinking_budgets and min(self.thinking_budgets) < 1:
      raise ValueError(f"thinking_budgets must be positive, got {self.thinking_budgets}")
    if self.thinking_samples < 1:
      raise ValueError(f"thinking_samples must be >= 1, got {self.thinking_samples}")
    if not self.budgets or min(self.budgets) < 1:
      raise ValueError(f"budgets must be positive, got {self.budgets}")
    check_vote_on(self.vote_on)
    if self.prm_label not in labels.PRM_LABELS:
      raise ValueError(f"prm_label must be one of {labels.PRM_LABELS}, got {self.prm_label!r}")
    if self.trace_init not in TRACE_INIT:
      raise ValueError(f"trace_init must be one of {TRACE_INIT}, got {self.trace_init!r}")
    if self.eval_problems < max(self.num_bins, self.num_folds):
      raise ValueError(f"eval_problems={self.eval_problems} must be >= num_bins and num_folds")

  @property
  def max_steps(self) -> int:
    return max(self.num_numbers) - 1

  def model_config(self) -> TransformerConfig:
    """The policy's (and PRM trunk's) transformer: the direct-answer vocabulary, max_len."""
    return dataclasses.replace(self.model, vocab_size=countdown_data.tokenizer().vocab_size,
                               max_len=self.max_len)

  def trace_model_config(self) -> TransformerConfig:
    """The search-trace policy's transformer: the trace vocabulary, trace_max_len."""
    return dataclasses.replace(self.model_config(), max_len=self.trace_max_len,
                               vocab_size=countdown_data.trace_tokenizer().vocab_size)
