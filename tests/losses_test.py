"""Tests for jaxlm.losses: hand-computed fixtures, a numpy reference and gradient placement."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from jaxlm import losses
from jaxlm.data.batch import RLBatch


def lse(*x):
  return np.log(np.sum(np.exp(np.array(x, np.float64))))


def tiny_batch() -> RLBatch:
  """T=4, V=2: tokens [bos=0, obs=1, A=1, A=0]; the utterance gets r=1 and ends the episode."""
  z = np.zeros((1, 4), np.float32)
  act, rew, done = z.copy(), z.copy(), z.copy()
  act[0, 2:] = 1
  rew[0, 3], done[0, 3] = 1.0, 1.0
  return RLBatch(np.array([[0, 1, 1, 0]], np.int32), np.ones((1, 4), np.float32), act, rew,
                 done).validate()


def tiny_outputs(**kw) -> losses.ILQLOutputs:
  """Position 1 scores token 2 (=1), position 2 scores token 3 (=0); positions 0, 3 unused."""
  junk = [9.0, -9.0]
  q1 = [[junk, [0.0, 0.5], [0.8, 0.2], junk]]
  q2 = [[junk, [0.1, 0.3], [0.6, 0.4], junk]]
  tq1 = [[junk, [0.2, 0.4], [1.0, 0.0], junk]]
  tq2 = [[junk, [0.0, 0.6], [0.9, 0.1], junk]]
  v = [[5.0, 0.3, 1.1, -5.0]]
  args = dict(q1_BxTxV=q1, q2_BxTxV=q2, target_q1_BxTxV=tq1, target_q2_BxTxV=tq2, v_BxT=v)
  args.update(kw)
  return losses.ILQLOutputs(**{k: None if a is None else jnp.asarray(a, jnp.float32)
                               for k, a in args.items()})


def multi_batch(rng, b=3, t=10, vocab=5) -> RLBatch:
  """Several utterances, a terminal in the middle of row 0, padding in row 1 and 2."""
  tokens = rng.integers(0, vocab, (b, t)).astype(np.int32)
  attn = np.ones((b, t), np.float32)
  attn[1, 7:] = 0
  attn[2, 5:] = 0
  act = np.zeros((b, t), np.float32)
  act[0, [2, 3, 5, 6, 8]] = 1  # three utterances; the second ends the episode at 6
  act[1, [1, 2, 4]] = 1
  act[2, [2, 3]] = 1
  rew = np.zeros((b, t), np.float32)
  rew[0, [3, 6, 8]] = [-1.0, 2.0, 0.5]
  rew[1, [2, 4]] = [1.0, -0.5]
  rew[2, 3] = 3.0
  done = np.zeros((b, t), np.float32)
  done[0, 6] = 1
  return RLBatch(tokens, attn, act, rew, done, np.array([0.0, 1.5, -2.0], np.float32)).validate()


def np_log_softmax(x):
  x = np.asarray(x, np.float64)
  return x - np.log(np.sum(np.exp(x - x.max(-1, keepdims=True)), -1, keepdims=True)) - x.max(
      -1, keepdims=True)


def reference_ilql(out, batch, gamma, tau, cql_weight, temp, bc_weight):
  """Loop reference written from the ILQL paper's equations."""
  tok, act = np.asarray(batch.tokens), np.asarray(batch.action_mask)
  attn, rew, done = map(np.asarray, (batch.attention_mask, batch.rewards, batch.dones))
  q = [np.asarray(out.q1_BxTxV, np.float64), np.asarray(out.q2_BxTxV, np.float64)]
  tq = [np.asarray(out.target_q1_BxTxV, np.float64), np.asarray(out.target_q2_BxTxV, np.float64)]
  v = np.asarray(out.v_BxT, np.float64)
  logits = np.asarray(out.logits_BxTxV, np.float64)
  terms = {"q": [], "v": [], "cql": [], "bc": []}
  for b in range(tok.shape[0]):
    n = int(attn[b].sum())
    for t in range(1, n):
      if not act[b, t]:
        continue
      p, a = t - 1, tok[b, t]  # output position p scores token t
      nxt = next((k for k in range(t + 1, n) if act[b, k]), n)
      y = rew[b, t] + (0.0 if done[b, t] else gamma * v[b, nxt - 1])
      terms["q"].append(sum((qi[b, p, a] - y) ** 2 for qi in q))
      u = min(tq[0][b, p, a], tq[1][b, p, a]) - v[b, p]
      terms["v"].append((tau if u >= 0 else 1 - tau) * u * u)
      terms["cql"].append(sum(-np_log_softmax(qi[b, p] / temp)[a] for qi in q))
      terms["bc"].append(-np_log_softmax(logits[b, p])[a])
  m = {k: np.mean(x) for k, x in terms.items()}
  return m["q"] + m["v"] + cql_weight * m["cql"] + bc_weight * m["bc"], m


