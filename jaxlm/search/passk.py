"""pass@k, maj@k and bootstrap intervals over questions.

pass@k: the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models Trained
on Code", Eq. 1 and its numerically stable product form): with n samples of which c are
correct, 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k / i).

maj@k: the probability that majority vote over k samples drawn without replacement from the n
is correct, computed exactly from the answer counts (multivariate hypergeometric sum), with ties
broken uniformly at random (the expectation of ``select.majority_vote``'s first-appearance rule).
"""

from math import comb

import chex
import jax
import jax.numpy as jnp
import numpy as np


def pass_at_k(num_correct_B: jax.Array, n: int, k: int) -> jax.Array:
  """Unbiased pass@k (Chen et al. 2021), product form, batched and jittable.

  Args:
    num_correct_B: c, number of correct samples per question, in [0, n].
    n: samples per question (static).
    k: attempts (static), 1 <= k <= n.

  Returns:
    [B] float32 estimates.
  """
  if not 1 <= k <= n:
    raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
  chex.assert_rank(num_correct_B, 1)
  i_N = jnp.arange(1, n + 1, dtype=jnp.float32)
  include_BxN = i_N[None, :] > (n - num_correct_B[:, None])
  factor_BxN = jnp.where(include_BxN, 1.0 - k / i_N[None, :], 1.0)
  return 1.0 - jnp.prod(factor_BxN, axis=1)


def _answer_counts(answer_ids_N, correct_N):
  """Counts per distinct answer, which answers are correct, and the abstention count."""
  answer_ids_N = np.asarray(answer_ids_N)
  correct_N = np.asarray(correct_N).astype(bool)
  if answer_ids_N.shape != correct_N.shape or answer_ids_N.ndim != 1:
    raise ValueError(f"answer_ids {answer_ids_N.shape} and correct {correct_N.shape} must be "
                     "equal 1-d shapes")
  if np.any(correct_N & (answer_ids_N < 0)):
    raise ValueError("a sample without an answer (id -1) is marked correct")
  answers = np.unique(answer_ids_N[answer_ids_N >= 0])
  counts = np.array([np.sum(answer_ids_N == a) for a in answers], dtype=int)
  is_correct = []
  for a in answers:
    flags = correct_N[answer_ids_N == a]
    if flags.min() != flags.max():
      raise ValueError(f"answer id {a} is marked both correct and incorrect")
    is_correct.append(bool(flags[0]))
  return counts, np.array(is_correct, bool), int(np.sum(answer_ids_N < 0))


def _win_probability(counts, winner, abstain, k):
  """P(answer `winner` has the most votes in a random k-subset), ties shared uniformly."""
  n = int(np.sum(counts)) + abstain
  others = [int(c) for j, c in enumerate(counts) if j != winner]
  total = 0.0
  for x in range(1, min(int(counts[winner]), k) + 1):
    # poly[s, t]: ways to draw s samples from the others with every other answer below x
    # votes, except t answers tied at exactly x.
    poly = np.zeros((k + 1, len(others) + 1))
    poly[:, 0] = [comb(abstain, s) for s in range(k + 1)]
    for c in others:
      new = np.zeros_like(poly)
      for y in range(min(c, x) + 1):
        if y < x:
          new[y:, :] += comb(c, y) * poly[:k + 1 - y, :]
        else:
          new[y:, 1:] += comb(c, y) * poly[:k + 1 - y, :-1]
      poly = new
    ways = poly[k - x] / (1.0 + np.arange(len(others) + 1))
    total += comb(int(counts[winner]), x) * float(np.sum(ways))
  return total / comb(n, k)


def maj_at_k(answer_ids_N: np.ndarray, correct_N: np.ndarray, k: int) -> float:
  """Exact maj@k for one question (host side, float64).

  Args:
    answer_ids_N: canonical answer id per sample (-1: no answer, never votes).
    correct_N: whether each sample's answer is correct (equal for equal ids).
    k: votes per draw, 1 <= k <= N.

  Returns:
    The probability that a majority vote over k of the N samples, drawn without replacement,
    picks a correct answer (ties split evenly; a draw without any answer is wrong).
  """
  n = len(answer_ids_N)
  if not 1 <= k <= n:
    raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
  counts, is_correct, abstain = _answer_counts(answer_ids_N, correct_N)
  return float(sum(_win_probability(counts, j, abstain, k)
                   for j in np.flatnonzero(is_correct)))


def maj_at_k_batch(answer_ids_BxN: np.ndarray, correct_BxN: np.ndarray, k: int) -> np.ndarray:
  """``maj_at_k`` for each of B questions; [B] float64."""
  return np.array([maj_at_k(a, c, k) for a, c in zip(answer_ids_BxN, correct_BxN)])


def bootstrap_ci(values_Q: np.ndarray, seed: int = 0, num_resamples: int = 1000,
                 confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Percentile bootstrap over questions of the mean (Efron and Tibshirani 1993).

  Args:
    values_Q: per-question values [Q, ...] (e.g. pass@k per question and k); questions are
      resampled with replacement along axis 0.
    seed: numpy seed.
    num_resamples: bootstrap resamples.
    confidence: two-sided interval mass.

  Returns:
    (mean, low, high), each of shape values_Q.shape[1:].
  """
  values_Q = np.asarray(values_Q, dtype=np.float64)
  if values_Q.ndim < 1 or values_Q.shape[0] == 0:
    raise ValueError(f"values_Q needs at least one question, got shape {values_Q.shape}")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}")
  rng = np.random.default_rng(seed)
  q = values_Q.shape[0]
  means = np.stack([values_Q[rng.integers(0, q, size=q)].mean(axis=0)
                    for _ in range(num_resamples)])
  tail = 100.0 * (1.0 - confidence) / 2.0
  low, high = np.percentile(means, [tail, 100.0 - tail], axis=0)
  return values_Q.mean(axis=0), low, high
