"""Single-turn rollouts: row layout by hand, sampler log-probs = trainer log-probs."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import generation
from jaxlm import testing
from jaxlm.models import lm_networks
from jaxlm.rl import rollout
from jaxlm.rl.returns import decision_view


class RealignTest(absltest.TestCase):

  def test_rows_masks_and_logprob_positions_by_hand(self):
    prompt = jnp.array([[0, 5, 6], [7, 8, 9]])  # row 0 has one leading pad
    mask = jnp.array([[0, 1, 1], [1, 1, 1]])
    out = generation.GenerationOutput(
        tokens_BxN=jnp.array([[3, 1, 0], [4, 0, 0]]),
        logprobs_BxN=jnp.zeros((2, 3)),
        processed_logprobs_BxN=jnp.array([[-0.1, -0.2, 0.0], [-0.3, 0.0, 0.0]]),
        lengths_B=jnp.array([2, 1]), done_B=jnp.array([True, False]))
    c = rollout.realign(prompt, mask, out)
    np.testing.assert_array_equal(c.tokens_BxT, [[5, 6, 3, 1, 0, 0], [7, 8, 9, 4, 0, 0]])
    np.testing.assert_array_equal(c.attention_mask_BxT, [[1, 1, 1, 1, 0, 0],
                                                        [1, 1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(c.action_mask_BxT, [[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 0, 0]])
    # Token 2 of row 0 (id 3) is chosen at position 1; token 3 (id 1) at position 2.
    np.testing.assert_allclose(c.sampler_logp_BxT, [[0, -0.1, -0.2, 0, 0, 0],
                                                   [0, 0, -0.3, 0, 0, 0]], atol=1e-7)
    np.testing.assert_array_equal(c.prompt_lengths_B, [2, 3])

    batch = rollout.completion_batch(c, jnp.array([0.5, 1.0])).validate()
    np.testing.assert_array_equal(batch.rewards, [[0, 0, 0, 0.5, 0, 0], [0, 0, 0, 1, 0, 0]])
    np.testing.assert_array_equal(batch.dones, [[0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 0, 0]])
    np.testing.assert_array_equal(decision_view(batch).trains,
                                  [[0, 1, 1, 0, 0, 0], [0, 0, 1, 0, 0, 0]])
    self.assertEqual(rollout.completion_texts(c, lambda ids: ",".join(map(str, ids)),
                                              stop_tokens=(1,)), ["3", "4"])

  def test_empty_completion_has_no_action_and_no_reward(self):
    c = rollout.Completions(
        tokens_BxT=jnp.array([[5, 6, 0]]), attention_mask_BxT=jnp.array([[1., 1., 0.]]),
        action_mask_BxT=jnp.zeros((1, 3)), sampler_logp_BxT=jnp.zeros((1, 3)),
        prompt_lengths_B=jnp.array([2]), lengths_B=jnp.array([0]), done_B=jnp.array([False]))
    batch = rollout.completion_batch(c, jnp.array([1.0])).validate()
    self.assertEqual(float(jnp.sum(batch.rewards)), 0.0)
    self.assertEqual(float(jnp.sum(batch.dones)), 0.0)

  def test_sampling_rejects_greedy_and_bad_top_p(self):
    with self.assertRaisesRegex(ValueError, "temperature"):
      rollout.Sampling(temperature=0.0)
    with self.assertRaisesRegex(ValueError, "top_p"):
      rollout.Sampling(top_p=1.5)


class BehaviourLogprobTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("temperature", dict(temperature=0.7)),
      ("top_k", dict(temperature=1.0, top_k=3)),
      ("top_p", dict(temperature=1.3, top_p=0.8)),
      ("all", dict(temperature=0.9, top_k=5, top_p=0.9)))
  def test_trainer_logprobs_equal_sampler_logprobs(self, kw):
    config = testing.tiny_model(vocab_size=16, max_len=24)
    model, init_fn, logits_fn = lm_networks(config)
    params = init_fn(jax.random.key(0))
    sampling = rollout.Sampling(max_new_tokens=10, stop_tokens=(1,), **kw)
    prompt = jnp.array([[0, 0, 2, 5], [2, 7, 3, 4], [0, 2, 9, 9]])
    c = rollout.sample(model, params, prompt, (prompt > 0).astype(jnp.int32),
                       jax.random.key(1), sampling, group_size=4)
    self.assertEqual(c.tokens_BxT.shape, (12, 14))
    batch = rollout.completion_batch(c, jnp.zeros(12))
    logp = sampling.logprobs(logits_fn(params, batch.tokens, batch.attention_mask),
                             batch.tokens)
    trains = decision_view(batch).trains > 0
    self.assertGreater(int(trains.sum()), 40)
    np.testing.assert_allclose(np.where(trains, logp, 0.0), c.sampler_logp_BxT, atol=1e-5)
    self.assertLessEqual(float(rollout.behaviour_gap(batch, logp, c.sampler_logp_BxT).max()),
                         1e-5)
    # The filters bind: some row's sampled distribution excludes tokens.
    if kw.get("top_k") or kw.get("top_p"):
      z = sampling.logits(logits_fn(params, batch.tokens, batch.attention_mask))
      self.assertTrue(bool(jnp.any(jnp.isneginf(z))))


if __name__ == "__main__":
  absltest.main()
