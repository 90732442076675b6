"""GRESO's pre-rollout filter (jaxlm.rl.selection) against hand-computed fixtures."""

from absl.testing import absltest
import numpy as np

from jaxlm.rl import selection


class SelectionTest(absltest.TestCase):

  def test_skip_probability(self):
    # 1 - max(p ** s, 0.01): s = 0 never skips; p = 0.5, s = 2 -> 0.75; s = 10 hits the floor.
    np.testing.assert_allclose(selection.skip_probability([0, 1, 2, 10], 0.5),
                               [0.0, 0.5, 0.75, 0.99])
    np.testing.assert_allclose(selection.skip_probability([3], 0.9), [1 - 0.729])

  def test_update_streaks_and_probabilities(self):
    state = selection.Filter.create(5)
    # Prompt 3 twice (all solved, then all failed), prompt 1 varies, prompt 4 all solved.
    prompts = np.array([3, 1, 3, 4])
    rewards = np.array([[1, 1], [0, 1], [0, 0], [1, 1]], float)
    new, stats = selection.update(state, prompts, rewards, target=0.25)
    np.testing.assert_array_equal(new.easy, [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(new.hard, [0, 0, 0, 1, 0])
    # Easy share 2/4 >= 0.25/3: p_easy 0.5 -> 0.49; hard share 1/4 >= 0.5/3: p_hard -> 0.49.
    self.assertEqual((stats["easy_share"], stats["hard_share"]), (0.5, 0.25))
    self.assertAlmostEqual(new.p_easy, 0.49)
    self.assertAlmostEqual(new.p_hard, 0.49)
    # Again all solved: prompt 4's easy streak grows; a hard share of 0 < 1/6 raises p_hard.
    new2, _ = selection.update(new, np.array([4, 0]), np.array([[1, 1], [1, 1]], float))
    self.assertEqual(new2.easy[4], 2)
    self.assertAlmostEqual(new2.p_hard, 0.50)
    self.assertAlmostEqual(new2.p_easy, 0.48)
    # A varying group resets a streak; adapt=False leaves the probabilities.
    new3, _ = selection.update(new2, np.array([4]), np.array([[0.0, 1.0]]), adapt=False)
    self.assertEqual((new3.easy[4], new3.hard[4]), (0, 0))
    self.assertEqual((new3.p_easy, new3.p_hard), (new2.p_easy, new2.p_hard))
    # Equal rewards below `solved` are hard (a shaped reward that never reaches 1).
    new4, _ = selection.update(new3, np.array([2]), np.array([[0.5, 0.5]]))
    self.assertEqual((new4.easy[2], new4.hard[2]), (0, 1))

  def test_probabilities_stay_in_bounds(self):
    state = selection.Filter.create(2)
    for _ in range(100):
      state, _ = selection.update(state, np.array([0]), np.array([[0.0, 0.0]]))
    self.assertAlmostEqual(state.p_hard, selection.P_MIN)
    self.assertAlmostEqual(state.p_easy, selection.P_MAX)
    self.assertEqual(state.hard[0], 100)

  def test_draw_keeps_each_prompt_with_its_probability(self):
    # Prompt 0 has a hard streak of 1 at p_hard = 0.5 (kept w.p. 0.5), prompt 1 none: among
    # kept draws prompt 0's share is 0.5 / 1.5 = 1/3, and a third of the candidates is
    # skipped (half of the half that are prompt 0's) -> skipped share 0.25.
    state = selection.Filter(np.array([0, 0]), np.array([1, 0]), 0.5, 0.5)
    got, stats = selection.draw(state, np.random.default_rng(0), 30000)
    self.assertEqual(got.shape, (30000,))
    self.assertAlmostEqual(np.mean(got == 0), 1 / 3, delta=0.01)  # SE 0.0027
    self.assertAlmostEqual(stats["skipped_share"], 0.25, delta=0.01)
    self.assertEqual(stats["filter_active"], 1.0)
    # No streaks: nothing skipped, the filter inactive, and the draw is rng.integers'.
    fresh = selection.Filter.create(7)
    got, stats = selection.draw(fresh, np.random.default_rng(3), 10, chunk=10)
    np.testing.assert_array_equal(got, np.random.default_rng(3).integers(0, 7, 10))
    self.assertEqual((stats["skipped_share"], stats["filter_active"]), (0.0, 0.0))

  def test_skipped_share_counts_the_candidates_considered(self):
    # Prompt 0 is skipped w.p. 0.99 (a streak far past the floor), prompt 1 never: with one
    # candidate a chunk the share is (skips) / (skips + num), checked against a replay.
    state = selection.Filter(np.array([0, 0]), np.array([50, 0]), 0.5, 0.5)
    got, stats = selection.draw(state, np.random.default_rng(5), 40, chunk=1)
    rng, seen = np.random.default_rng(5), 0
    kept = []
    while len(kept) < 40:
      c = rng.integers(0, 2, 1)[0]
      keep = rng.random(1)[0] >= (0.99 if c == 0 else 0.0)
      seen += 1
      if keep:
        kept.append(c)
    np.testing.assert_array_equal(got, kept)
    self.assertAlmostEqual(stats["skipped_share"], 1 - 40 / seen)

  def test_json_round_trip_and_errors(self):
    state = selection.Filter(np.array([0, 2, 0]), np.array([1, 0, 0]), 0.3, 0.7)
    back = selection.Filter.from_json(state.to_json(), 3)
    np.testing.assert_array_equal(back.easy, state.easy)
    np.testing.assert_array_equal(back.hard, state.hard)
    self.assertEqual((back.p_easy, back.p_hard), (0.3, 0.7))
    with self.assertRaisesRegex(ValueError, "for 3 prompts, the task has 4"):
      selection.Filter.from_json(state.to_json(), 4)
    with self.assertRaisesRegex(ValueError, "lacks.*p_hard"):
      selection.Filter.from_json({"easy": [], "hard": [], "p_easy": 0.5}, 0)


if __name__ == "__main__":
  absltest.main()
