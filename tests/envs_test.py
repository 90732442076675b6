"""Tests for jaxlm.envs: Wordle, Maze, rollouts and score helpers."""

import json
import os
import tempfile

from absl.testing import absltest, parameterized
import numpy as np
import scipy.stats

from jaxlm import envs
from jaxlm import evaluation
from jaxlm import files
from jaxlm.data import SimpleTokenizer, to_rl_batch
from jaxlm.envs import maze as maze_lib
from jaxlm.envs import tasks
from jaxlm.envs import wordle as wordle_lib

SMALL_WORDS = wordle_lib.load_words()[::10]  # ~300 words: fast solver table


class WordleTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.solver = envs.WordleSolver(SMALL_WORDS)

  def test_shipped_word_list(self):
    words = wordle_lib.load_words()
    self.assertBetween(len(words), 2000, 5000)
    self.assertEqual(len(set(words)), len(words))
    self.assertTrue(all(len(w) == 5 and w.isalpha() and w.islower() for w in words))
    self.assertIn("crane", words)

  @parameterized.parameters(
      ("speed", "abide", "bbyby"),   # two e's guessed, one in the answer: one yellow
      ("eerie", "three", "ybgbg"),   # green e's consume copies before yellows
      ("llama", "hello", "yybbb"),
      ("crane", "crane", "ggggg"),
      ("robot", "motor", "ygbgy"),
  )
  def test_feedback_hand(self, guess, answer, want):
    self.assertEqual(wordle_lib.feedback(guess, answer), want)
    letters = wordle_lib._letters
    code = wordle_lib.feedback_codes(letters([guess]), letters([answer]))[0, 0]
    self.assertEqual(wordle_lib.code_to_str(code), want)

  def test_vectorised_feedback_matches_reference(self):
    rng = np.random.default_rng(0)
    for _ in range(300):
      g, a = (SMALL_WORDS[i] for i in rng.integers(len(SMALL_WORDS), size=2))
      code = self.solver.codes[self.solver.index[g], self.solver.index[a]]
      self.assertEqual(wordle_lib.code_to_str(code), wordle_lib.feedback(g, a), (g, a))

  def test_env_semantics(self):
    env = envs.Wordle(SMALL_WORDS)
    self.assertEqual(env.reset(3), "Wordle:\n")
    answer = env.answer
    wrong = next(w for w in SMALL_WORDS if w != answer)
    obs, r, done = env.step(wordle_lib.format_guess(wrong))
    self.assertEqual((obs, r, done), (wordle_lib.format_guess(wordle_lib.feedback(wrong, answer)),
                                      -1.0, False))
    self.assertEqual(env.step("zzzzz\n"), ("\n", -1.0, False))  # not a word: penalised
    self.assertEqual(env.step("toolong"), ("\n", -1.0, False))
    obs, r, done = env.step(" ".join(answer))
    self.assertEqual((obs, r, done), ("g g g g g\n", 0.0, True))
    with self.assertRaises(ValueError):
      env.step(answer)
    env.reset(3)
    self.assertEqual(env.answer, answer)  # deterministic in the seed

  def test_six_guesses_end_the_episode(self):
    env = envs.Wordle(SMALL_WORDS, invalid_reward=-2.0)
    env.reset(0)
    outs = [env.step("qqqqq") for _ in range(6)]
    self.assertEqual([o[1] for o in outs], [-2.0] * 6)
    self.assertEqual([o[2] for o in outs], [False] * 5 + [True])

  def test_info_gain_solver(self):
    trajs = envs.rollout(lambda: envs.Wordle(SMALL_WORDS), envs.info_gain_policy(self.solver),
                         range(40), 6)
    self.assertTrue(all(t.done for t in trajs))
    returns = np.array([t.total_return for t in trajs])
    self.assertTrue(np.all(returns > -6))  # always solves a 295-word list within 6 guesses
    # Candidates stay consistent with the history and contain the answer.
    env = envs.Wordle(SMALL_WORDS)
    env.reset(7)
    history = (("Wordle:\n", False),)
    for _ in range(2):
      guess = self.solver.act(history)
      obs, _, _ = env.step(guess)
      history += ((guess, True), (obs, False))
    cands = [SMALL_WORDS[i] for i in self.solver.candidates(history)]
    self.assertIn(env.answer, cands)
    for g, fb in wordle_lib.parse_history(history):
      self.assertTrue(all(wordle_lib.feedback(g, c) == fb for c in cands))

  def test_dataset_builder(self):
    a = envs.wordle_dataset(20, 5, solver=self.solver)
    b = envs.wordle_dataset(20, 5, solver=self.solver)
    self.assertEqual(a, b)
    self.assertLen(a, 20)
    for t in a:
      t.validate()
    r_smart = np.mean([t.total_return for t in a[4::5]])   # prob_smart 1.0
    r_random = np.mean([t.total_return for t in a[0::5]])  # prob_smart 0.0
    self.assertGreater(r_smart, r_random)
    batch = to_rl_batch(a, SimpleTokenizer.words(["Wordle:\n"]), max_len=80)
    self.assertEqual(batch.shape, (20, 80))  # 6 guesses = 3 + 6 * 12 tokens + BOS

  def test_word_subset_is_evenly_spaced_and_deterministic(self):
    ten = tuple(f"{c}aaaa" for c in "abcdefghij")
    # Word i * 10 // 4 for i < 4: indices 0, 2, 5, 7.
    self.assertEqual(wordle_lib.word_subset(4, ten), ("aaaaa", "caaaa", "faaaa", "haaaa"))
    self.assertEqual(wordle_lib.word_subset(10, ten), ten)
    sub = wordle_lib.word_subset(100)
    self.assertEqual(sub, wordle_lib.word_subset(100))
    self.assertLen(set(sub), 100)
    self.assertTrue(set(sub) <= set(wordle_lib.load_words()))
    self.assertEqual(list(sub), sorted(sub))  # list order kept

  @parameterized.parameters(0, -3, 2944, 2.5, True, "100")
  def test_word_subset_rejects_bad_sizes(self, n):
    with self.assertRaisesRegex(ValueError, r"n must be an int in \[1, 2943\]"):
      wordle_lib.word_subset(n)

  def test_subset_score_constants_match_a_recomputation(self):
    self.assertIs(wordle_lib.wordle_scores(0), wordle_lib.WORDLE_SCORES)
    self.assertNotEmpty(wordle_lib.SUBSET_SCORES)
    for n, stored in wordle_lib.SUBSET_SCORES.items():
      self.assertIs(wordle_lib.wordle_scores(n), stored)
      # 400 fresh episodes: the dataset's return has std ~1.6 (SE ~0.08), the solver's ~0.6.
      fresh = wordle_lib.score_constants(wordle_lib.word_subset(n), episodes=400, seed=1)
      self.assertEqual(fresh.min, stored.min)
      self.assertAlmostEqual(fresh.mean, stored.mean, delta=0.3, msg=n)
      self.assertAlmostEqual(fresh.max, stored.max, delta=0.12, msg=n)
      self.assertLess(stored.min, stored.mean)
      self.assertLess(stored.mean, stored.max)

  def test_score_constants_by_hand_on_two_words(self):
    # Two answers. The solver guesses the first listed word, then the other one if wrong:
    # max = -0.5. At prob_smart p a guess wins with q = p + (1 - p) / 2, except the first
    # guess when the answer is the second word (q0 = (1 - p) / 2); the failed guesses (capped
    # at 6) averaged over both answers and the five levels give -0.704 (computed in closed form).
    def expected(qs):
      alive, total = 1.0, 0.0
      for k, q in enumerate(qs):
        total, alive = total - k * alive * q, alive * (1 - q)
      return total - 6 * alive
    levels = [(expected([p + (1 - p) / 2] * 6) + expected([(1 - p) / 2] + [p + (1 - p) / 2] * 5))
              / 2 for p in (0.0, 0.25, 0.5, 0.75, 1.0)]
    self.assertAlmostEqual(np.mean(levels), -0.704, places=3)
    fresh = wordle_lib.score_constants(("crane", "slate"), episodes=2000)
    self.assertEqual(fresh.min, -6.0)
    self.assertAlmostEqual(fresh.max, -0.5, delta=0.05)
    self.assertAlmostEqual(fresh.mean, -0.704, delta=0.06)  # SE ~0.02