class ILQLTest(parameterized.TestCase):

  @chex.all_variants(with_pmap=False)
  def test_hand_fixture(self):
    loss_fn = self.variant(lambda o, b: losses.ilql_loss(o, b, gamma=0.9, tau=0.7,
                                                         cql_weight=0.5, cql_temperature=1.0))
    loss, m = loss_fn(tiny_outputs(), tiny_batch())
    # TD targets: token 2 -> 0 + 0.9 * V(pos 2) = 0.99; token 3 terminal -> 1.0.
    q_loss = ((0.5 - 0.99) ** 2 + (0.8 - 1.0) ** 2) / 2 + ((0.3 - 0.99) ** 2 + (0.6 - 1.0) ** 2) / 2
    # min target Q: pos 1 min(0.4, 0.6) = 0.4; pos 2 min(1.0, 0.9) = 0.9.
    # u = 0.4 - 0.3 = 0.1 (weight tau) and 0.9 - 1.1 = -0.2 (weight 1 - tau).
    v_loss = (0.7 * 0.1 ** 2 + 0.3 * 0.2 ** 2) / 2
    cql = ((lse(0.0, 0.5) - 0.5) + (lse(0.8, 0.2) - 0.8)) / 2 + (
        (lse(0.1, 0.3) - 0.3) + (lse(0.6, 0.4) - 0.6)) / 2
    np.testing.assert_allclose(m["q_loss"], q_loss, rtol=1e-5)
    np.testing.assert_allclose(m["v_loss"], v_loss, rtol=1e-5)
    np.testing.assert_allclose(m["cql_loss"], cql, rtol=1e-5)
    np.testing.assert_allclose(loss, q_loss + v_loss + 0.5 * cql, rtol=1e-5)
    np.testing.assert_allclose(m["td_target_mean"], (0.99 + 1.0) / 2, rtol=1e-5)

  def test_bootstrap_from_the_next_window(self):
    # Same row, but token 3 is a look-ahead action (loss_mask 0) of a non-terminal window:
    # token 2's target reads the next window's V (2.0) instead of V at position 2 (1.1), and V
    # is trained at position 1 only.
    b = tiny_batch().replace(dones=np.zeros((1, 4), np.float32),
                             loss_mask=np.array([[0, 0, 1, 0]], np.float32))
    _, m = losses.ilql_loss(tiny_outputs(), b, gamma=0.9, tau=0.7, cql_weight=0.0,
                            bootstrap_v_B=jnp.array([2.0]))
    np.testing.assert_allclose(m["td_target_mean"], 0.9 * 2.0, rtol=1e-6)
    np.testing.assert_allclose(m["q_loss"], (0.5 - 1.8) ** 2 + (0.3 - 1.8) ** 2, rtol=1e-5)
    np.testing.assert_allclose(m["v_loss"], 0.7 * 0.1 ** 2, rtol=1e-5)
    _, m = losses.ilql_loss(tiny_outputs(), b, gamma=0.9, tau=0.7, cql_weight=0.0)
    np.testing.assert_allclose(m["td_target_mean"], 0.9 * 1.1, rtol=1e-6)  # in-window V
    np.testing.assert_allclose(m["v_loss"], (0.7 * 0.1 ** 2 + 0.3 * 0.2 ** 2) / 2, rtol=1e-5)

  def test_cql_temperature(self):
    _, m = losses.ilql_loss(tiny_outputs(), tiny_batch(), gamma=0.9, cql_temperature=0.5)
    cql = ((lse(0.0, 1.0) - 1.0) + (lse(1.6, 0.4) - 1.6)) / 2 + (
        (lse(0.2, 0.6) - 0.6) + (lse(1.2, 0.8) - 1.2)) / 2
    np.testing.assert_allclose(m["cql_loss"], cql, rtol=1e-5)

  def test_single_q(self):
    _, m = losses.ilql_loss(tiny_outputs(q2_BxTxV=None, target_q2_BxTxV=None), tiny_batch(),
                            gamma=0.9, tau=0.7)
    np.testing.assert_allclose(m["q_loss"], ((0.5 - 0.99) ** 2 + (0.8 - 1.0) ** 2) / 2, rtol=1e-5)
    # target Q is now tq1 alone: u = 0.4 - 0.3 and 1.0 - 1.1.
    np.testing.assert_allclose(m["v_loss"], (0.7 * 0.01 + 0.3 * 0.01) / 2, rtol=1e-5)

  @chex.all_variants(with_pmap=False)
  def test_matches_reference_with_padding_and_mid_terminal(self):
    rng = np.random.default_rng(0)
    batch = multi_batch(rng)
    shape = batch.tokens.shape + (5,)
    out = losses.ILQLOutputs(
        q1_BxTxV=jnp.asarray(rng.normal(size=shape), jnp.float32),
        q2_BxTxV=jnp.asarray(rng.normal(size=shape), jnp.float32),
        target_q1_BxTxV=jnp.asarray(rng.normal(size=shape), jnp.float32),
        target_q2_BxTxV=jnp.asarray(rng.normal(size=shape), jnp.float32),
        v_BxT=jnp.asarray(rng.normal(size=shape[:2]), jnp.float32),
        logits_BxTxV=jnp.asarray(rng.normal(size=shape), jnp.float32))
    hp = dict(gamma=0.95, tau=0.8, cql_weight=0.3, cql_temperature=2.0, bc_weight=0.7)
    loss, m = self.variant(lambda o, b: losses.ilql_loss(o, b, **hp))(out, batch)
    want, terms = reference_ilql(out, batch, hp["gamma"], hp["tau"], hp["cql_weight"],
                                 hp["cql_temperature"], hp["bc_weight"])
    np.testing.assert_allclose(loss, want, rtol=1e-5)
    for k, name in (("q", "q_loss"), ("v", "v_loss"), ("cql", "cql_loss"), ("bc", "bc_loss")):
      np.testing.assert_allclose(m[name], terms[k], rtol=1e-5, err_msg=name)

  def test_gradient_placement(self):
    out = tiny_outputs(logits_BxTxV=jnp.ones((1, 4, 2)))

    def grads(metric):
      return jax.grad(lambda o: losses.ilql_loss(o, tiny_batch(), gamma=0.9, cql_weight=0.5,
                                                 bc_weight=1.0)[1][metric])(out)

    g_v = grads("v_loss")  # V target (target Q) trains V only
    for f in ("q1_BxTxV", "q2_BxTxV", "target_q1_BxTxV", "target_q2_BxTxV", "logits_BxTxV"):
      np.testing.assert_array_equal(getattr(g_v, f), 0.0, err_msg=f)
    self.assertGreater(float(jnp.abs(g_v.v_BxT).sum()), 0.0)
    g_q = grads("q_loss")  # Q target (r + gamma V') does not train V
    np.testing.assert_array_equal(g_q.v_BxT, 0.0)
    np.testing.assert_array_equal(g_q.target_q1_BxTxV, 0.0)
    self.assertGreater(float(jnp.abs(g_q.q1_BxTxV).sum()), 0.0)
    g = grads("loss")  # target networks never get gradients; unused positions neither
    np.testing.assert_array_equal(g.target_q1_BxTxV, 0.0)
    np.testing.assert_array_equal(g.target_q2_BxTxV, 0.0)
    np.testing.assert_array_equal(g.q1_BxTxV[0, [0, 3]], 0.0)
    np.testing.assert_array_equal(g.v_BxT[0, [0, 3]], 0.0)

  def test_bc_weight_needs_logits(self):
    with self.assertRaisesRegex(ValueError, "logits_BxTxV"):
      losses.ilql_loss(tiny_outputs(), tiny_batch(), bc_weight=1.0)

  def test_variants_documented(self):
    self.assertEqual(set(losses.ILQL_VARIANTS), {"original", "trlx", "lmrl_gym"})
    self.assertEqual(losses.ILQL_VARIANTS["lmrl_gym"].policy, "frozen")
    self.assertEqual(losses.ILQL_VARIANTS["lmrl_gym"].bc_weight, 0.0)
    self.assertTrue(losses.ILQL_VARIANTS["trlx"].shared_trunk)
    self.assertFalse(losses.ILQL_VARIANTS["trlx"].target_trunk)

  def test_next_token_loss_by_hand(self):
    logits = jnp.array([[[0.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0]]])
    loss, metrics = losses.next_token_loss(logits, jnp.array([[1, 0]]))
    want = (np.log(4.0) + (np.log(np.exp(2.0) + 3.0) - 2.0)) / 2  # -log softmax, averaged
    self.assertAlmostEqual(float(loss), want, places=6)
    # argmax is id 0 at both positions (ties go to the first id): right at t=1 only.
    self.assertAlmostEqual(float(metrics["accuracy"]), 0.5)

  def test_expectile(self):
    u = jnp.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(losses.expectile_loss(u, 0.9), [0.1 * 4, 0.0, 0.9 * 9], rtol=1e-6)

