"""Tests for jaxlm.search.select against hand-computed fixtures."""

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.search import select

# Three questions, five samples each.
IDS = np.array([[0, 1, 1, 2, 0],      # answers a b b c a: tie a/b -> a (first); weights below
                [0, 0, 1, -1, 1],     # -1 abstains
                [-1, -1, -1, -1, -1]], np.int32)
SCORES = np.array([[0.9, 0.3, 0.4, 0.95, 0.2],
                   [0.1, 0.2, 0.6, 5.0, 0.1],
                   [0.5, 0.4, 0.3, 0.2, 0.1]], np.float32)


class SelectTest(parameterized.TestCase):

  def test_canonical_answer_ids(self):
    ids = select.canonical_answer_ids([["7", "3", "7", None], ["x", None, "y", "y"]])
    np.testing.assert_array_equal(ids, [[0, 1, 0, -1], [0, -1, 1, 1]])
    self.assertEqual(ids.dtype, np.int32)
    with self.assertRaisesRegex(ValueError, r"answers\[1\] has 1"):
      select.canonical_answer_ids([["a", "b"], ["a"]])

  @chex.variants(with_jit=True, without_jit=True)
  def test_best_of_n(self):
    idx = self.variant(select.best_of_n)(SCORES)
    np.testing.assert_array_equal(idx, [3, 3, 0])
    valid = IDS >= 0
    idx = self.variant(select.best_of_n)(SCORES, valid)
    np.testing.assert_array_equal(idx, [3, 2, 0])

  @chex.variants(with_jit=True, without_jit=True)
  def test_majority_vote(self):
    # Row 0: a=2, b=2, c=1 -> tie, a appears first -> sample 0.
    # Row 1: a=2, b=2 (abstain ignored) -> a first -> sample 0.
    # Row 2: nothing valid -> sample 0.
    idx = self.variant(select.majority_vote)(IDS)
    np.testing.assert_array_equal(idx, [0, 0, 0])
    ids = np.array([[3, 1, 1, 2, 0]], np.int32)  # b wins 2 vs 1, first b is sample 1
    np.testing.assert_array_equal(self.variant(select.majority_vote)(ids), [1])
    ids = np.array([[2, 1, 1, 2, 0]], np.int32)  # tie b/c: c appears first (sample 0)
    np.testing.assert_array_equal(self.variant(select.majority_vote)(ids), [0])

  @chex.variants(with_jit=True, without_jit=True)
  def test_weighted_vote(self):
    # Row 0: a = 0.9 + 0.2 = 1.1, b = 0.7, c = 0.95 -> a (sample 0).
    # Row 1: a = 0.3, b = 0.7, abstain's 5.0 ignored -> b (sample 2).
    idx = self.variant(select.weighted_vote)(SCORES, IDS)
    np.testing.assert_array_equal(idx, [0, 2, 0])
    # Negative sums must not lose to empty answer slots.
    idx = self.variant(select.weighted_vote)(-SCORES[:2], IDS[:2])
    # Row 0: a=-1.1, b=-0.7, c=-0.95 -> b (sample 1). Row 1: a=-0.3, b=-0.7 -> a (sample 0).
    np.testing.assert_array_equal(idx, [1, 0])

  def test_vote_num_answers(self):
    ids = np.array([[5, 5, 1]], np.int32)
    np.testing.assert_array_equal(select.majority_vote(ids, num_answers=6), [0])

  @chex.variants(with_jit=True, without_jit=True)
  def test_borda_vote(self):
    # Row 0 ranks: s3 (r1), s0 (r2), s2 (r3), s1 (r4), s4 (r5) -> weights 5,4,3,2,1 with p = 1:
    # a = s0 + s4 = 4 + 1 = 5, b = s1 + s2 = 2 + 3 = 5, c = s3 = 5: three-way tie -> a.
    # With p = 2: a = 16 + 1 = 17, b = 4 + 9 = 13, c = 25 -> c (sample 3).
    borda = self.variant(select.borda_vote, static_argnums=2)
    np.testing.assert_array_equal(borda(SCORES[:1], IDS[:1], 1.0), [0])
    np.testing.assert_array_equal(borda(SCORES[:1], IDS[:1], 2.0), [3])
    # p = 0 is majority vote.
    np.testing.assert_array_equal(borda(SCORES, IDS, 0.0), select.majority_vote(IDS))

  def test_take_selected(self):
    correct = jnp.array([[1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(select.take_selected(correct, jnp.array([0, 1])), [1, 0])

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(("last", [0.5, 0.9, 0.0]), ("min", [0.2, 0.9, 0.0]),
                            ("prod", [0.8 * 0.2 * 0.5, 0.9, 0.0]))
  def test_aggregate_step_scores(self, method, expected):
    scores = np.array([[0.8, 0.2, 0.5, 0.7], [0.9, 0.1, 0.1, 0.1], [0.3, 0.3, 0.3, 0.3]],
                      np.float32)
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.int32)
    fn = self.variant(select.aggregate_step_scores, static_argnums=2)
    np.testing.assert_allclose(fn(scores, mask, method), expected, rtol=1e-6)
    # Works on any leading shape.
    out = fn(np.stack([scores, scores]), np.stack([mask, mask]), method)
    np.testing.assert_allclose(out, [expected, expected], rtol=1e-6)

  @parameterized.parameters("last", "min", "prod")
  def test_aggregate_without_mask_is_all_steps(self, method):
    scores = np.array([[0.8, 0.2, 0.5], [0.9, 0.1, 0.4]], np.float32)
    want = {"last": [0.5, 0.4], "min": [0.2, 0.1], "prod": [0.08, 0.036]}[method]
    fn = jax.jit(select.aggregate_step_scores, static_argnums=(1, 2))
    np.testing.assert_allclose(fn(scores, None, method), want, rtol=1e-6)
    np.testing.assert_allclose(select.aggregate_step_scores(scores, np.ones((2, 3)), method),
                               want, rtol=1e-6)

  def test_aggregate_bad_method(self):
    with self.assertRaisesRegex(ValueError, "method must be one of"):
      select.aggregate_step_scores(jnp.zeros((1, 2)), jnp.ones((1, 2)), "mean")

  @chex.variants(with_jit=True, without_jit=True)
  def test_self_certainty(self):
    # Token 1: p = (0.5, 0.25, 0.25): KL(U||p) = -(ln .5 + 2 ln .25)/3 - ln 3.
    # Token 2: uniform -> 0. Token 3 masked out.
    p1 = np.array([0.5, 0.25, 0.25])
    logits = np.log(np.stack([p1, np.ones(3) / 3, p1]))[None].astype(np.float32)
    mask = np.array([[1, 1, 0]])
    kl1 = -np.mean(np.log(p1)) - np.log(3)
    out = self.variant(select.self_certainty)(logits, mask)
    np.testing.assert_allclose(out, [kl1 / 2], rtol=1e-5)
    # Equals the KL computed directly; zero-token rows give 0.
    direct = np.sum(np.ones(3) / 3 * np.log((np.ones(3) / 3) / p1))
    np.testing.assert_allclose(kl1, direct, rtol=1e-12)
    out = self.variant(select.self_certainty)(logits, np.zeros((1, 3)))
    np.testing.assert_allclose(out, [0.0])

  def test_self_certainty_prefers_confident(self):
    key = jax.random.PRNGKey(0)
    logits = jax.random.normal(key, (2, 4, 7))
    logits = logits.at[1].multiply(5.0)
    sc = select.self_certainty(logits, jnp.ones((2, 4)))
    self.assertGreater(float(sc[1]), float(sc[0]))

  def test_ranking_auc_by_hand(self):
    # Positives 0.9, 0.4; negatives 0.4, 0.1: pairs (0.9>0.4), (0.9>0.1), (0.4=0.4: 1/2),
    # (0.4>0.1) -> 3.5 / 4.
    self.assertAlmostEqual(select.ranking_auc([0.9, 0.4, 0.4, 0.1], [1, 1, 0, 0]), 0.875)
    self.assertEqual(select.ranking_auc([1.0, 2.0], [0, 1]), 1.0)
    self.assertEqual(select.ranking_auc([1.0, 2.0], [1, 0]), 0.0)
    self.assertTrue(np.isnan(select.ranking_auc([1.0, 2.0], [1, 1])))
    with self.assertRaisesRegex(ValueError, "differ in size"):
      select.ranking_auc([1.0, 2.0], [1])

  def test_ranking_auc_matches_pairs(self):
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 60).astype(float)  # many ties
    labels = rng.random(60) < 0.3
    pos, neg = scores[labels], scores[~labels]
    pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    self.assertAlmostEqual(select.ranking_auc(scores, labels), pairs, places=12)


if __name__ == "__main__":
  absltest.main()
