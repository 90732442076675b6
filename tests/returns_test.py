"""Tests for jaxlm.rl.returns against hand-computed fixtures and a numpy reference."""

import chex
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from jaxlm.data.batch import RLBatch
from jaxlm.rl import returns

GAMMA, LAMBDA = 0.9, 0.8


def fixture_batch() -> RLBatch:
  """Three rows, T=8 (token frame).

  row 0: [bos o o A A o A o]      actions at 3,4 (r=1 on 4) and 6 (r=2, done): a terminal
         followed by a final observation.
  row 1: [bos o A A o o pad pad]  one action (r=-1 on 3), window cut after the observation
         (bootstrap from position 5), bootstrap return 4.
  row 2: [bos A o A o A o pad]    two episodes packed: done on 3 in the middle of the row, then
         an action with r=3 on 5; bootstrap from position 6, bootstrap return 10.
  """
  attn = np.array([[1] * 8, [1] * 6 + [0] * 2, [1] * 7 + [0]], np.float32)
  act = np.zeros((3, 8), np.float32)
  rew = np.zeros((3, 8), np.float32)
  done = np.zeros((3, 8), np.float32)
  act[0, [3, 4, 6]] = 1
  rew[0, 4], rew[0, 6], done[0, 6] = 1.0, 2.0, 1.0
  act[1, [2, 3]] = 1
  rew[1, 3] = -1.0
  act[2, [1, 3, 5]] = 1
  rew[2, 1], rew[2, 3], done[2, 3], rew[2, 5] = 0.5, -2.0, 1.0, 3.0
  tokens = np.arange(24, dtype=np.int32).reshape(3, 8) % 7
  return RLBatch(tokens, attn, act, rew, done, np.array([0.0, 4.0, 10.0], np.float32)).validate()


V = np.arange(24, dtype=np.float32).reshape(3, 8) / 10 + 1.0  # v[b, t] = 1 + (8b + t) / 10


def expected_td():
  """Decision t scores token t+1; next state skips observations; gamma once per action token."""
  g, v = GAMMA, V
  out = np.zeros((3, 8), np.float32)
  out[0, 2] = 0 + g * v[0, 3]         # token 3 -> next action token 4 (decision 3)
  out[0, 3] = 1 + g * v[0, 5]         # token 4 -> next action token 6 (decision 5)
  out[0, 5] = 2                        # terminal
  out[1, 1] = 0 + g * v[1, 2]
  out[1, 2] = -1 + g * v[1, 5]        # bootstrap: last attended position
  out[2, 0] = 0.5 + g * v[2, 2]
  out[2, 2] = -2                       # terminal in the middle of the row
  out[2, 4] = 3 + g * v[2, 6]         # second episode bootstraps from position 6
  return out


def expected_mc():
  g = GAMMA
  out = np.zeros((3, 8), np.float32)
  out[0, 5] = 2
  out[0, 3] = 1 + g * 2
  out[0, 2] = g * (1 + g * 2)
  out[1, 2] = -1 + g * 4
  out[1, 1] = g * (-1 + g * 4)
  out[2, 2] = -2
  out[2, 0] = 0.5 + g * -2
  out[2, 4] = 3 + g * 10
  return out


def expected_gae():
  g, lam, v = GAMMA, LAMBDA, V
  out = np.zeros((3, 8), np.float32)
  out[0, 5] = 2 - v[0, 5]
  out[0, 3] = 1 + g * v[0, 5] - v[0, 3] + g * lam * out[0, 5]
  out[0, 2] = g * v[0, 3] - v[0, 2] + g * lam * out[0, 3]
  out[1, 2] = -1 + g * v[1, 5] - v[1, 2]
  out[1, 1] = g * v[1, 2] - v[1, 1] + g * lam * out[1, 2]
  out[2, 4] = 3 + g * v[2, 6] - v[2, 4]
  out[2, 2] = -2 - v[2, 2]
  out[2, 0] = 0.5 + g * v[2, 2] - v[2, 0] + g * lam * out[2, 2]
  return out


def reference_td(batch, v, gamma):
  """Plain-loop reference: search forward for the next action token or the row end."""
  tok_act, attn = np.asarray(batch.action_mask), np.asarray(batch.attention_mask)
  out = np.zeros_like(v)
  for b in range(v.shape[0]):
    length = int(attn[b].sum())
    for t in range(1, length):
      if tok_act[b, t]:
        nxt = next((k for k in range(t + 1, length) if tok_act[b, k]), length)
        boot = 0.0 if batch.dones[b, t] else gamma * v[b, nxt - 1]
        out[b, t - 1] = batch.rewards[b, t] + boot
  return out


