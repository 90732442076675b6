"""Tests for jaxlm.search.compute_optimal against hand-computed fixtures."""

import os
import tempfile

from absl.testing import absltest
import numpy as np

from jaxlm.search import compute_optimal as co


class BinsTest(absltest.TestCase):

  def test_quantile_bins(self):
    bins = co.difficulty_bins(np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2]), 3)
    np.testing.assert_array_equal(bins, [2, 0, 1, 1, 2, 0])
    np.testing.assert_array_equal(co.difficulty_bins(np.zeros(4), 2), [0, 0, 1, 1])
    with self.assertRaisesRegex(ValueError, "num_bins"):
      co.difficulty_bins(np.zeros(3), 4)


class SelectionTest(absltest.TestCase):

  def test_per_bin_choice(self):
    # Two strategies, one budget: A wins on the hard bin, B on the easy bin.
    acc = np.zeros((8, 2, 1))
    acc[:4, 0], acc[4:, 1] = 1.0, 1.0
    bins = co.difficulty_bins(np.arange(8.0), 2)
    np.testing.assert_array_equal(co.select_strategies(acc, bins, 2), [[0], [1]])
    acc_b, choices = co.compute_optimal_accuracy(acc, bins, 2, num_folds=4)
    np.testing.assert_allclose(acc_b, [1.0])
    self.assertEqual(choices.shape, (4, 2, 1))

  def test_empty_bin_falls_back_to_overall(self):
    acc = np.array([[[0.2], [0.8]], [[0.4], [0.6]]])
    best = co.select_strategies(acc, np.array([0, 0]), 2)
    np.testing.assert_array_equal(best, [[1], [1]])

  def test_held_out_has_no_leakage(self):
    # One bin, leave-one-out. A = [1, 0, 0], B = [0, 1, 1] (budget 0); reversed at budget 1.
    # Holding out q0: train q1, q2 -> B -> q0 scores 0. q1: train q0 (A), q2 (B) tie -> A -> 0.
    # q2: tie -> A -> 0. Held-out mean 0 although in-sample B scores 2/3.
    acc = np.zeros((3, 2, 2))
    acc[:, 0, 0], acc[:, 1, 0] = [1, 0, 0], [0, 1, 1]
    acc[:, 0, 1], acc[:, 1, 1] = [0, 1, 1], [1, 0, 0]
    acc_b, _ = co.compute_optimal_accuracy(acc, np.zeros(3, np.int32), 1, num_folds=3)
    # Budget 1 mirrors: hold q0 -> A -> 0; q1: tie -> A -> 1; q2: tie -> A -> 1.
    np.testing.assert_allclose(acc_b, [0.0, 2 / 3])

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, r"\[Q, C, B\]"):
      co.select_strategies(np.zeros((2, 2)), np.zeros(2, np.int32), 1)
    with self.assertRaisesRegex(ValueError, "num_folds"):
      co.compute_optimal_accuracy(np.zeros((2, 1, 1)), np.zeros(2, np.int32), 1, num_folds=3)


class ReportTest(absltest.TestCase):

  def test_report_and_plot(self):
    rng = np.random.default_rng(0)
    q, budgets = 200, [1, 4, 16]
    easy = rng.random(q)
    # best_of_n is uniformly mediocre; beam is good on easy questions, bad on hard ones.
    acc = np.zeros((q, 2, 3))
    acc[:, 0] = 0.5
    acc[:, 1] = np.where(easy > 0.5, 0.9, 0.2)[:, None]
    report = co.compute_optimal_report(acc, easy, ["best_of_n", "beam"], budgets, num_bins=2,
                                       num_folds=5)
    self.assertAlmostEqual(report["best_of_n"][4], 0.5)
    frac_easy = np.mean(easy > 0.5)
    self.assertAlmostEqual(report["beam"][16], 0.9 * frac_easy + 0.2 * (1 - frac_easy))
    # Choosing per bin: 0.9 on the easy half, 0.5 on the hard half.
    binned_easy = co.difficulty_bins(easy, 2) == 1
    want = np.mean(np.where(binned_easy, np.where(easy > 0.5, 0.9, 0.2), 0.5))
    self.assertAlmostEqual(report["compute_optimal"][1], want)
    self.assertGreaterEqual(report["compute_optimal"][1], report["best_single"][1])
    # Without bins every training fold prefers beam (0.59 > 0.5): held out, beam's accuracy.
    self.assertAlmostEqual(report["best_single_cv"][4], report["beam"][4])
    self.assertGreater(report["compute_optimal"][4], report["best_single_cv"][4] + 0.1)
    self.assertAlmostEqual(report["gain_over_best_of_n"][1], want - 0.5)
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, "plot.png")
      co.plot_accuracy_vs_budget(report, path)
      self.assertGreater(os.path.getsize(path), 1000)
    with self.assertRaisesRegex(ValueError, "baseline"):
      co.compute_optimal_report(acc, easy, ["a", "b"], budgets)


if __name__ == "__main__":
  absltest.main()
