"""e3's budget chooser and the p^k model: exact values and a simulation check."""

from absl.testing import absltest
import numpy as np

from jaxlm.rl import curriculum


class BudgetTest(absltest.TestCase):

  def test_truncation_rate_counts_unfinished_as_longer(self):
    lengths = [10, 20, 30, np.inf]
    self.assertEqual(curriculum.truncation_rate(lengths, 20), 0.5)  # 30 and inf
    self.assertEqual(curriculum.truncation_rate(lengths, 10**9), 0.25)

  def test_choose_budget_is_smallest_under_threshold(self):
    lengths = [10] * 6 + [40] * 3 + [np.inf]  # trunc: 16 -> 0.4, 32 -> 0.4, 64 -> 0.1
    self.assertEqual(curriculum.choose_budget(lengths, [64, 16, 32], 0.1), 64)
    self.assertEqual(curriculum.choose_budget(lengths, [64, 16, 32], 0.4), 16)
    self.assertEqual(curriculum.choose_budget(lengths, [8, 9], 0.0), 9)  # none fits: largest

  def test_plan_probes_each_open_stage_in_order(self):
    calls = []

    def probe(stage, cap):
      calls.append((stage.difficulty, cap))
      return [stage.difficulty * 10] * 4

    stages = [curriculum.Stage(3, 100), curriculum.Stage(4, 50, budget=128),
              curriculum.Stage(5, 50)]
    out = curriculum.plan(stages, probe, candidates=(32, 48, 64), threshold=0.0)
    self.assertEqual([s.budget for s in out], [32, 128, 64])
    self.assertEqual(calls, [(3, 64), (5, 64)])

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, "threshold"):
      curriculum.choose_budget([1], [2], 1.0)
    with self.assertRaisesRegex(ValueError, "candidate"):
      curriculum.choose_budget([1], [], 0.1)
    with self.assertRaisesRegex(ValueError, "inf for a trace"):
      curriculum.truncation_rate([1, -1], 2)


class PkTest(absltest.TestCase):

  def test_closed_form(self):
    np.testing.assert_allclose(curriculum.pk_success(0.7, [0, 1, 2, 5]),
                               [0.0, 0.3, 0.51, 1 - 0.7**5], rtol=1e-12)
    # 100 tokens per attempt: a budget of 250 holds 2 attempts, 2x the budget holds 5.
    np.testing.assert_allclose(curriculum.budget_success(0.7, [250, 500], 100),
                               [0.51, 1 - 0.7**5], rtol=1e-12)
    with self.assertRaisesRegex(ValueError, "p must be"):
      curriculum.pk_success(1.5, 2)

  def test_simulation_matches_closed_form(self):
    p, n, k_max = 0.6, 200_000, 6
    success, attempts = curriculum.simulate_attempts(np.random.default_rng(0), p, n, k_max)
    exact = curriculum.pk_success(p, np.arange(k_max + 1))
    se = np.sqrt(exact * (1 - exact) / n)
    np.testing.assert_array_less(np.abs(success - exact), 4 * se + 1e-12)
    # Mean attempts of a chain capped at K: sum_{k=0}^{K-1} p^k.
    mean = sum(p**k for k in range(k_max))
    self.assertLess(abs(attempts.mean() - mean), 4 * attempts.std() / np.sqrt(n))


if __name__ == "__main__":
  absltest.main()