def random_batch(rng, b=4, t=12):
  attn = np.zeros((b, t), np.float32)
  act = np.zeros((b, t), np.float32)
  rew = np.zeros((b, t), np.float32)
  done = np.zeros((b, t), np.float32)
  for i in range(b):
    length = rng.integers(3, t + 1)
    attn[i, :length] = 1
    act[i, 1:length] = rng.random(length - 1) < 0.5
    rew[i] = act[i] * rng.normal(size=t)
    idx = np.flatnonzero(act[i])
    if len(idx) and rng.random() < 0.5:
      done[i, rng.choice(idx)] = 1
  return RLBatch(rng.integers(0, 9, (b, t)).astype(np.int32), attn, act, rew, done,
                 rng.normal(size=b).astype(np.float32)).validate()


class ReturnsTest(parameterized.TestCase):

  def test_decision_view(self):
    d = returns.decision_view(fixture_batch())
    np.testing.assert_array_equal(d.is_action[0], [0, 0, 1, 1, 0, 1, 0, 0])
    np.testing.assert_array_equal(d.is_bootstrap, [[0] * 7 + [1], [0] * 5 + [1, 0, 0],
                                                   [0] * 6 + [1, 0]])
    np.testing.assert_array_equal(d.actions[:, :-1], fixture_batch().tokens[:, 1:])
    np.testing.assert_array_equal(d.dones[2], [0, 0, 1, 0, 0, 0, 0, 0])

  @chex.all_variants(with_pmap=False)
  def test_td_targets_hand(self):
    fn = self.variant(lambda v, b: returns.batch_td_targets(v, b, gamma=GAMMA))
    np.testing.assert_allclose(fn(jnp.asarray(V), fixture_batch()), expected_td(), rtol=1e-6)

  @chex.all_variants(with_pmap=False)
  def test_mc_returns_hand(self):
    fn = self.variant(lambda b: returns.batch_mc_returns(b, gamma=GAMMA))
    np.testing.assert_allclose(fn(fixture_batch()), expected_mc(), rtol=1e-6)

  @chex.all_variants(with_pmap=False)
  def test_gae_hand(self):
    fn = self.variant(lambda v, b: returns.batch_gae(v, b, gamma=GAMMA, lambda_=LAMBDA))
    np.testing.assert_allclose(fn(jnp.asarray(V), fixture_batch()), expected_gae(), rtol=1e-5,
                               atol=1e-6)

  def test_gae_lambda_one_is_mc_minus_v(self):
    b = fixture_batch()
    adv = returns.batch_gae(jnp.asarray(V), b, gamma=GAMMA, lambda_=1.0)
    mask = returns.decision_view(b).is_action
    # Without bootstrap rows (row 0 is terminal) GAE(1) = G - V exactly.
    np.testing.assert_allclose(adv[0], (expected_mc()[0] - V[0]) * mask[0], rtol=1e-5)

  def test_td_matches_loop_reference_random(self):
    rng = np.random.default_rng(0)
    for _ in range(5):
      b = random_batch(rng)
      v = rng.normal(size=b.tokens.shape).astype(np.float32)
      np.testing.assert_allclose(returns.batch_td_targets(jnp.asarray(v), b, gamma=0.7),
                                 reference_td(b, v, 0.7), rtol=1e-5, atol=1e-6)

  def test_mc_equals_td_with_true_returns(self):
    # With v(next state) = G(next state), the one-step target equals G itself.
    rng = np.random.default_rng(1)
    b = random_batch(rng)
    g = np.asarray(returns.batch_mc_returns(b, gamma=0.8))
    d = returns.decision_view(b)
    v = g + np.asarray(d.is_bootstrap) * np.asarray(b.bootstrap_returns)[:, None]
    np.testing.assert_allclose(returns.batch_td_targets(jnp.asarray(v), b, gamma=0.8), g,
                               rtol=1e-5, atol=1e-6)

  def test_action_return_stats(self):
    mc = expected_mc()
    is_action = np.asarray(returns.decision_view(fixture_batch()).is_action) > 0
    self.assertEqual(is_action.sum(), 8)  # 8 action decisions in the fixture
    mean, std = returns.action_return_stats(fixture_batch(), gamma=GAMMA)
    self.assertAlmostEqual(float(mean), mc[is_action].mean(), places=5)
    self.assertAlmostEqual(float(std), mc[is_action].std(), places=5)

  def test_rank_checked(self):
    with self.assertRaises(AssertionError):
      returns.td_targets(jnp.zeros((2, 3)), *[jnp.zeros(3)] * 4, 0.9)


if __name__ == "__main__":
  absltest.main()