class LMLossTest(parameterized.TestCase):

  @chex.all_variants(with_pmap=False)
  def test_bc_and_lm_hand(self):
    batch = multi_batch(np.random.default_rng(1), vocab=3)
    logits = np.random.default_rng(2).normal(size=batch.tokens.shape + (3,)).astype(np.float32)
    out = losses.LMOutputs(jnp.asarray(logits))
    bc, _ = self.variant(losses.bc_loss)(out, batch)
    lm, _ = self.variant(losses.lm_loss)(out, batch)
    tok, act, attn = batch.tokens, batch.action_mask, batch.attention_mask
    bc_terms, lm_terms = [], []
    for b in range(tok.shape[0]):
      for t in range(1, tok.shape[1]):
        nll = -np_log_softmax(logits[b, t - 1])[tok[b, t]]
        if act[b, t]:
          bc_terms.append(nll)
        if attn[b, t]:
          lm_terms.append(nll)
    np.testing.assert_allclose(bc, np.mean(bc_terms), rtol=1e-5)
    np.testing.assert_allclose(lm, np.mean(lm_terms), rtol=1e-5)

  def test_causal_shift(self):
    # A model that puts all mass on tokens[t+1] at position t has ~0 BC loss; on tokens[t], not.
    batch = multi_batch(np.random.default_rng(3), vocab=5)
    nxt = np.concatenate([batch.tokens[:, 1:], batch.tokens[:, :1]], 1)
    good = losses.LMOutputs(50.0 * jax.nn.one_hot(nxt, 5))
    bad = losses.LMOutputs(50.0 * jax.nn.one_hot(batch.tokens, 5))
    self.assertLess(float(losses.bc_loss(good, batch)[0]), 1e-6)
    self.assertGreater(float(losses.bc_loss(bad, batch)[0]), 1.0)

  def test_masked_mean_empty(self):
    self.assertEqual(float(losses.masked_mean(jnp.ones(3), jnp.zeros(3))), 0.0)


