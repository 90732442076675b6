"""Tests for jaxlm.envs.countdown and its text format / datasets (countdown_data)."""

import itertools
import re

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from jaxlm.envs import countdown as cd
from jaxlm.envs import countdown_search as cs
from jaxlm.envs import countdown_data as cdd


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
      ("pool_wrong", "1+2=3|3 4\n3+3=6\n6*4=24",
       r"line 0: numbers left are \[3, 3, 4\], not \[3 4\]"),
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
      result = cs.search_trace(p, max_expansions=1000)
      self.assertIsNotNone(result.solution)
      self.assertEqual(cd.verify(p, result.trace), (True, "ok"))
      self.assertEqual(result.trace.count("\n#"), result.expansions)

  def test_trace_by_hand(self):
    result = cs.search_trace(cd.Problem((1, 2, 3), 9))
    # Root h = 6; children sorted (h, size, id): 2+1=3 -> [3 3] solves by 3*3=9.
    self.assertEqual(result.trace.splitlines()[:3],
                     ["Goal 9 from [1 2 3]", "#0 [1 2 3] h=6", "  2+1=3 -> [3 3] h=0 #1"])
    self.assertEqual(result.solution, ("2+1=3", "3*3=9"))
    self.assertTrue(result.trace.endswith("Answer:\n2+1=3\n3*3=9"))

  def test_backtracking_and_budget(self):
    p = cd.Problem((6, 25, 38, 50), 97)
    result = cs.search_trace(p)
    self.assertIn("backtrack to #0", result.trace)
    self.assertIn("dead end", result.trace)
    self.assertTrue(cd.verify(p, result.trace)[0])
    short = cs.search_trace(p, max_expansions=2)
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


