"""Tests for jaxlm.search.tree on a deterministic toy process with hand-computed frontiers."""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.search import tree

KEY = jax.random.PRNGKey(0)


def toy_propose(rng, prefixes, n, done_token=None):
  """Child j appends token j + 1; a step with ``done_token`` finishes the solution."""
  del rng
  p = prefixes.lengths.shape[0]
  tokens = jnp.broadcast_to(jnp.arange(1, n + 1, dtype=jnp.int32), (p, n))[..., None]
  done = (tokens[..., 0] == done_token) if done_token else jnp.zeros((p, n), bool)
  return tree.Steps(tokens, jnp.ones((p, n), jnp.int32), done)


def toy_score(prefixes):
  """Sum of the valid tokens modulo 5."""
  pos = jnp.arange(prefixes.tokens.shape[-1])
  valid = pos[None, :] < prefixes.lengths[:, None]
  return (jnp.sum(jnp.where(valid, prefixes.tokens, 0), axis=-1) % 5).astype(jnp.float32)


def prompt(max_len=3):
  return tree.Prefixes(jnp.zeros((1, max_len), jnp.int32), jnp.ones((1,), jnp.int32),
                       jnp.zeros((1,), bool))


def steps_of(result):
  """The step tokens (after the one-token prompt) of each frontier slot of question 0."""
  toks, lens = np.asarray(result.prefixes.tokens[0]), np.asarray(result.prefixes.lengths[0])
  return [list(t[1:l]) for t, l in zip(toks, lens)]


class BufferTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_write_tokens(self):
    tokens = jnp.array([[1, 2, 0, 0], [3, 0, 0, 0], [1, 2, 3, 0]])
    new = jnp.array([[5, 6, 9], [7, 8, 9], [5, 6, 9]])
    out, lengths = self.variant(tree.write_tokens)(tokens, jnp.array([2, 1, 3]), new,
                                                   jnp.array([2, 1, 2]))
    np.testing.assert_array_equal(out, [[1, 2, 5, 6], [3, 7, 0, 0], [1, 2, 3, 5]])
    np.testing.assert_array_equal(lengths, [4, 2, 4])  # row 2 overflowed: clipped

  def test_append_steps_and_expand(self):
    prefixes = tree.Prefixes(jnp.array([[9, 0, 0], [9, 4, 0]]), jnp.array([1, 2]),
                             jnp.array([False, True]))
    out = tree.expand(KEY, prefixes, functools.partial(toy_propose, done_token=2), 2)
    np.testing.assert_array_equal(out.tokens, [[[9, 1, 0], [9, 2, 0]], [[9, 4, 0], [9, 4, 0]]])
    np.testing.assert_array_equal(out.lengths, [[2, 2], [2, 2]])
    np.testing.assert_array_equal(out.done, [[False, True], [True, True]])
    # Filling the buffer finishes a prefix.
    first = jax.tree.map(lambda x: x[:1, 0], out)  # [9, 1], not finished
    full = tree.expand(KEY, first, toy_propose, 1)
    np.testing.assert_array_equal(full.tokens, [[[9, 1, 1]]])
    self.assertTrue(bool(full.done[0, 0]))


class SearchTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_beam_search_by_hand(self):
    # Round 1: children 1..4 score 1..4; keep 2 -> [4], [3]; expand by 2:
    # [4,1]=0, [4,2]=1, [3,1]=4, [3,2]=0.
    search = self.variant(functools.partial(
        tree.beam_search, propose=toy_propose, score=toy_score, num_samples=4, beam_width=2,
        max_steps=2))
    result = search(KEY, prompt())
    self.assertEqual(steps_of(result), [[4, 1], [4, 2], [3, 1], [3, 2]])
    np.testing.assert_array_equal(result.scores, [[0, 1, 4, 0]])
    np.testing.assert_array_equal(result.num_steps, [8])
    self.assertTrue(bool(jnp.all(result.valid)))

  def test_dvts_by_hand(self):
    # Groups {1, 2} and {3, 4} keep 2 and 4: [2,1]=3, [2,2]=4, [4,1]=0, [4,2]=1.
    result = tree.dvts(KEY, prompt(), toy_propose, toy_score, num_samples=4, beam_width=2,
                       max_steps=2)
    self.assertEqual(steps_of(result), [[2, 1], [2, 2], [4, 1], [4, 2]])
    np.testing.assert_array_equal(result.scores, [[3, 4, 0, 1]])

  def test_best_of_n_sampling_by_hand(self):
    result = tree.best_of_n_sampling(KEY, prompt(), toy_propose, toy_score, num_samples=4,
                                     max_steps=2)
    self.assertEqual(steps_of(result), [[1, 1], [2, 1], [3, 1], [4, 1]])
    np.testing.assert_array_equal(result.scores, [[2, 3, 4, 0]])

  def test_min_aggregation(self):
    result = tree.beam_search(KEY, prompt(), toy_propose, toy_score, num_samples=4,
                              beam_width=2, max_steps=2, aggregate="min")
    np.testing.assert_array_equal(result.scores, [[0, 1, 3, 0]])

  def test_finished_beams_are_kept_once(self):
    # [4] finishes in round 1 (score 4) and is kept in one slot; its sibling slot is invalid.
    propose = functools.partial(toy_propose, done_token=4)
    result = tree.beam_search(KEY, prompt(), propose, toy_score, num_samples=4, beam_width=2,
                              max_steps=2)
    self.assertEqual(steps_of(result), [[4], [4], [3, 1], [3, 2]])
    np.testing.assert_array_equal(result.valid, [[True, False, True, True]])
    np.testing.assert_array_equal(result.scores, [[4, 4, 4, 0]])
    np.testing.assert_array_equal(result.num_steps, [6])

  def test_lookahead(self):
    # Values come from one rollout step (token 1): round 1 [j] -> (j + 1) % 5 = 2, 3, 4, 0,
    # keep [3], [2]; children [3,1]->0, [3,2]->1, [2,1]->4, [2,2]->0.
    result = tree.beam_search(KEY, prompt(4), toy_propose, toy_score, num_samples=4,
                              beam_width=2, max_steps=2, rollout=toy_propose, lookahead=1)
    self.assertEqual(steps_of(result), [[3, 1], [3, 2], [2, 1], [2, 2]])
    np.testing.assert_array_equal(result.scores, [[0, 1, 4, 0]])
    with self.assertRaisesRegex(ValueError, "rollout"):
      tree.beam_search(KEY, prompt(4), toy_propose, toy_score, num_samples=4, beam_width=2,
                       max_steps=2, lookahead=1)

  def test_batched_questions_independent(self):
    prompts = tree.Prefixes(jnp.array([[0, 0, 0], [2, 0, 0]]), jnp.array([1, 1]),
                            jnp.zeros((2,), bool))
    result = tree.beam_search(KEY, prompts, toy_propose, toy_score, num_samples=4,
                              beam_width=2, max_steps=2)
    second = jax.tree.map(lambda x: x[1:], prompts)
    single = tree.beam_search(KEY, second, toy_propose, toy_score, num_samples=4,
                              beam_width=2, max_steps=2)
    np.testing.assert_array_equal(result.prefixes.tokens[1], single.prefixes.tokens[0])
    np.testing.assert_array_equal(result.scores[1], single.scores[0])

  @parameterized.named_parameters(
      ("divisible", dict(num_samples=6, beam_width=4, num_groups=1, max_steps=2), "multiple"),
      ("steps", dict(num_samples=4, beam_width=2, num_groups=1, max_steps=0), "max_steps"),
      ("aggregate", dict(num_samples=4, beam_width=2, num_groups=1, max_steps=2,
                         aggregate="mean"), "aggregate"))
  def test_errors(self, kwargs, pattern):
    with self.assertRaisesRegex(ValueError, pattern):
      tree.tree_search(KEY, prompt(), toy_propose, toy_score, **kwargs)


class BudgetForcingTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_budget_force(self):
    tokens = jnp.array([[5, 5, 5, 5, 5, 0], [5, 8, 3, 3, 3, 0], [5, 5, 0, 0, 0, 0]])
    fn = self.variant(functools.partial(tree.budget_force, budget=4, think_open=7,
                                        think_close=8, forced_ids=(8, 9)))
    out, lengths, forced = fn(tokens, jnp.array([5, 5, 2]))
    np.testing.assert_array_equal(out, [[5, 5, 5, 5, 8, 9], [5, 8, 3, 3, 0, 0],
                                        [5, 5, 8, 9, 0, 0]])
    np.testing.assert_array_equal(lengths, [6, 4, 4])
    np.testing.assert_array_equal(forced, [True, False, True])

  def test_budget_force_not_started_open(self):
    tokens = jnp.array([[7, 5, 5, 5, 5, 0], [5, 5, 5, 5, 5, 0], [7, 8, 7, 5, 0, 0]])
    out, lengths, forced = tree.budget_force(tokens, jnp.array([5, 5, 4]), budget=4,
                                             think_open=7, think_close=8, forced_ids=(8, 9),
                                             starts_open=False)
    np.testing.assert_array_equal(forced, [True, False, True])
    np.testing.assert_array_equal(out[0], [7, 5, 5, 5, 8, 9])
    np.testing.assert_array_equal(lengths, [6, 4, 6])

  def test_budget_force_needs_room(self):
    with self.assertRaisesRegex(ValueError, "budget \\+ len\\(forced_ids\\) = 6"):
      tree.budget_force(jnp.zeros((1, 5), jnp.int32), jnp.array([5]), budget=4, think_open=7,
                        think_close=8, forced_ids=(8, 9))

  def test_nothinking_prefill(self):
    tokens = jnp.array([[1, 2, 0, 0, 0], [3, 0, 0, 0, 0]])
    out, lengths = tree.nothinking_prefill(tokens, jnp.array([2, 1]), [7, 8])
    np.testing.assert_array_equal(out, [[1, 2, 7, 8, 0], [3, 7, 8, 0, 0]])
    np.testing.assert_array_equal(lengths, [4, 3])
    self.assertIn("finished thinking", tree.NOTHINKING_TEXT)


if __name__ == "__main__":
  absltest.main()
