"""Tests for jaxlm.envs.countdown."""

import itertools

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from jaxlm.envs import countdown as cd


class RulesTest(parameterized.TestCase):

  @parameterized.parameters(
      (3, 5, "+", 8), (5, 3, "-", 2), (3, 5, "-", 2), (4, 6, "*", 24), (12, 4, "/", 3),
      (4, 12, "/", 3), (7, 2, "/", None), (0, 5, "/", None), (5, 5, "-", 0))
  def test_apply_op(self, a, b, op, expected):
    self.assertEqual(cd.apply_op(a, b, op), expected)

  def test_apply_op_rejects_unknown(self):
    with self.assertRaisesRegex(ValueError, "unknown op"):
      cd.apply_op(1, 2, "^")

  def test_config_validation(self):
    with self.assertRaisesRegex(ValueError, "num_numbers"):
      cd.CountdownConfig(num_numbers=7)
    with self.assertRaisesRegex(ValueError, "validation_fraction"):
      cd.CountdownConfig(validation_fraction=0.0)


class VerifyTest(parameterized.TestCase):
  problem = cd.Problem((2, 3, 6, 25), 39)

  def test_hand_solution(self):
    # 39 = 3 * (25 - 6 * 2).
    self.assertEqual(cd.verify(self.problem, "6*2=12\n25-12=13\n13*3=39\n"), (True, "ok"))
    self.assertEqual(cd.verify(self.problem, " 6 * 2 = 12 \n\n25-12=13\n3*13=39"),
                     (True, "ok"))
    self.assertEqual(cd.verify(self.problem, "6*2=12\n25-12=13\n13+3=16"),
                     (False, "final number 16 is not the target 39"))

  def test_known_solution(self):
    problem = cd.Problem((1, 2, 3, 4), 24)
    self.assertEqual(cd.verify(problem, "1*2=2\n2*3=6\n6*4=24"), (True, "ok"))
    self.assertEqual(cd.verify(problem, "trace...\nAnswer:\n4*3=12\n2*1=2\n12*2=24\n"),
                     (True, "ok"))

  @parameterized.named_parameters(
      ("empty", "", "empty solution"),
      ("garbage", "1*2=2\nhello", "line 1: cannot parse 'hello'"),
      ("order", "2-4=2", "line 0: write the larger number first"),
      ("inexact", "3/2=1", "line 0: 3/2 is not an exact division"),
      ("arith", "3*2=7", "line 0: 3\\*2 is 6, not 7"),
      ("missing", "5+1=6", "line 0: 5 is not available"),
      ("reuse", "1*2=2\n2*2=4", "line 1: 2 is not available"),
      ("unused", "1*2=2\n2*3=6", "2 numbers left"),
      ("valid", "1+2=3\n3+3=6\n6*4=24\n", "^ok$"),
      ("pool_valid", "1+2=3|3 3 4\n3+3=6 | 4 6\n6*4=24|24", "^ok$"),
      ("pool_wrong", "1+2=3|3 4\n3+3=6\n6*4=24", r"line 0: numbers left are \[3, 3, 4\], not \[3 4\]"),
      ("pool_order_free", "1+2=3|4 3 3\n3+3=6|6 4\n6*4=24|24", "^ok$"),
      ("pool_garbage", "1+2=3|3 x 4", "line 0: cannot parse"),
  )
  def test_errors(self, text, pattern):
    problem = cd.Problem((1, 2, 3, 4), 24)
    solved, reason = cd.verify(problem, text)
    self.assertRegex(reason, pattern)
    self.assertEqual(solved, reason == "ok")

  def test_final_number(self):
    self.assertEqual(cd.final_number("6*2=12\n25-12=13\n13*3=39\n"), 39)
    self.assertEqual(cd.final_number("3+3=7|7 4"), 7)  # the written number, right or wrong
    self.assertEqual(cd.final_number("trace 5*5=25\nAnswer:\n1+2=3|3 3"), 3)
    self.assertIsNone(cd.final_number("1+2=3\nhello"))
    self.assertIsNone(cd.final_number(""))

  def test_answer_marker_takes_last(self):
    problem = cd.Problem((1, 2, 3, 4), 24)
    self.assertFalse(cd.verify(problem, "Answer:\n1*2=2\n2*3=6\n6*4=24\nAnswer:\n1+2=3")[0])


