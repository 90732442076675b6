"""Tests for jaxlm.search.passk against brute-force enumeration."""

import itertools
from math import comb

from absl.testing import absltest
from absl.testing import parameterized
import chex
import numpy as np

from jaxlm.search import passk


def brute_pass_at_k(correct, k):
  subsets = list(itertools.combinations(range(len(correct)), k))
  return np.mean([any(correct[i] for i in s) for s in subsets])


def brute_maj_at_k(ids, correct, k):
  """Average over all k-subsets of the (tie-shared) correctness of the plurality answer."""
  scores = []
  for s in itertools.combinations(range(len(ids)), k):
    votes = {}
    for i in s:
      if ids[i] >= 0:
        votes[ids[i]] = votes.get(ids[i], 0) + 1
    if not votes:
      scores.append(0.0)
      continue
    top = max(votes.values())
    winners = [a for a, v in votes.items() if v == top]
    good = {ids[i] for i in range(len(ids)) if correct[i]}
    scores.append(sum(a in good for a in winners) / len(winners))
  return np.mean(scores)


class PassAtKTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_against_enumeration(self):
    n = 8
    rng = np.random.default_rng(0)
    for k in (1, 2, 3, 5, 8):
      patterns = [rng.random(n) < p for p in (0.0, 0.1, 0.3, 0.6, 1.0)]
      c = np.array([p.sum() for p in patterns])
      fn = self.variant(passk.pass_at_k, static_argnums=(1, 2))
      got = fn(c, n, k)
      want = [brute_pass_at_k(p, k) for p in patterns]
      np.testing.assert_allclose(got, want, atol=1e-6)

  def test_closed_form_and_stability(self):
    # k = 1 is the fraction correct; the combinatorial form agrees for n = 200.
    np.testing.assert_allclose(passk.pass_at_k(np.array([0, 3, 10]), 10, 1), [0, 0.3, 1.0],
                               atol=1e-6)
    n, c, k = 200, 7, 50
    want = 1 - comb(n - c, k) / comb(n, k)
    np.testing.assert_allclose(passk.pass_at_k(np.array([c]), n, k), [want], rtol=1e-5)

  def test_bad_k(self):
    with self.assertRaisesRegex(ValueError, "1 <= k <= n"):
      passk.pass_at_k(np.array([1]), 4, 5)


class MajAtKTest(parameterized.TestCase):

  def test_hand_fixture(self):
    # ids a a b, a correct, k = 2: subsets {a,a} -> 1, {a,b} x2 -> tie -> 1/2 each: (1+.5+.5)/3.
    self.assertAlmostEqual(passk.maj_at_k(np.array([0, 0, 1]), np.array([1, 1, 0]), 2), 2 / 3)
    # k = N is the plain majority vote; k = 1 is the fraction correct.
    ids, correct = np.array([0, 1, 1, -1]), np.array([1, 0, 0, 0])
    self.assertAlmostEqual(passk.maj_at_k(ids, correct, 4), 0.0)
    self.assertAlmostEqual(passk.maj_at_k(ids, correct, 1), 0.25)

  @parameterized.parameters(1, 2, 3, 4, 5, 6, 7)
  def test_against_enumeration(self, k):
    rng = np.random.default_rng(k)
    for _ in range(6):
      ids = rng.integers(-1, 3, size=7)
      good = rng.integers(0, 3, size=2)  # one or two correct answer ids
      correct = np.isin(ids, good) & (ids >= 0)
      self.assertAlmostEqual(passk.maj_at_k(ids, correct, k), brute_maj_at_k(ids, correct, k),
                             places=12)

  def test_batch_and_errors(self):
    ids = np.array([[0, 0, 1], [0, 1, 2]])
    correct = np.array([[1, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(passk.maj_at_k_batch(ids, correct, 2),
                               [2 / 3, brute_maj_at_k(ids[1], correct[1], 2)])
    with self.assertRaisesRegex(ValueError, "both correct and incorrect"):
      passk.maj_at_k(np.array([0, 0]), np.array([1, 0]), 1)
    with self.assertRaisesRegex(ValueError, "id -1"):
      passk.maj_at_k(np.array([-1, 0]), np.array([1, 0]), 1)


class BootstrapTest(absltest.TestCase):

  def test_matches_normal_approximation(self):
    rng = np.random.default_rng(0)
    values = (rng.random(400) < 0.3).astype(float)
    mean, low, high = passk.bootstrap_ci(values, seed=1, num_resamples=2000)
    se = np.sqrt(mean * (1 - mean) / len(values))
    self.assertAlmostEqual(float(mean), values.mean())
    self.assertAlmostEqual(float(high - low), 2 * 1.96 * se, delta=0.2 * 2 * 1.96 * se)
    self.assertLess(float(low), float(mean))
    self.assertLess(float(mean), float(high))

  def test_trailing_dims_and_degenerate(self):
    values = np.ones((5, 3))
    mean, low, high = passk.bootstrap_ci(values, num_resamples=50)
    np.testing.assert_array_equal([mean, low, high], np.ones((3, 3)))
    with self.assertRaisesRegex(ValueError, "at least one question"):
      passk.bootstrap_ci(np.zeros((0,)))


if __name__ == "__main__":
  absltest.main()
