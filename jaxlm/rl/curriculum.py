"""Token budgets for e3's coupled curriculum, and the paper's didactic p^k model of attempts.

Setlur et al. 2025 ("e3: Learning to Explore Enables Extrapolation of Test-Time Compute for
LLMs") train in stages that couple the data's difficulty with the training token budget: each
stage filters problems by difficulty and trains at the smallest budget in which the current
policy's traces mostly finish. A budget that truncates many traces teaches the policy to stop
early (a truncated trace scores 0); a budget far above what the traces need wastes compute and
gives no pressure to chain more attempts. Here a stage's budget is chosen on a probe set: sample
traces under a generous cap, and take the smallest candidate budget whose truncation rate

    trunc(B) = P(length > B)          (a trace that hit the cap counts as longer than any B)

is at most `threshold` (`choose_budget`). `plan` does it for a list of stages.

The didactic p^k model (Section 4 of the paper): a trace is a chain of attempts, each failing
independently with probability p, and verification is perfect, so the chain stops at the first
success. With k attempts in the budget the success probability is

    P(success | k) = 1 - p^k,                                    (Eq. p^k)

and with attempts of L tokens a budget B holds k = floor(B / L) of them: a policy that keeps
trying turns every extra L tokens into a factor p less failure, which is what extrapolation past
the training budget means in this model. `simulate_attempts` checks Eq. p^k by sampling chains.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np


def truncation_rate(lengths: Sequence[float], budget: int) -> float:
  """Share of traces longer than `budget` tokens (`inf` marks a trace that never finished)."""
  lengths = np.asarray(lengths, np.float64)
  if lengths.size == 0:
    raise ValueError("truncation_rate needs at least one probe trace length")
  if np.any(np.isnan(lengths)) or np.any(lengths < 0):
    raise ValueError("probe trace lengths must be >= 0 (inf for a trace that hit the cap)")
  return float(np.mean(lengths > budget))


def choose_budget(lengths: Sequence[float], candidates: Sequence[int],
                  threshold: float) -> int:
  """The smallest budget in `candidates` whose truncation rate on `lengths` is <= `threshold`.

  Args:
    lengths: probe trace lengths in tokens, sampled under a cap of at least max(candidates);
      `inf` for a trace that reached the cap unfinished.
    candidates: budgets to choose from (any order).
    threshold: the largest acceptable share of truncated probe traces, in [0, 1).

  Returns:
    the budget; the largest candidate (with no error) when none meets the threshold, since the
    traces then need more room than the schedule offers.
  """
  if not candidates:
    raise ValueError("choose_budget needs at least one candidate budget")
  if not 0 <= threshold < 1:
    raise ValueError(f"threshold={threshold} must be in [0, 1)")
  for budget in sorted(candidates):
    if truncation_rate(lengths, budget) <= threshold:
      return int(budget)
  return int(max(candidates))


@dataclasses.dataclass(frozen=True)
class Stage:
  """One curriculum stage: problems of `difficulty` (e.g. Countdown's starting-number count),
  trained for `steps` RL steps at `budget` tokens (None: chosen by `plan`)."""
  difficulty: int
  steps: int
  budget: int | None = None


def plan(stages: Sequence[Stage], probe: Callable[[Stage, int], Sequence[float]],
         candidates: Sequence[int], threshold: float) -> list[Stage]:
  """Fills each stage's budget with `choose_budget` on `probe(stage, max(candidates))`.

  `probe(stage, cap)` returns the trace lengths of the current policy on the stage's probe
  problems sampled with at most `cap` tokens (inf where the cap was hit). It is called just
  before the stage trains (lazily, in order), so a caller that trains between calls probes the
  policy each stage starts from. A stage with a fixed budget is kept as it is.
  """
  out = []
  for stage in stages:
    if stage.budget is None:
      lengths = probe(stage, int(max(candidates)))
      stage = dataclasses.replace(stage, budget=choose_budget(lengths, candidates, threshold))
    out.append(stage)
  return out


def pk_success(p: float | np.ndarray, k: int | np.ndarray) -> np.ndarray:
  """Eq. p^k: P(success) = 1 - p^k for k independent attempts failing with probability p."""
  p, k = np.asarray(p, np.float64), np.asarray(k)
  if np.any((p < 0) | (p > 1)) or np.any(k < 0):
    raise ValueError("p must be in [0, 1] and k >= 0")
  return 1.0 - p ** k


def budget_success(p: float, budget: int | np.ndarray, attempt_tokens: int) -> np.ndarray:
  """Success within `budget` tokens when each attempt takes `attempt_tokens`:
  1 - p^floor(budget / attempt_tokens)."""
  if attempt_tokens <= 0:
    raise ValueError(f"attempt_tokens={attempt_tokens} must be positive")
  return pk_success(p, np.asarray(budget) // attempt_tokens)


def simulate_attempts(rng: np.random.Generator, p: float, num_chains: int, max_attempts: int
                      ) -> tuple[np.ndarray, np.ndarray]:
  """Samples `num_chains` chains of at most `max_attempts` independent attempts (each failing
  with probability p), each stopping at its first success (perfect verification).

  Returns:
    (success_by_k [max_attempts + 1]: share of chains solved within k attempts, k = 0..K;
     attempts [num_chains]: attempts each chain made).
  """
  fails = rng.random((num_chains, max_attempts)) < p
  solved = ~fails
  first = np.where(solved.any(axis=1), solved.argmax(axis=1) + 1, max_attempts + 1)
  success_by_k = np.array([np.mean(first <= k) for k in range(max_attempts + 1)])
  return success_by_k, np.minimum(first, max_attempts)