class DataTest(absltest.TestCase):
  """The text format and SFT rows of jaxlm.envs.countdown_data."""

  def test_random_solutions_verify(self):
    rng = np.random.default_rng(0)
    for problem in cdd.make_problems((3, 4), 6, "train", seed=0, max_number=20):
      steps = cdd.random_solution(problem, rng)
      self.assertLen(steps, len(problem.numbers) - 1)
      self.assertEqual(cd.verify(problem, "\n".join(steps)), (True, "ok"))
    with self.assertRaisesRegex(ValueError, "no solution"):
      cdd.random_solution(cd.Problem((1, 1, 1), 99), rng)

  def test_random_solution_writes_pool(self):
    # Same seed, same moves: the annotated steps are the plain steps plus the numbers left,
    # recomputed here by hand from each step.
    problem = cd.Problem((2, 3, 6, 25), 39)
    plain = cdd.random_solution(problem, np.random.default_rng(3))
    annotated = cdd.random_solution(problem, np.random.default_rng(3), write_pool=True)
    pool = list(problem.numbers)
    for step, line in zip(plain, annotated, strict=True):
      lhs, c = step.split("=")
      a, b = (int(x) for x in lhs.replace("*", "+").replace("-", "+").replace("/", "+").split("+"))
      pool.remove(a)
      pool.remove(b)
      pool.append(int(c))
      self.assertEqual(line, f"{step}|{' '.join(map(str, sorted(pool)))}")
    self.assertEqual(annotated[-1].split("|")[1], "39")
    self.assertEqual(cd.verify(problem, "\n".join(annotated)), (True, "ok"))
    batch = cdd.sft_batch([problem], max_len=64, seed=0, write_pool=True)
    tok = cdd.tokenizer()
    n = int(batch.attention_mask.sum())
    text = tok.decode(batch.tokens[0, len(cdd.encode_prompt(tok, problem)):n])
    self.assertEqual(text.count("|"), 3)
    self.assertEqual(cd.verify(problem, text), (True, "ok"))

  def test_near_miss_is_an_honest_closest_attempt(self):
    rng = np.random.default_rng(1)
    misses = 0
    for problem in cdd.make_problems((3, 4), 40, "train", seed=0, max_number=12):
      steps = cdd.random_solution(problem, rng, write_pool=True, near_miss=True)
      self.assertLen(steps, len(problem.numbers) - 1)
      solved, reason = cd.verify(problem, "\n".join(steps))
      self.assertTrue(solved or reason.startswith("final number"), reason)  # arithmetic holds
      misses += not solved
      # The last step's result is the reachable value closest to the target (by hand: all ops).
      last, pool = steps[-1].split("|")
      a, b = sorted(int(x) for x in re.split(r"[-+*/=]", last)[:2])
      results = [cd.apply_op(a, b, op) for op in cd.OPS]
      best = min(abs(r - problem.target) for r in results if r is not None)
      self.assertEqual(abs(int(pool) - problem.target), best)
    self.assertGreater(misses, 20)  # random moves mostly miss

  def test_slip_misses_only_at_the_last_step(self):
    rng = np.random.default_rng(2)
    for problem in cdd.make_problems((3, 4), 40, "train", seed=0, max_number=12):
      steps = cdd.random_solution(problem, rng, write_pool=True, slip=True)
      solved, reason = cd.verify(problem, "\n".join(steps))
      self.assertFalse(solved)
      self.assertTrue(reason.startswith("final number"), reason)  # arithmetic holds
      # Before the last step the pool is still solvable ...
      before = steps[-2].split("|")[1] if len(steps) > 1 else " ".join(map(str, problem.numbers))
      pool = tuple(sorted(int(x) for x in before.split()))
      self.assertIsNotNone(cd.solve(cd.Problem(pool, problem.target)))
      # ... and the last step is the closest miss on its two numbers (by hand: all ops).
      results = [cd.apply_op(pool[0], pool[1], op) for op in cd.OPS]
      best = min(abs(r - problem.target) for r in results
                 if r is not None and r != problem.target)
      self.assertEqual(abs(int(steps[-1].split("|")[1]) - problem.target), best)

  def test_miscount_errs_at_one_step_and_carries_it(self):
    rng = np.random.default_rng(3)
    positions = set()
    for problem in cdd.make_problems((3, 4), 40, "train", seed=0, max_number=12):
      steps = cdd.random_solution(problem, rng, write_pool=True, miscount=True)
      self.assertLen(steps, len(problem.numbers) - 1)
      pool, wrong = list(problem.numbers), []
      for k, step in enumerate(steps):  # replay by hand: operands come from the written pool
        line, written_pool = step.split("|")
        a, op, b, c = re.fullmatch(r"(\d+)([-+*/])(\d+)=(\d+)", line).groups()
        a, b, c = int(a), int(b), int(c)
        pool.remove(a)
        pool.remove(b)
        pool.append(c)  # the written result, right or wrong, is carried on
        self.assertEqual(sorted(pool), [int(x) for x in written_pool.split()])
        if cd.apply_op(a, b, op) != c:
          wrong.append(k)
          self.assertBetween(abs(cd.apply_op(a, b, op) - c), 1, 3)
      self.assertLen(wrong, 1)  # exactly one arithmetic error
      positions.add(wrong[0])
      self.assertIn("is", cd.verify(problem, "\n".join(steps))[1])  # "a+b is x, not y"
    self.assertEqual(positions, {0, 1, 2})  # at any step

  def test_sft_batch_near_miss_fraction(self):
    problems = cdd.make_problems((3,), 200, "train", seed=0, max_number=12)
    tok = cdd.tokenizer()

    def solved(batch):
      out = []
      for b, p in enumerate(problems):
        n, start = int(batch.attention_mask[b].sum()), len(cdd.encode_prompt(tok, p))
        out.append(cd.verify(p, tok.decode(batch.tokens[b, start:n]))[0])
      return np.array(out)

    self.assertTrue(solved(cdd.sft_batch(problems, 48, seed=0, write_pool=True)).all())
    rate = solved(cdd.sft_batch(problems, 48, seed=0, write_pool=True,
                                near_miss_fraction=0.5)).mean()
    self.assertBetween(rate, 0.4, 0.75)  # ~half are near misses, a few of which still hit
    with self.assertRaisesRegex(ValueError, "near_miss_fraction"):
      cdd.sft_batch(problems, 48, seed=0, near_miss_fraction=1.0)

  def test_sft_batch(self):
    problem = cd.Problem((2, 3, 6, 25), 39)
    batch = cdd.sft_batch([problem], max_len=40, seed=0)
    tok = cdd.tokenizer()
    prompt = cdd.encode_prompt(tok, problem)
    self.assertEqual(tok.decode(prompt), "39|2 3 6 25\n")
    n = int(batch.attention_mask.sum())
    self.assertEqual(batch.tokens[0, n - 1], tok.eos_id)
    np.testing.assert_array_equal(batch.action_mask[0, :len(prompt)], 0)
    np.testing.assert_array_equal(batch.action_mask[0, len(prompt):n], 1)
    text = tok.decode(batch.tokens[0, len(prompt):n])
    self.assertEqual(cd.verify(problem, text), (True, "ok"))
    with self.assertRaisesRegex(ValueError, "max_len=10"):
      cdd.sft_batch([problem], max_len=10, seed=0)

  def test_trace_completion(self):
    problem = cd.Problem((2, 3, 6), 12)
    text = cdd.trace_completion(problem)
    think, answer = text.split(cdd.THINK_CLOSE)
    self.assertTrue(answer.startswith(cdd.ANSWER_PREFIX))
    self.assertNotIn(cd.ANSWER_MARKER, think)
    self.assertTrue(think.startswith("Goal 12 from [2 3 6]\n#0 [2 3 6]"))
    self.assertEqual(cd.verify(problem, text), (True, "ok"))
    self.assertEqual(answer[len(cdd.ANSWER_PREFIX):].splitlines(),
                     list(cs.search_trace(problem).solution))
    self.assertIsNone(cdd.trace_completion(cd.Problem((1, 1, 1), 99)))

  def test_trace_sft_batch_drops_long_rows(self):
    tok = cdd.trace_tokenizer()
    short, long = cd.Problem((2, 3, 6), 12), cd.Problem((7, 9, 11, 12), 48)
    lengths = [len(cdd.encode_prompt(tok, p)) + 1 + len(tok.encode(cdd.trace_completion(p))) + 1
               for p in (short, long)]
    self.assertLess(lengths[0], lengths[1])
    batch = cdd.trace_sft_batch([short, long], max_len=lengths[0])
    self.assertEqual(batch.tokens.shape, (1, lengths[0]))
    prompt = cdd.encode_prompt(tok, short) + tok.encode(cdd.THINK_OPEN)
    np.testing.assert_array_equal(batch.tokens[0, :len(prompt)], prompt)
    np.testing.assert_array_equal(batch.action_mask[0, :len(prompt)], 0)
    np.testing.assert_array_equal(batch.action_mask[0, len(prompt):], 1)
    self.assertEqual(batch.tokens[0, -1], tok.eos_id)
    self.assertEqual(tok.decode(batch.tokens[0, len(prompt):]), cdd.trace_completion(short))
    self.assertEqual(cdd.trace_sft_batch([short, long], max_len=lengths[1]).tokens.shape[0], 2)
    with self.assertRaisesRegex(ValueError, "fits max_len=20"):
      cdd.trace_sft_batch([short], max_len=20)


if __name__ == "__main__":
  absltest.main()