class SolverTest(parameterized.TestCase):

  @parameterized.parameters(3, 4)
  def test_solver_agrees_with_subset_dp(self, k):
    rng = np.random.default_rng(k)
    for _ in range(6):
      numbers = tuple(sorted(rng.integers(1, 13, size=k).tolist()))
      reachable = cd.reachable_targets(numbers)
      for target in range(0, 60):
        solution = cd.solve(cd.Problem(numbers, target))
        self.assertEqual(solution is not None, target in reachable, (numbers, target))
        if solution is not None:
          self.assertTrue(cd.verify(cd.Problem(numbers, target), "\n".join(solution))[0])

  def test_reachable_by_hand(self):
    # {2, 3}: 5, 1, 6 (3/2 inexact); {2, 4}: 6, 2, 8, 2.
    self.assertEqual(cd.reachable_targets((2, 3)), {5, 1, 6})
    self.assertEqual(cd.reachable_targets((2, 4)), {6, 2, 8})
    self.assertIsNone(cd.solve(cd.Problem((2, 3), 4)))

  def test_brute_force_enumeration_k3(self):
    numbers = (2, 5, 7)
    values = set()
    for a, b, c in itertools.permutations(numbers):
      for op1, op2 in itertools.product(cd.OPS, repeat=2):
        ab = cd.apply_op(a, b, op1)
        if ab is not None and cd.apply_op(ab, c, op2) is not None:
          values.add(cd.apply_op(ab, c, op2))
    self.assertEqual(cd.reachable_targets(numbers), values)


class GeneratorTest(parameterized.TestCase):

  @parameterized.parameters(3, 4, 5, 6)
  def test_generate_solvable_and_deterministic(self, k):
    config = cd.CountdownConfig(num_numbers=k)
    problems = cd.generate(config, seed=0, count=8)
    self.assertEqual(problems, cd.generate(config, seed=0, count=8))
    self.assertNotEqual(problems, cd.generate(config, seed=1, count=8))
    self.assertLen(set(problems), 8)
    for p in problems:
      self.assertLen(p.numbers, k)
      self.assertEqual(list(p.numbers), sorted(p.numbers))
      self.assertBetween(p.target, config.min_target, config.max_target)
      self.assertTrue(all(config.min_number <= x <= config.max_number for x in p.numbers))
      self.assertTrue(cd.verify(p, "\n".join(cd.solve(p)))[0])

  def test_split_disjoint(self):
    config = cd.CountdownConfig(num_numbers=3, max_number=6, min_target=1, max_target=20,
                                validation_fraction=0.3)
    train = cd.generate(config, 0, 150, "train")
    valid = cd.generate(config, 1, 50, "validation")
    self.assertEmpty(set(train) & set(valid))
    self.assertTrue(all(cd.split_of(p, 0.3) == "train" for p in train))
    self.assertTrue(all(cd.split_of(p, 0.3) == "validation" for p in valid))

  def test_bad_split(self):
    with self.assertRaisesRegex(ValueError, "split"):
      cd.generate(cd.CountdownConfig(), 0, 1, "test")


class SearchTraceTest(parameterized.TestCase):

  @parameterized.parameters(3, 4, 5)
  def test_trace_solution_verifies(self, k):
    problems = cd.generate(cd.CountdownConfig(num_numbers=k), seed=3, count=5)
    for p in problems:
      result = cd.search_trace(p, max_expansions=1000)
      self.assertIsNotNone(result.solution)
      self.assertEqual(cd.verify(p, result.trace), (True, "ok"))
      self.assertEqual(result.trace.count("\n#"), result.expansions)

  def test_trace_by_hand(self):
    result = cd.search_trace(cd.Problem((1, 2, 3), 9))
    # Root h = 6; children sorted (h, size, id): 2+1=3 -> [3 3] solves by 3*3=9.
    self.assertEqual(result.trace.splitlines()[:3],
                     ["Goal 9 from [1 2 3]", "#0 [1 2 3] h=6", "  2+1=3 -> [3 3] h=0 #1"])
    self.assertEqual(result.solution, ("2+1=3", "3*3=9"))
    self.assertTrue(result.trace.endswith("Answer:\n2+1=3\n3*3=9"))

  def test_backtracking_and_budget(self):
    p = cd.Problem((6, 25, 38, 50), 97)
    result = cd.search_trace(p)
    self.assertIn("backtrack to #0", result.trace)
    self.assertIn("dead end", result.trace)
    self.assertTrue(cd.verify(p, result.trace)[0])
    short = cd.search_trace(p, max_expansions=2)
    self.assertIsNone(short.solution)
    self.assertTrue(short.trace.endswith("No solution after 2 nodes."))


class EnvTest(absltest.TestCase):

  def test_episode(self):
    env = cd.CountdownEnv(cd.CountdownConfig(num_numbers=3), split="validation")
    text = env.reset(seed=5)
    problem = env.problem
    self.assertIn(str(problem.target), text)
    self.assertEqual(text, env.reset(seed=5))
    obs, reward, done = env.step("\n".join(cd.solve(problem)))
    self.assertEqual((obs, reward, done), ("correct", 1.0, True))
    with self.assertRaisesRegex(ValueError, "before reset"):
      env.step("1+1=2")
    env.reset(seed=6)
    obs, reward, done = env.step("nonsense")
    self.assertEqual((reward, done), (0.0, True))
    self.assertStartsWith(obs, "incorrect: line 0: cannot parse")


if __name__ == "__main__":
  absltest.main()
