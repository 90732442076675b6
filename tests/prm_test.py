"""Tests for jaxlm.search.labels (Monte-Carlo labels), jaxlm.losses.prm and the PRM network."""

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import losses
from jaxlm.envs import countdown
from jaxlm.envs import countdown_data
from jaxlm.models import TransformerConfig
from jaxlm.search import labels, lm, tree


def toy_propose(rng, prefixes, n):
  """Proposal r of every prefix appends token r + 1 and finishes the solution."""
  del rng
  p = prefixes.lengths.shape[0]
  tokens = jnp.broadcast_to(jnp.arange(1, n + 1, dtype=jnp.int32), (p, n))[..., None]
  return tree.Steps(tokens, jnp.ones((p, n), jnp.int32), jnp.ones((p, n), bool))


def toy_reward(completions):
  """1 when the last token is <= the first (the question's threshold)."""
  last = np.take_along_axis(completions.tokens, completions.lengths[..., None] - 1, -1)[..., 0]
  return (last <= completions.tokens[..., 0]).astype(np.float64)


class MonteCarloTest(parameterized.TestCase):

  def test_fractions_by_hand(self):
    # Thresholds 0, 1, 3, 5 with R = 4 completions appending 1..4: 0/4, 1/4, 3/4, 4/4 succeed.
    # The last prefix is already finished ([2], last token 2 <= 2): its own reward, 1.
    prefixes = tree.Prefixes(jnp.array([[0, 0], [1, 0], [3, 0], [5, 0], [2, 0]]),
                             jnp.ones((5,), jnp.int32),
                             jnp.array([False, False, False, False, True]))
    values, rewards = labels.monte_carlo_values(jax.random.PRNGKey(0), prefixes, toy_propose,
                                                toy_reward, num_rollouts=4, max_steps=1)
    np.testing.assert_allclose(values, [0.0, 0.25, 0.75, 1.0, 1.0])
    np.testing.assert_array_equal(rewards[1], [1, 0, 0, 0])
    self.assertEqual(rewards.shape, (5, 4))

  def test_returns_as_targets(self):
    # Any terminal reward: the mean return-to-go of the completions (here (r + 1) / 10).
    prefixes = tree.Prefixes(jnp.zeros((2, 2), jnp.int32), jnp.ones((2,), jnp.int32),
                             jnp.zeros((2,), bool))
    values, _ = labels.monte_carlo_values(
        jax.random.PRNGKey(0), prefixes, toy_propose,
        lambda c: c.tokens[..., 1].astype(np.float64) / 10, num_rollouts=3, max_steps=1)
    np.testing.assert_allclose(values, [0.2, 0.2])

  def test_errors(self):
    prefixes = tree.Prefixes(jnp.zeros((2, 2), jnp.int32), jnp.ones((2,), jnp.int32),
                             jnp.zeros((2,), bool))
    with self.assertRaisesRegex(ValueError, "num_rollouts"):
      labels.monte_carlo_values(jax.random.PRNGKey(0), prefixes, toy_propose, toy_reward,
                                num_rollouts=0, max_steps=1)
    with self.assertRaisesRegex(ValueError, "reward_fn returned shape"):
      labels.monte_carlo_values(jax.random.PRNGKey(0), prefixes, toy_propose,
                                lambda c: np.zeros(2), num_rollouts=3, max_steps=1)

  def test_label_solutions_with_references(self):
    # toy_propose writes one token and finishes, so no policy sample (or rollout) solves
    # anything: policy rows are labelled 0, the references' mid steps 0 (their rollouts stop
    # after one garbage token), and their final steps exactly 1 (a finished, verified prefix).
    # The references are one solver solution per question, in the policy's format.
    problems = [countdown.Problem((2, 3, 6), 12), countdown.Problem((1, 4, 5, 6), 30)]
    tok, length = countdown_data.tokenizer(), 48
    ids = [countdown_data.encode_prompt(tok, p) for p in problems]
    tokens = np.zeros((2, length), np.int32)
    for q, x in enumerate(ids):
      tokens[q, :len(x)] = x
    prompts = tree.Prefixes(tokens, np.array([len(x) for x in ids], np.int32), np.zeros(2, bool))
    refs = countdown_data.sft_batch(problems, length, seed=0, write_pool=True)
    references = tree.Prefixes(refs.tokens, refs.attention_mask.sum(1).astype(np.int32),
                               np.ones(2, bool))
    batch, stats = labels.label_solutions(
        jax.random.PRNGKey(0), prompts, toy_propose,
        lambda q, sol: countdown.verify(problems[q], tok.decode(sol))[0], num_samples=2,
        num_rollouts=2, max_steps=3, step_delimiters=(tok.encode("\n")[0], tok.eos_id),
        eos_id=tok.eos_id, pad_id=tok.pad_id, chunk=4, references=references,
        reference_questions=np.arange(2))
    self.assertEqual(batch.tokens.shape, (6, length))  # 2 x 2 samples, then 2 references
    for row, q in ((4, 0), (5, 1)):
      n = int(batch.attention_mask[row].sum())
      text = tok.decode(batch.tokens[row, len(ids[q]):n])
      self.assertEqual(countdown.verify(problems[q], text), (True, "ok"))
      self.assertEqual(text.count("|"), len(problems[q].numbers) - 1)
      ends = np.nonzero(batch.label_mask[row])[0]
      self.assertLen(ends, len(problems[q].numbers) - 1)  # one label per step
      np.testing.assert_array_equal(batch.labels[row, ends], [0.0] * (len(ends) - 1) + [1.0])
    np.testing.assert_array_equal(batch.labels[:4], 0.0)
    self.assertEqual(stats["rows"], 6.0)
    self.assertEqual(stats["final_step_accuracy"], 0.0)  # the policy's own answers only

  def test_step_ends(self):
    tokens = np.array([2, 5, 20, 7, 20, 8, 1, 0])
    np.testing.assert_array_equal(labels.step_ends(tokens, 2, 7, (20, 1)), [2, 4, 6])
    np.testing.assert_array_equal(labels.step_ends(tokens, 3, 5, (20, 1)), [4])


class PRMTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_loss_by_hand(self):
    # sigmoid(0) = 0.5 with y = 0.5: log 2; sigmoid(log 3) = 0.75 with y = 0.75:
    # -(0.75 log 0.75 + 0.25 log 0.25) = 0.562335. The masked position does not count.
    logits = jnp.array([[0.0, np.log(3.0), 5.0]])
    batch = losses.PRMBatch(jnp.zeros((1, 3), jnp.int32), jnp.ones((1, 3)),
                         jnp.array([[1.0, 1.0, 0.0]]), jnp.array([[0.5, 0.75, 0.0]]))
    loss, metrics = self.variant(losses.prm_loss)(logits, batch)
    np.testing.assert_allclose(loss, (np.log(2) + 0.562335) / 2, rtol=1e-5)
    np.testing.assert_allclose(metrics["prm_abs_err"], 0.0, atol=1e-6)

  def test_estimate_labels_by_hand(self):
    # Soft labels 0, 1/8, 1 at step ends; HE marks any success, masked positions stay 0.
    batch = losses.PRMBatch(np.zeros((1, 4), np.int32), np.ones((1, 4), np.float32),
                         np.array([[1, 1, 1, 0]], np.float32),
                         np.array([[0.0, 0.125, 1.0, 0.0]], np.float32))
    self.assertIs(labels.estimate_labels(batch, "soft"), batch)
    hard = labels.estimate_labels(batch, "hard")
    np.testing.assert_array_equal(hard.labels, [[0.0, 1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(hard.label_mask, batch.label_mask)
    with self.assertRaisesRegex(ValueError, "label kind"):
      labels.estimate_labels(batch, "max")

  def test_networks_copy_the_policy_trunk(self):
    cfg = TransformerConfig(vocab_size=countdown_data.tokenizer().vocab_size, d_model=16,
                            n_layers=1, n_heads=2, d_ff=32, max_len=12, pos="rope")
    init_fn, values_fn, _ = lm.prm_networks(cfg)
    fresh = jax.tree.map(lambda x: x, init_fn(jax.random.PRNGKey(0)))
    copied = init_fn(jax.random.PRNGKey(1), fresh["trunk"])
    chex.assert_trees_all_equal(fresh["trunk"], copied["trunk"])
    import flax.linen as nn  # pylint: disable=g-import-not-at-top
    v = values_fn(nn.meta.unbox(copied), jnp.ones((2, 12), jnp.int32), jnp.ones((2, 12)))
    self.assertEqual(v.shape, (2, 12))
    self.assertTrue(bool(jnp.all((v > 0) & (v < 1))))


if __name__ == "__main__":
  absltest.main()