class MazeTest(parameterized.TestCase):

  def test_layout_and_optimal_return(self):
    m = envs.Maze()
    self.assertEqual(m.distance[1, 1], 12)  # across the top bar, down and along to the stem
    self.assertEqual(m.distance[7, 6], 1)
    self.assertLen(m.starts, 25)
    self.assertAlmostEqual(m.optimal_return(), -6.84)  # LMRL-Gym's published max
    self.assertEqual(envs.MAZE_SCORES.max, -6.84)

  def test_observations(self):
    fo, po = envs.Maze(True), envs.Maze(False)
    fo.position = po.position = (1, 1)
    self.assertEqual(fo.describe(),
                     "The goal is at position 8, 6. Your current position is at position 1, 1. "
                     "There are walls to your left, above you, below you.\n")
    self.assertEqual(po.describe(), "There are walls to your left, above you, below you.\n")
    fo.position = (5, 6)
    self.assertTrue(fo.describe().endswith("There is a wall above you.\n"))
    wide = envs.Maze(True, layout=["#" * 12, "#" + "." * 10 + "#", "#" * 12], goal=(1, 10))
    wide.position = (1, 5)
    self.assertIn("goal is at position 1, 1 0.", wide.describe())  # digit by digit
    self.assertEqual(maze_lib.parse_position(wide.describe()), (1, 5))

  def test_step_semantics(self):
    m = envs.Maze(max_steps=4)
    m.reset(0)
    m.position = (7, 6)
    self.assertEqual(m.step("move left\n")[1:], (-1.0, False))    # wall bump: no move
    self.assertEqual(m.position, (7, 6))
    self.assertEqual(m.step("jump")[1:], (-4.0, False))           # illegal text
    self.assertEqual(m.step("move down"), ("Success\n", 0.0, True))
    with self.assertRaises(ValueError):
      m.step("move up")
    m.reset(0)
    outs = [m.step("move up\n") for _ in range(4)]
    self.assertEqual(outs[-1], ("Failure\n", -1.0, True))
    self.assertEqual([o[2] for o in outs], [False] * 3 + [True])

  def test_solver_is_optimal_from_every_start(self):
    m = envs.Maze()
    trajs = envs.rollout(lambda: envs.Maze(), envs.solver_policy(m), range(60), 100)
    for seed, t in enumerate(trajs):
      start = envs.Maze()
      start.reset(seed)
      self.assertTrue(t.done)
      self.assertEqual(t.total_return, -(m.distance[start.position] - 1))
      self.assertEqual(t.texts[-1], "Success\n")

  def test_dataset_recipe_po_replay_and_normalisation(self):
    fo = envs.maze_dataset(300, 1)
    po = envs.maze_dataset(300, 1, fully_observed=False)
    self.assertEqual(fo, envs.maze_dataset(300, 1))
    self.assertEqual([t.rewards for t in fo], [t.rewards for t in po])
    self.assertNotIn("position", "".join(po[0].texts))
    self.assertIn("position", fo[0].texts[0])
    returns = np.array([t.total_return for t in fo])
    mean, half = envs.mean_confidence_interval(returns)
    # MAZE_SCORES.mean (-77.62 from 10,000 episodes) lies inside a wide interval of 300.
    self.assertLess(abs(mean - envs.MAZE_SCORES.mean), 2 * half)
    self.assertTrue(np.all(returns >= envs.MAZE_SCORES.min))
    tok = SimpleTokenizer.words(envs.Maze().texts())
    batch = to_rl_batch(fo[:5], tok, max_len=128)
    self.assertEqual(int(batch.loss_mask.sum()), sum(3 * (len(t.texts) // 2) for t in fo[:5]))


class HelpersTest(parameterized.TestCase):

  def test_normalized_score(self):
    s = envs.ScoreConstants(min=-100.0, mean=-80.0, max=-10.0)
    np.testing.assert_allclose(s.normalize([-100.0, -90.0, -80.0, -45.0, -10.0, 0.0]),
                               [0.0, 25.0, 50.0, 75.0, 100.0, 100.0 + 50.0 / 7])
    self.assertAlmostEqual(envs.MAZE_SCORES.normalize(-6.84), 100.0)
    with self.assertRaises(ValueError):
      envs.normalized_score(0.0, 1.0, 0.0, 2.0)

  def test_mean_confidence_interval(self):
    x = [1.0, 2.0, 3.0, 4.0]
    mean, half = envs.mean_confidence_interval(x, 0.95)
    self.assertEqual(mean, 2.5)
    # t_{0.975, 3} = 3.1824; sem = sqrt(5/3)/2.
    self.assertAlmostEqual(half, 3.182446 * np.sqrt(5 / 3) / 2, places=4)
    lo, hi = scipy.stats.t.interval(0.95, 3, loc=2.5, scale=scipy.stats.sem(x))
    self.assertAlmostEqual(hi - mean, half, places=6)
    self.assertTrue(np.isnan(envs.mean_confidence_interval([1.0])[1]))

  def test_one_episode_has_no_interval_and_still_writes_strict_json(self):
    task = tasks.make_task("maze_fo")
    row, = evaluation.rollout_scores(lambda hs, _: ["move up\n"] * len(hs), task, 1, 1, 0)
    self.assertIsNone(row["return_ci"])
    self.assertIsNone(row["normalized_ci"])
    self.assertEqual(row["episodes"], 1)
    with tempfile.TemporaryDirectory() as d:
      files.write_json(os.path.join(d, "r.json"), {"bc": row})
      with open(os.path.join(d, "r.json")) as f:
        self.assertIsNone(json.load(f)["bc"]["normalized_ci"])
    self.assertIn("+- n/a", evaluation.results_table({"bc": row}))

  def test_rollout_with_env_list_and_errors(self):
    seeds = [0, 1, 2]
    listed = envs.rollout([envs.Maze() for _ in seeds], envs.random_policy(
        np.random.default_rng(0)), seeds, 5)
    made = envs.rollout(envs.Maze, envs.random_policy(np.random.default_rng(0)), seeds, 5)
    self.assertEqual(listed, made)
    for t in listed:  # cut by max_steps: not done, ends with an observation
      self.assertFalse(t.is_action[-1])
      if not t.done:
        self.assertLen(t.texts, 11)
    with self.assertRaisesRegex(ValueError, "2 envs for 3 seeds"):
      envs.rollout([envs.Maze(), envs.Maze()], lambda h: ["move up"] * len(h), seeds, 3)
    with self.assertRaisesRegex(ValueError, "returned 0 actions"):
      envs.rollout(envs.Maze, lambda h: [], seeds, 3)


if __name__ == "__main__":
  absltest.main()
