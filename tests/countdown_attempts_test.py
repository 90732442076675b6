"""e3 attempt-chain traces: the grammar round-trips and the verdicts are exact."""

from absl.testing import absltest
import numpy as np

from jaxlm.envs import countdown
from jaxlm.envs import countdown_attempts as ca
from jaxlm.envs import countdown_data

PROBLEM = countdown.Problem((2, 3, 4), 24)


class AttemptsTest(absltest.TestCase):

  def test_hand_trace(self):
    text = ca.format_attempts(PROBLEM, [("4+3=7|2 7", "7*2=14|14"), ("3*2=6|4 6", "6*4=24|24"),
                                        ("4*3=12|2 12", "12*2=24|24")])
    self.assertEqual(text, "attempt 1\n4+3=7|2 7\n7*2=14|14\nverify 14 vs 24 no\n"
                           "attempt 2\n3*2=6|4 6\n6*4=24|24\nverify 24 vs 24 goal\n"
                           "Answer:\n3*2=6|4 6\n6*4=24|24")  # stops at the first goal
    self.assertTrue(countdown.verify(PROBLEM, text)[0])
    attempts, answer = ca.parse_attempts(text)
    self.assertEqual([a.goal for a in attempts], [False, True])
    self.assertEqual(answer, ("3*2=6|4 6", "6*4=24|24"))
    self.assertEqual(ca.check_verdicts(PROBLEM, attempts), 1.0)
    self.assertEqual(ca.count_attempts(text), 2)
    self.assertFalse(ca.false_goal(PROBLEM, text))

  def test_invalid_attempt_and_give_up(self):
    text = ca.format_attempts(PROBLEM, [("4+4=8|2 3 8",), ("9*2=18|18",)])
    self.assertEqual(text, "attempt 1\n4+4=8|2 3 8\nverify invalid\n"
                           "attempt 2\n9*2=18|18\nverify invalid\nNo solution.")
    attempts, answer = ca.parse_attempts(text)
    self.assertIsNone(answer)
    self.assertFalse(countdown.verify(PROBLEM, text)[0])
    # A model that claims a wrong attempt reached the goal is caught.
    lie = text.replace("verify invalid\nattempt 2", "verify 8 vs 24 goal\nattempt 2")
    self.assertEqual(ca.check_verdicts(PROBLEM, ca.parse_attempts(lie)[0]), 0.5)
    self.assertFalse(ca.false_goal(PROBLEM, text))  # an honest give-up
    false_end = ("attempt 1\n4+3=7|2 7\n7*2=14|14\nverify 14 vs 24 goal\n"
                 "Answer:\n4+3=7|2 7\n7*2=14|14")
    self.assertTrue(ca.false_goal(PROBLEM, false_end))
    self.assertFalse(ca.false_goal(PROBLEM, false_end[:30]))  # truncated: not an ending

  def test_generated_traces_round_trip(self):
    rng = np.random.default_rng(0)
    problems = countdown_data.make_problems((3, 4), 40, "train", seed=1, max_number=12,
                                            max_target=50)
    for problem in problems:
      k = int(rng.integers(1, 5))
      text = ca.attempts_trace(problem, k, rng)
      attempts, answer = ca.parse_attempts(text)
      self.assertLessEqual(len(attempts), k)
      self.assertEqual([a.goal for a in attempts], [False] * (len(attempts) - 1) + [True])
      self.assertEqual(answer, attempts[-1].steps)
      self.assertTrue(countdown.verify(problem, text)[0], text)
      self.assertEqual(ca.check_verdicts(problem, attempts), 1.0)
      self.assertLessEqual(set(text), set(countdown_data.TRACE_ALPHABET))
      unsolved = ca.attempts_trace(problem, k, rng, solve_last=False)
      self.assertTrue(unsolved.endswith(ca.GIVE_UP))

  def test_miscount_share(self):
    rng = np.random.default_rng(4)
    problems = countdown_data.make_problems((3, 4), 30, "train", seed=2, max_number=12,
                                            max_target=50)
    def verdicts(miscount):
      out = []
      for problem in problems:
        attempts, _ = ca.parse_attempts(ca.attempts_trace(problem, 4, rng, miscount=miscount))
        self.assertEqual(ca.check_verdicts(problem, attempts), 1.0)
        out += [a.written for a in attempts[:-1]]  # the failed ones
      return np.array([v == "verify invalid" for v in out])
    self.assertTrue(verdicts(1.0).all())
    self.assertFalse(verdicts(0.0).any())
    self.assertBetween(verdicts(0.25).mean(), 0.12, 0.38)  # 90 draws of p=0.25: sd 0.046
    # miscount=0 draws nothing extra: the trace the code wrote before miscounts existed.
    self.assertEqual(ca.attempts_trace(problems[0], 3, np.random.default_rng(7)),
                     "attempt 1\n5/1=5|5 9\n9+5=14|14\nverify 14 vs 15 no\n"
                     "attempt 2\n5+1=6|6 9\n9-6=3|3\nverify 3 vs 15 no\n"
                     "attempt 3\n9+5=14|1 14\n14+1=15|15\nverify 15 vs 15 goal\n"
                     "Answer:\n9+5=14|1 14\n14+1=15|15")

  def test_parse_errors_name_the_line(self):
    with self.assertRaisesRegex(ValueError, "line 1"):
      ca.parse_attempts("3*2=6|4 6\nverify 6 vs 24 no")
    with self.assertRaisesRegex(ValueError, "line 1: expected 'attempt 1'"):
      ca.parse_attempts("attempt 2\n3*2=6|4 6\nverify 6 vs 24 no\nNo solution.")
    with self.assertRaisesRegex(ValueError, "line 4"):
      ca.parse_attempts("attempt 1\n3*2=6|4 6\nverify 6 vs 24 no\nAnswer")
    self.assertEqual(ca.count_attempts("attempt 1\n3*2=6|4 6\nverify 6 vs 24 no\nattempt 2\n3*"),
                     2)

  def test_env_verdict_by_hand(self):
    prompt = countdown_data.prompt_text(PROBLEM)
    first = prompt + "attempt 1\n4+3=7|2 7\n7*2=14|14\nv"
    self.assertEqual(ca.env_verdict(PROBLEM, first), ("erify 14 vs 24 no\n", False))
    second = first + "erify 14 vs 24 no\nattempt 2\n3*2=6|4 6\n6*4=24|24\nv"
    rest, done = ca.env_verdict(PROBLEM, second)
    self.assertEqual((rest, done), ("erify 24 vs 24 goal\nAnswer:\n3*2=6|4 6\n6*4=24|24", True))
    # The environment's turns complete exactly the trace format_attempts writes.
    self.assertEqual(second + rest, prompt + ca.format_attempts(
        PROBLEM, [("4+3=7|2 7", "7*2=14|14"), ("3*2=6|4 6", "6*4=24|24")]))
    invalid = prompt + "attempt 1\n4+4=8|2 3 8\nv"
    self.assertEqual(ca.env_verdict(PROBLEM, invalid), ("erify invalid\n", False))

  def test_env_verdict_errors_name_the_line(self):
    prompt = countdown_data.prompt_text(PROBLEM)
    with self.assertRaisesRegex(ValueError, "line 3: 'v' must begin a verdict line"):
      ca.env_verdict(PROBLEM, prompt + "attempt 1\n4+3=7|2 v")
    with self.assertRaisesRegex(ValueError, "line 3: a verdict needs"):
      ca.env_verdict(PROBLEM, prompt + "attempt 1\nv")
    with self.assertRaisesRegex(ValueError, "line 3: a verdict needs"):
      ca.env_verdict(PROBLEM, prompt + "4+3=7|2 7\nv")

  def test_verdict_start_begins_only_verdict_lines(self):
    # Every other line of the grammar avoids VERDICT_START anywhere, so a sampler may hand the
    # turn over at the first one the policy writes.
    rng = np.random.default_rng(0)
    for _ in range(50):
      text = ca.attempts_trace(PROBLEM, int(rng.integers(1, 5)), rng,
                               solve_last=bool(rng.random() < 0.5))
      for line in text.split("\n"):
        self.assertEqual(ca.VERDICT_START in line, line.startswith("verify"), line)


if __name__ == "__main__":
  absltest.main()