class MCLossTest(parameterized.TestCase):

  @chex.all_variants(with_pmap=False)
  def test_hand_fixture(self):
    # tokens [bos, A, o, A, o]: r=-1 on 1, r=2 on 3, not done, bootstrap return 5.
    act = np.array([[0, 1, 0, 1, 0]], np.float32)
    rew = np.array([[0, -1, 0, 2, 0]], np.float32)
    batch = RLBatch(np.array([[0, 1, 2, 0, 2]], np.int32), np.ones((1, 5), np.float32), act, rew,
                    np.zeros((1, 5), np.float32), np.array([5.0], np.float32)).validate()
    q = np.zeros((1, 5, 3), np.float32)
    q[0, 0, 1] = 4.0  # position 0 scores token 1 (=1)
    q[0, 2, 0] = 7.0  # position 2 scores token 3 (=0)
    v = np.array([[5.0, 0.0, 6.0, 0.0, 0.0]], np.float32)
    out = losses.MCOutputs(jnp.asarray(q), jnp.asarray(v))
    loss, m = self.variant(lambda o, b: losses.mc_loss(o, b, gamma=0.9))(out, batch)
    g2 = 2 + 0.9 * 5          # 6.5
    g0 = -1 + 0.9 * g2        # 4.85
    q_loss = ((4 - g0) ** 2 + (7 - g2) ** 2) / 2
    v_loss = ((5 - g0) ** 2 + (6 - g2) ** 2) / 2
    np.testing.assert_allclose(m["q_loss"], q_loss, rtol=1e-5)
    np.testing.assert_allclose(m["v_loss"], v_loss, rtol=1e-5)
    np.testing.assert_allclose(loss, q_loss + v_loss, rtol=1e-5)
    np.testing.assert_allclose(m["return_mean"], (g0 + g2) / 2, rtol=1e-5)

  def test_bc_term(self):
    batch = multi_batch(np.random.default_rng(4), vocab=4)
    rng = np.random.default_rng(5)
    q = jnp.asarray(rng.normal(size=batch.tokens.shape + (4,)), jnp.float32)
    logits = jnp.asarray(rng.normal(size=batch.tokens.shape + (4,)), jnp.float32)
    base, _ = losses.mc_loss(losses.MCOutputs(q), batch, gamma=0.9)
    both, m = losses.mc_loss(losses.MCOutputs(q, logits_BxTxV=logits), batch, gamma=0.9,
                             bc_weight=0.5)
    bc, _ = losses.bc_loss(losses.LMOutputs(logits), batch)
    np.testing.assert_allclose(both, base + 0.5 * bc, rtol=1e-5)
    np.testing.assert_allclose(m["bc_loss"], bc, rtol=1e-6)


if __name__ == "__main__":
  absltest.main()
