"""Tests for jaxlm.losses.pg: hand numbers, numpy references, REINFORCE equivalence on-policy,
micro-batch and mesh invariance of the global normaliser, clipping, the value loss, and the
gradients the KL estimators follow, by exact enumeration of a 5-token policy."""

import functools
import os

# 8 fake CPU devices for the mesh test; must be set before JAX starts (tests/conftest.py does
# the same under pytest; this covers `python tests/pg_losses_test.py`).
_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np
from absl.testing import absltest, parameterized

from jaxlm.losses import pg

AGGREGATIONS = [("seq_mean_token_mean",), ("token_mean",), ("seq_sum_constant",)]

# Ragged mask (B=4, T=5): row 2 has no tokens, row 3 has a hole. n_b = [5, 3, 0, 2], N = 10,
# S = 3 rows with a token, L * B = 5 * 4 = 20.
MASK_BxT = np.array([[1, 1, 1, 1, 1],
                     [1, 1, 1, 0, 0],
                     [0, 0, 0, 0, 0],
                     [0, 1, 0, 1, 0]], np.float32)


def np_log_softmax(z):
  z = np.asarray(z, np.float64)
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_weights(mask_BxT, aggregation):
  """The aggregation weights w_bt of the module docstring, in numpy."""
  m = np.asarray(mask_BxT, np.float64)
  if aggregation == "token_mean":
    return m / m.sum()
  if aggregation == "seq_mean_token_mean":
    n_B = m.sum(1, keepdims=True)
    return m / np.maximum(n_B, 1) / (n_B > 0).sum()
  return m / m.size  # seq_sum_constant, L = T


class Policy:
  """A linear-softmax policy: logits_bt = x_bt @ W, with W of shape [D, V]."""

  def __init__(self, seed=0, b=4, t=5, d=3, v=6):
    rng = np.random.default_rng(seed)
    self.x_BxTxD = rng.normal(size=(b, t, d)).astype(np.float32)
    self.w_DxV = (0.5 * rng.normal(size=(d, v))).astype(np.float32)
    self.actions_BxT = rng.integers(0, v, (b, t)).astype(np.int32)
    self.adv_BxT = rng.normal(size=(b, t)).astype(np.float32)
    self.ref_w_DxV = (self.w_DxV + 0.3 * rng.normal(size=(d, v))).astype(np.float32)
    self.old_w_DxV = (self.w_DxV + 0.2 * rng.normal(size=(d, v))).astype(np.float32)

  def logits(self, w_DxV, rows=slice(None)):
    return jnp.einsum("btd,dv->btv", self.x_BxTxD[rows], w_DxV)

  def logp(self, w_DxV, rows=slice(None)):
    return pg.token_logprobs(self.logits(w_DxV, rows), self.actions_BxT[rows])

  def np_reinforce_grad(self, w_BxT):
    """-sum_bt w_bt A_bt grad_W logp_bt, with grad_W logp_bt = x_bt (e_a - p_bt)^T."""
    x = self.x_BxTxD.astype(np.float64)
    p_BxTxV = np.exp(np_log_softmax(x @ self.w_DxV.astype(np.float64)))
    onehot_BxTxV = np.eye(p_BxTxV.shape[-1])[self.actions_BxT]
    coef_BxT = -w_BxT * self.adv_BxT
    return np.einsum("bt,btd,btv->dv", coef_BxT, x, onehot_BxTxV - p_BxTxV)


def ppo_grad(policy, aggregation, mask_BxT, **kw):
  def loss(w):
    logp = policy.logp(w)
    return pg.ppo_surrogate(logp, jax.lax.stop_gradient(logp), policy.adv_BxT, mask_BxT,
                            aggregation=aggregation, **kw)
  return jax.value_and_grad(loss, has_aux=True)(jnp.asarray(policy.w_DxV))


def rl_loss(w_DxV, x_BxTxD, act_BxT, adv_BxT, mask_BxT, old_w_DxV, ref_w_DxV, normalizer, *,
            aggregation, chunk=None):
  """Off-policy PPO (asymmetric + dual clip) + k3 KL in the loss - entropy of a linear policy."""
  logits = jnp.einsum("btd,dv->btv", x_BxTxD, w_DxV)
  logp = pg.token_logprobs(logits, act_BxT)
  old_logp = pg.token_logprobs(jnp.einsum("btd,dv->btv", x_BxTxD, old_w_DxV), act_BxT)
  ref_logp = pg.token_logprobs(jnp.einsum("btd,dv->btv", x_BxTxD, ref_w_DxV), act_BxT)
  kw = dict(aggregation=aggregation, normalizer=normalizer)
  loss, _ = pg.ppo_surrogate(logp, old_logp, adv_BxT, mask_BxT, clip_low=0.2, clip_high=0.28,
                             dual_clip=3.0, **kw)
  kl, _ = pg.kl_in_loss(logp, ref_logp, mask_BxT, coef=0.1, estimator="k3", **kw)
  ent = pg.entropy_bonus(logits, mask_BxT, chunk=chunk, **kw)
  return loss + kl - 0.01 * ent


AGGREGATION_NAMES = ("seq_mean_token_mean", "token_mean", "seq_sum_constant")


@jax.jit
def _rl_all_modes(w_DxV, x_BxTxD, act_BxT, adv_BxT, mask_BxT, old_w_DxV, ref_w_DxV, norms):
  """{aggregation: (loss, grad W)} of `rl_loss`; one compile per shape for all three modes."""
  return {agg: jax.value_and_grad(rl_loss)(w_DxV, x_BxTxD, act_BxT, adv_BxT, mask_BxT,
                                           old_w_DxV, ref_w_DxV, norms[agg], aggregation=agg)
          for agg in AGGREGATION_NAMES}


@functools.cache
def micro_batch_results():
  """{(n_splits, "global" | "local"): [per-split {aggregation: (loss, grad)}]} on row splits of
  the ragged batch. "global" passes `aggregation_normalizer(MASK_BxT)` to every split; "local"
  passes each split's own `aggregation_normalizer(MASK_BxT[rows])`, which is what
  normalizer=None computes (checked in test_aggregate_hand_numbers and
  test_none_is_the_local_normaliser) but keeps one compile per shape."""
  policy = Policy(seed=1)
  out = {}
  for n_splits, kind in ((1, "local"), (1, "global"), (2, "global"), (4, "global"),
                         (2, "local")):
    size = 4 // n_splits
    out[n_splits, kind] = []
    for rows in (slice(i * size, (i + 1) * size) for i in range(n_splits)):
      norm_mask = MASK_BxT if kind == "global" else MASK_BxT[rows]
      norms = {agg: pg.aggregation_normalizer(norm_mask, agg) for agg in AGGREGATION_NAMES}
      out[n_splits, kind].append(_rl_all_modes(
          jnp.asarray(policy.w_DxV), policy.x_BxTxD[rows], policy.actions_BxT[rows],
          policy.adv_BxT[rows], MASK_BxT[rows], policy.old_w_DxV, policy.ref_w_DxV, norms))
  return out


class TokenLogprobsAggregationTest(parameterized.TestCase):

  def test_token_logprobs_vs_numpy(self):
    rng = np.random.default_rng(0)
    logits_BxTxV = rng.normal(size=(2, 3, 7)).astype(np.float32) * 3
    actions_BxT = rng.integers(0, 7, (2, 3)).astype(np.int32)
    expected = np.take_along_axis(np_log_softmax(logits_BxTxV), actions_BxT[..., None], -1)
    got = pg.token_logprobs(logits_BxTxV, actions_BxT)
    self.assertEqual(got.dtype, jnp.float32)
    self.assertEqual(got.shape, (2, 3))
    np.testing.assert_allclose(got, expected[..., 0], atol=1e-5)
    # bfloat16 logits are upcast: float32 output.
    self.assertEqual(pg.token_logprobs(jnp.asarray(logits_BxTxV, jnp.bfloat16),
                                       actions_BxT).dtype, jnp.float32)

  # loss_bt = 10 b + t. Masked sums per row: 10, 33, 0, 64 (= 31 + 33); means 2, 11, -, 32.
  @parameterized.parameters(
      ("seq_mean_token_mean", None, 3.0, (2 + 11 + 32) / 3),  # 15
      ("token_mean", None, 10.0, 107 / 10),  # 10.7
      ("seq_sum_constant", None, 20.0, 107 / 20),  # 5.35
      ("seq_sum_constant", 8, 32.0, 107 / 32),  # 3.34375
  )
  def test_aggregate_hand_numbers(self, aggregation, max_len, norm, expected):
    loss_BxT = 10.0 * np.arange(4)[:, None] + np.arange(5)[None, :]
    n = pg.aggregation_normalizer(MASK_BxT, aggregation, max_len=max_len)
    self.assertEqual(float(n), norm)
    got = pg.aggregate(loss_BxT.astype(np.float32), MASK_BxT, aggregation, n)
    self.assertAlmostEqual(float(got), expected, places=5)
    if max_len is None:  # normalizer=None uses this batch's own.
      got = pg.aggregate(loss_BxT.astype(np.float32), MASK_BxT, aggregation)
      self.assertAlmostEqual(float(got), expected, places=5)

  @parameterized.parameters(*AGGREGATIONS)
  def test_aggregate_empty_mask_is_zero(self, aggregation):
    empty = np.zeros((2, 3), np.float32)
    self.assertGreaterEqual(float(pg.aggregation_normalizer(empty, aggregation)), 1.0)
    self.assertEqual(float(pg.aggregate(np.full((2, 3), 5.0, np.float32), empty,
                                        aggregation)), 0.0)


class OnPolicyTest(parameterized.TestCase):

  @parameterized.product(aggregation=["seq_mean_token_mean", "token_mean", "seq_sum_constant"],
                         clip=[(0.2, 0.2), (0.2, 0.28), (0.0, 0.0)],
                         dual_clip=[None, 3.0])
  def test_first_iteration_is_reinforce(self, aggregation, clip, dual_clip):
    policy = Policy()
    (loss, metrics), g_DxV = ppo_grad(policy, aggregation, MASK_BxT, clip_low=clip[0],
                                      clip_high=clip[1], dual_clip=dual_clip)
    self.assertEqual(float(metrics["ratio_mean"]), 1.0)
    self.assertEqual(float(metrics["ratio_min"]), 1.0)
    self.assertEqual(float(metrics["ratio_max"]), 1.0)
    for k in ("clip_frac", "clip_frac_high", "clip_frac_low", "dual_clip_frac", "approx_kl"):
      self.assertEqual(float(metrics[k]), 0.0, k)
    w_BxT = np_weights(MASK_BxT, aggregation)
    self.assertAlmostEqual(float(loss), -(w_BxT * policy.adv_BxT).sum(), places=6)
    np.testing.assert_allclose(g_DxV, policy.np_reinforce_grad(w_BxT), atol=1e-6)


class MicroBatchTest(parameterized.TestCase):

  @parameterized.parameters(*AGGREGATIONS)
  def test_sum_over_row_splits_equals_full_batch(self, aggregation):
    results = micro_batch_results()
    full_loss, full_g = results[1, "local"][0][aggregation]
    self.assertGreater(float(jnp.abs(full_g).sum()), 0.0)
    for n_splits in (1, 2, 4):
      parts = [split[aggregation] for split in results[n_splits, "global"]]
      self.assertLen(parts, n_splits)
      total_loss = sum(l for l, _ in parts)
      total_g = sum(g for _, g in parts)
      self.assertAlmostEqual(float(total_loss), float(full_loss), places=6)
      np.testing.assert_allclose(total_g, full_g, atol=1e-6, err_msg=f"{n_splits} splits")

  def test_local_normaliser_token_mean_is_wrong(self):
    # Averaging micro-batch token means (normalizer=None: each uses its own N) weights the
    # 2-token half [2:4] like the 8-token half [0:2]: a different gradient.
    results = micro_batch_results()
    _, full_g = results[1, "local"][0]["token_mean"]
    avg_g = 0.5 * sum(split["token_mean"][1] for split in results[2, "local"])
    self.assertGreater(float(jnp.max(jnp.abs(avg_g - full_g))), 1e-3)

  @parameterized.parameters(*AGGREGATIONS)
  def test_none_is_the_local_normaliser(self, aggregation):
    # normalizer=None on a micro-batch == that micro-batch's own normaliser (not the global).
    rng = np.random.default_rng(7)
    logp, old, adv = (rng.normal(size=(2, 5)).astype(np.float32) for _ in range(3))
    rows = slice(2, 4)
    own = pg.aggregation_normalizer(MASK_BxT[rows], aggregation)
    self.assertNotEqual(float(own), float(pg.aggregation_normalizer(MASK_BxT, aggregation)))
    none_loss, _ = pg.ppo_surrogate(logp, old, adv, MASK_BxT[rows], aggregation=aggregation)
    own_loss, _ = pg.ppo_surrogate(logp, old, adv, MASK_BxT[rows], aggregation=aggregation,
                                   normalizer=own)
    self.assertEqual(float(none_loss), float(own_loss))


class MeshTest(absltest.TestCase):

  def test_sharded_gradient_equals_unsharded(self):
    if jax.device_count() < 8:
      self.skipTest(f"needs 8 (fake CPU) devices, have {jax.device_count()}: jax started before "
                    "XLA_FLAGS=--xla_force_host_platform_device_count=8 was set; run this file "
                    "on its own")
    b, t, d, v = 8, 6, 3, 5
    rng = np.random.default_rng(2)
    x = rng.normal(size=(b, t, d)).astype(np.float32)
    w = (0.5 * rng.normal(size=(d, v))).astype(np.float32)
    old_w = w + (0.3 * rng.normal(size=(d, v))).astype(np.float32)
    act = rng.integers(0, v, (b, t)).astype(np.int32)
    adv = rng.normal(size=(b, t)).astype(np.float32)
    mask = (rng.random((b, t)) < 0.6).astype(np.float32)
    mask[3] = 0.0  # a row with no tokens

    norms = {agg: pg.aggregation_normalizer(mask, agg) for agg in AGGREGATION_NAMES}

    def grads(w_DxV, x_BxTxD, act_BxT, adv_BxT, mask_BxT):
      """{aggregation: grad W of the PPO loss with the global normaliser}."""
      def loss(w, agg):
        logp = pg.token_logprobs(x_BxTxD @ w, act_BxT)
        old = pg.token_logprobs(x_BxTxD @ old_w, act_BxT)
        return pg.ppo_surrogate(logp, old, adv_BxT, mask_BxT, clip_low=0.2, clip_high=0.28,
                                aggregation=agg, normalizer=norms[agg])[0]
      return {agg: jax.grad(loss)(w_DxV, agg) for agg in AGGREGATION_NAMES}

    expected = jax.jit(grads)(w, x, act, adv, mask)
    mesh = Mesh(np.asarray(jax.devices()[:8]).reshape(2, 2, 2), ("data", "fsdp", "tensor"))
    rows = NamedSharding(mesh, P(("data", "fsdp")))
    rep = NamedSharding(mesh, P())
    args = [jax.device_put(a, rows) for a in (x, act, adv, mask)]
    self.assertEqual(args[0].sharding.shard_shape(x.shape), (2, t, d))
    got = jax.jit(grads, in_shardings=(rep, rows, rows, rows, rows))(
        jax.device_put(w, rep), *args)
    for agg in AGGREGATION_NAMES:
      self.assertGreater(float(jnp.abs(expected[agg]).sum()), 0.0)
      np.testing.assert_allclose(got[agg], expected[agg], atol=1e-6, err_msg=agg)


@functools.cache
def _ppo_token_fn(kw):
  def loss(logp, behaviour, adv):
    return pg.ppo_surrogate(logp, behaviour, adv, jnp.ones((1, 1)),
                            aggregation="seq_sum_constant", **dict(kw))
  return jax.jit(jax.value_and_grad(loss, has_aux=True))


def ppo_token(ratio, adv, **kw):
  """(l, d l / d logp, metrics) of ppo_surrogate on one token (B = T = 1, seq_sum_constant,
  so the loss is the per-token l)."""
  behaviour = jnp.full((1, 1), -1.0, jnp.float32)
  logp = behaviour + jnp.log(jnp.float32(ratio))
  (l, metrics), g = _ppo_token_fn(tuple(sorted(kw.items())))(
      logp, behaviour, jnp.full((1, 1), adv, jnp.float32))
  return float(l), float(g[0, 0]), metrics


class ClippingTest(parameterized.TestCase):

  RATIOS = (0.5, 0.79, 0.81, 1.0, 1.1, 1.27, 1.29, 1.5, 3.0)
  CLIP = dict(clip_low=0.2, clip_high=0.28)

  def test_positive_advantage_clipped_above_1_plus_clip_high(self):
    for r in self.RATIOS:
      l, g, _ = ppo_token(r, 2.0, **self.CLIP)
      if r > 1.28:
        self.assertEqual(g, 0.0, r)
        self.assertAlmostEqual(l, -2.0 * 1.28, places=6)
      else:  # l = -A rho, d l / d logp = -A rho (the lower clip does not bind for A > 0)
        self.assertAlmostEqual(g, -2.0 * r, places=5, msg=r)
        self.assertAlmostEqual(l, -2.0 * r, places=5)

  def test_negative_advantage_clipped_below_1_minus_clip_low(self):
    for r in self.RATIOS:
      l, g, _ = ppo_token(r, -2.0, **self.CLIP)
      if r < 0.8:
        self.assertEqual(g, 0.0, r)
        self.assertAlmostEqual(l, 2.0 * 0.8, places=6)
      else:  # the upper clip does not bind for A < 0 (without dual-clip)
        self.assertAlmostEqual(g, 2.0 * r, places=5, msg=r)
        self.assertAlmostEqual(l, 2.0 * r, places=5)

  def test_dual_clip(self):
    for r in (0.5, 1.0, 2.0, 2.9, 3.5, 10.0):
      l, g, m = ppo_token(r, -0.5, dual_clip=3.0, **self.CLIP)
      if r > 3.0:
        self.assertEqual(l, 1.5)  # exactly c |A|
        self.assertEqual(g, 0.0)
        self.assertEqual(float(m["dual_clip_frac"]), 1.0)
      elif r < 0.8:
        self.assertEqual(g, 0.0)
        self.assertEqual(float(m["dual_clip_frac"]), 0.0)
      else:
        self.assertAlmostEqual(g, 0.5 * r, places=5)
        self.assertAlmostEqual(l, 0.5 * r, places=5)
        self.assertEqual(float(m["dual_clip_frac"]), 0.0)
    # Positive advantages are untouched by dual-clip.
    self.assertEqual(ppo_token(10.0, 0.5, dual_clip=3.0, **self.CLIP)[:2],
                     ppo_token(10.0, 0.5, **self.CLIP)[:2])

  def test_zero_gradient_tokens_in_a_batch_and_clip_fractions(self):
    ratio_BxT = np.array([[0.5, 1.0, 1.5, 4.0, 1.1],
                          [0.7, 0.9, 1.3, 5.0, 9.0]], np.float32)
    adv_BxT = np.array([[1.0, 1.0, 1.0, -1.0, -1.0],
                        [-1.0, -1.0, 1.0, 1.0, 1.0]], np.float32)
    mask_BxT = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], np.float32)  # the 9.0 is masked
    behaviour = np.full((2, 5), -2.0, np.float32)
    logp = jnp.asarray(behaviour) + jnp.log(ratio_BxT)

    def loss(lp):
      return pg.ppo_surrogate(lp, behaviour, adv_BxT, mask_BxT, clip_low=0.2, clip_high=0.28,
                              dual_clip=3.0)
    (_, m), g_BxT = jax.value_and_grad(loss, has_aux=True)(logp)
    # By hand over the 9 tokens: high (A > 0, rho > 1.28): 1.5, 1.3, 5.0 -> 3;
    # low (A < 0, rho < 0.8): 0.7 -> 1; dual (A < 0, rho > 3): 4.0 -> 1.
    self.assertAlmostEqual(float(m["clip_frac_high"]), 3 / 9, places=6)
    self.assertAlmostEqual(float(m["clip_frac_low"]), 1 / 9, places=6)
    self.assertAlmostEqual(float(m["dual_clip_frac"]), 1 / 9, places=6)
    self.assertAlmostEqual(float(m["clip_frac"]), 5 / 9, places=6)
    zero = np.array([[0, 0, 1, 1, 0], [1, 0, 1, 1, 1]], bool)  # clipped or masked
    np.testing.assert_array_equal(np.asarray(g_BxT)[zero], 0.0)
    self.assertTrue(np.all(np.asarray(g_BxT)[~zero] != 0.0))
    # ratio metrics over the 9 valid tokens.
    self.assertAlmostEqual(float(m["ratio_max"]), 5.0, places=5)
    self.assertAlmostEqual(float(m["ratio_min"]), 0.5, places=6)
    self.assertAlmostEqual(float(m["ratio_mean"]), 16.0 / 9, places=5)  # (8.1 + 7.9) / 9


class ValueLossTest(absltest.TestCase):

  def test_unclipped(self):
    v = jnp.array([[1.0, 2.0, -1.0, 9.0]])
    ret = np.array([[0.5, 3.0, -1.0, 0.0]], np.float32)
    mask = np.array([[1, 1, 1, 0]], np.float32)
    (loss, m), (g_v, g_old, g_ret) = jax.value_and_grad(
        lambda v, o, r: pg.value_loss(v, o, r, mask), argnums=(0, 1, 2), has_aux=True)(
            v, jnp.zeros_like(v), jnp.asarray(ret))
    # 0.5 * [0.25, 1, 0] / 3 tokens.
    self.assertAlmostEqual(float(loss), 0.625 / 3, places=6)
    np.testing.assert_allclose(g_v, [[0.5 / 3, -1.0 / 3, 0.0, 0.0]], atol=1e-7)
    np.testing.assert_array_equal(g_old, 0.0)
    np.testing.assert_array_equal(g_ret, 0.0)
    self.assertEqual(float(m["vf_clip_frac"]), 0.0)
    self.assertAlmostEqual(float(m["value_mean"]), 2.0 / 3, places=6)

  def test_clipped_both_branches(self):
    # c = 0.2, V_old = 0.
    #  token 0: V=1,   R=2:   (V-R)^2 = 1,    V_c = 0.2: (V_c-R)^2 = 3.24 -> clipped wins, 1.62.
    #  token 1: V=1,   R=0.5: (V-R)^2 = 0.25, V_c = 0.2: 0.09        -> unclipped, 0.125.
    #  token 2: V=0.1, R=1:   inside the clip range: both 0.81       -> 0.405.
    v = jnp.array([[1.0, 1.0, 0.1]])
    ret = np.array([[2.0, 0.5, 1.0]], np.float32)
    (loss, m), g_v = jax.value_and_grad(
        lambda v: pg.value_loss(v, np.zeros((1, 3), np.float32), ret, np.ones((1, 3)),
                                clip=0.2), has_aux=True)(v)
    self.assertAlmostEqual(float(loss), 2.15 / 3, places=6)
    self.assertAlmostEqual(float(m["vf_clip_frac"]), 1 / 3, places=6)
    self.assertEqual(float(g_v[0, 0]), 0.0)  # the clipped term wins: no gradient
    np.testing.assert_allclose(g_v[0, 1:], [0.5 / 3, -0.9 / 3], atol=1e-6)

  def test_gradient_reaches_the_critic(self):
    # A linear critic V = x @ u: a detached value head would give a zero gradient here.
    rng = np.random.default_rng(3)
    x_BxTxD = rng.normal(size=(2, 4, 3)).astype(np.float32)
    u_D = rng.normal(size=3).astype(np.float32)
    ret = rng.normal(size=(2, 4)).astype(np.float32)
    old = (x_BxTxD @ u_D).astype(np.float32)
    g_D = jax.grad(lambda u: pg.value_loss(x_BxTxD @ u, old, ret, MASK_BxT[:2, :4],
                                           clip=10.0)[0])(jnp.asarray(u_D))
    m = MASK_BxT[:2, :4]
    expected = np.einsum("bt,btd->d", m * (old - ret) / m.sum(), x_BxTxD)
    self.assertGreater(float(jnp.abs(g_D).sum()), 0.1)
    np.testing.assert_allclose(g_D, expected, atol=1e-5)


class KLEnumerationTest(parameterized.TestCase):
  """A single-step policy over 5 tokens: E_{a~pi}[f(a)] = sum_a pi(a) f(a), exactly."""

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(4)
    self.theta = jnp.asarray(rng.normal(size=5), jnp.float32)
    self.phi = jnp.asarray(rng.normal(size=5), jnp.float32)
    # Row a of the [5, 1] batch holds token a.
    self.mask = jnp.ones((5, 1))

  def logps(self, theta):
    return (jax.nn.log_softmax(theta)[:, None],
            jax.lax.stop_gradient(jax.nn.log_softmax(self.phi))[:, None])

  def expected_grad(self, per_token_loss):
    """E_a[grad loss(a)] = sum_a stop_grad(pi(a)) grad loss(a)."""
    def objective(theta):
      pi_5 = jax.lax.stop_gradient(jax.nn.softmax(theta))
      return jnp.sum(pi_5 * per_token_loss(theta)[:, 0])
    return jax.grad(objective)(self.theta)

  def kl_grads(self):
    def kl_pi_ref(theta):
      lp, lq = jax.nn.log_softmax(theta), jax.nn.log_softmax(self.phi)
      return jnp.sum(jnp.exp(lp) * (lp - lq))

    def kl_ref_pi(theta):
      lp, lq = jax.nn.log_softmax(theta), jax.nn.log_softmax(self.phi)
      return jnp.sum(jnp.exp(lq) * (lq - lp))
    return kl_pi_ref(self.theta), jax.grad(kl_pi_ref)(self.theta), jax.grad(kl_ref_pi)(self.theta)

  def test_in_loss_gradients(self):
    _, g_fwd, g_rev = self.kl_grads()
    self.assertGreater(float(jnp.abs(g_fwd - g_rev).max()), 1e-2)  # the two really differ
    grads = {est: self.expected_grad(
        lambda th, est=est: pg.kl_estimator(*self.logps(th), self.mask, est))
             for est in ("k1", "k2", "k3")}
    np.testing.assert_allclose(grads["k1"], 0.0, atol=1e-6)
    np.testing.assert_allclose(grads["k2"], g_fwd, atol=1e-6)
    np.testing.assert_allclose(grads["k3"], g_rev, atol=1e-6)

  def test_kl_in_loss_is_coef_times_aggregated_estimator(self):
    lp, lq = self.logps(self.theta)
    for est in ("k1", "k2", "k3"):
      loss, m = pg.kl_in_loss(lp, lq, self.mask, coef=0.3, estimator=est)
      k = pg.kl_estimator(lp, lq, self.mask, est)
      self.assertAlmostEqual(float(loss), 0.3 * float(jnp.mean(k)), places=6)
      self.assertAlmostEqual(float(m["kl"]), float(jnp.mean(k)), places=6)

  def test_in_reward_k1_gives_beta_grad_kl(self):
    beta = 0.3
    _, g_fwd, _ = self.kl_grads()

    def reinforce(theta):  # -(r - beta k1) logp with r = 0; the penalty has no gradient
      lp, lq = self.logps(theta)
      penalty = pg.kl_in_reward(lp, lq, self.mask, coef=beta, estimator="k1")
      return -(0.0 - penalty) * lp
    np.testing.assert_allclose(self.expected_grad(reinforce), beta * g_fwd, atol=1e-6)
    no_grad = jax.grad(lambda th: jnp.sum(pg.kl_in_reward(*self.logps(th), self.mask,
                                                          coef=beta)))(self.theta)
    np.testing.assert_array_equal(no_grad, 0.0)

  def test_estimator_values(self):
    kl, _, _ = self.kl_grads()
    lp, lq = self.logps(self.theta)
    pi_5 = jnp.exp(lp[:, 0])
    k1 = pg.kl_estimator(lp, lq, self.mask, "k1")[:, 0]
    k3 = pg.kl_estimator(lp, lq, self.mask, "k3")[:, 0]
    self.assertAlmostEqual(float(jnp.sum(pi_5 * k1)), float(kl), places=6)
    self.assertAlmostEqual(float(jnp.sum(pi_5 * k3)), float(kl), places=6)
    self.assertTrue(bool(jnp.all(k3 >= 0)))
    self.assertGreater(float(kl), 1e-2)
    # kl_in_reward is coef * k1 (its default estimator).
    np.testing.assert_allclose(pg.kl_in_reward(lp, lq, self.mask, coef=0.5), 0.5 * k1[:, None],
                               atol=1e-7)


def np_kl(logits, ref):
  lp, lq = np_log_softmax(logits), np_log_softmax(ref)
  return (np.exp(lp) * (lp - lq)).sum(-1)


@functools.partial(jax.jit, static_argnames="chunk")
def _exact_kl_and_grads(z_BxTxV, ref_BxTxV, mask_BxT, w_BxT, *, chunk):
  """(exact_kl, d/dz, d/dref) of sum_bt w_bt exact_kl_bt."""
  objective = lambda z, ref: jnp.sum(w_BxT * pg.exact_kl(z, ref, mask_BxT, chunk=chunk))
  return (pg.exact_kl(z_BxTxV, ref_BxTxV, mask_BxT, chunk=chunk),
          *jax.grad(objective, argnums=(0, 1))(z_BxTxV, ref_BxTxV))


@functools.partial(jax.jit, static_argnames="chunk")
def _entropies(z_BxTxV, mask_BxT, *, chunk):
  """(token_entropy, entropy_bonus token_mean, seq_mean_token_mean, d token_mean / dz)."""
  bonus = lambda z, agg: pg.entropy_bonus(z, mask_BxT, chunk=chunk, aggregation=agg)
  return (pg.token_entropy(z_BxTxV, chunk=chunk), bonus(z_BxTxV, "token_mean"),
          bonus(z_BxTxV, "seq_mean_token_mean"), jax.grad(bonus)(z_BxTxV, "token_mean"))


class ExactKLEntropyTest(parameterized.TestCase):
  """T = 7 with chunk 1, 3 (does not divide T: the last window overlaps) and 128 (> T)."""

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(5)
    self.logits = (2 * rng.normal(size=(2, 7, 6))).astype(np.float32)
    self.ref = (2 * rng.normal(size=(2, 7, 6))).astype(np.float32)
    self.mask = np.array([[1, 1, 1, 0, 1, 1, 1], [0, 1, 1, 1, 1, 0, 0]], np.float32)
    self.w = rng.normal(size=(2, 7)).astype(np.float32)

  @parameterized.parameters(None, 1, 3, 128)
  def test_exact_kl(self, chunk):
    kl, g_z, g_ref = _exact_kl_and_grads(self.logits, self.ref, self.mask, self.w, chunk=chunk)
    self.assertEqual(kl.shape, (2, 7))
    np.testing.assert_allclose(kl, self.mask * np_kl(self.logits, self.ref), atol=1e-5)
    np.testing.assert_array_equal(np.asarray(kl)[self.mask == 0], 0.0)
    np.testing.assert_array_equal(g_ref, 0.0)
    # d KL / d z_j = p_j (log p_j - log q_j - KL), in numpy.
    lp, lq = np_log_softmax(self.logits), np_log_softmax(self.ref)
    kl_np = np_kl(self.logits, self.ref)[..., None]
    g_np = (self.w * self.mask)[..., None] * np.exp(lp) * (lp - lq - kl_np)
    np.testing.assert_allclose(g_z, g_np, atol=1e-5)
    kl_unchunked, g_unchunked, _ = _exact_kl_and_grads(self.logits, self.ref, self.mask,
                                                        self.w, chunk=None)
    np.testing.assert_allclose(kl, kl_unchunked, atol=1e-6)
    np.testing.assert_allclose(g_z, g_unchunked, atol=1e-6)

  @parameterized.parameters(None, 1, 3, 128)
  def test_entropy(self, chunk):
    lp = np_log_softmax(self.logits)
    ent_np = -(np.exp(lp) * lp).sum(-1)
    ent, bonus, bonus_seq, g = _entropies(self.logits, self.mask, chunk=chunk)
    np.testing.assert_allclose(ent, ent_np, atol=1e-5)
    self.assertAlmostEqual(float(bonus), (ent_np * self.mask).sum() / self.mask.sum(), places=5)
    per_row = (ent_np * self.mask).sum(1) / self.mask.sum(1)
    self.assertAlmostEqual(float(bonus_seq), per_row.mean(), places=5)
    # d H / d z_j = -p_j (log p_j + H), token mean over the mask.
    g_np = -(self.mask / self.mask.sum())[..., None] * np.exp(lp) * (lp + ent_np[..., None])
    np.testing.assert_allclose(g, g_np, atol=1e-6)


class NaNSafetyTest(parameterized.TestCase):

  @parameterized.parameters(-np.inf, 1e9, np.nan)
  def test_garbage_logp_off_the_mask(self, garbage):
    rng = np.random.default_rng(6)
    logp = -rng.random((4, 5)).astype(np.float32)
    old = logp - 0.1 * rng.normal(size=(4, 5)).astype(np.float32)
    ref = logp - 0.1 * rng.normal(size=(4, 5)).astype(np.float32)
    adv = rng.normal(size=(4, 5)).astype(np.float32)
    off = MASK_BxT == 0
    bad, bad_old, bad_ref = logp.copy(), old.copy(), ref.copy()
    bad[off], bad_old[off], bad_ref[off] = garbage, -garbage, garbage

    def total(lp, old_lp, ref_lp):
      loss, m = pg.ppo_surrogate(lp, old_lp, adv, MASK_BxT, dual_clip=3.0)
      for est in ("k1", "k2", "k3"):
        loss = loss + pg.kl_in_loss(lp, ref_lp, MASK_BxT, coef=0.1, estimator=est)[0]
      penalty = pg.kl_in_reward(lp, ref_lp, MASK_BxT, coef=0.1)
      return loss + jnp.sum(penalty), m

    (clean, _), g_clean = jax.value_and_grad(total, has_aux=True)(logp, old, ref)
    (loss, m), g = jax.value_and_grad(total, has_aux=True)(bad, bad_old, bad_ref)
    self.assertTrue(np.isfinite(float(loss)))
    self.assertTrue(all(np.isfinite(float(v)) for v in m.values()), m)
    self.assertTrue(np.all(np.isfinite(g)))
    self.assertAlmostEqual(float(loss), float(clean), places=5)
    np.testing.assert_allclose(g, g_clean, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(g)[off], 0.0)


class BadInputsTest(absltest.TestCase):

  def test_unknown_aggregation(self):
    z = np.zeros((2, 3), np.float32)
    calls = [
        lambda: pg.aggregation_normalizer(z, "mean"),
        lambda: pg.aggregate(z, z, "mean"),
        lambda: pg.aggregate(z, z, "mean", normalizer=1.0),
        lambda: pg.ppo_surrogate(z, z, z, z, aggregation="mean"),
        lambda: pg.value_loss(z, z, z, z, aggregation="mean"),
        lambda: pg.kl_in_loss(z, z, z, coef=0.1, aggregation="mean"),
        lambda: pg.entropy_bonus(np.zeros((2, 3, 4)), z, aggregation="mean"),
    ]
    for call in calls:
      with self.assertRaisesRegex(ValueError, "aggregation"):
        call()

  def test_unknown_estimator(self):
    z = np.zeros((2, 3), np.float32)
    for call in (lambda: pg.kl_estimator(z, z, z, "k4"),
                 lambda: pg.kl_in_loss(z, z, z, coef=0.1, estimator="k4"),
                 lambda: pg.kl_in_reward(z, z, z, coef=0.1, estimator="k4")):
      with self.assertRaisesRegex(ValueError, "estimator"):
        call()

  def test_bad_clips(self):
    z = np.zeros((2, 3), np.float32)
    for clip_low in (1.0, 1.5):
      with self.assertRaisesRegex(ValueError, "clip_low"):
        pg.ppo_surrogate(z, z, z, z, clip_low=clip_low)
    with self.assertRaisesRegex(ValueError, "clip_high"):
      pg.ppo_surrogate(z, z, z, z, clip_high=-0.1)
    for c in (1.0, 0.5):
      with self.assertRaisesRegex(ValueError, "dual_clip"):
        pg.ppo_surrogate(z, z, z, z, dual_clip=c)

  def test_bad_chunk(self):
    with self.assertRaisesRegex(ValueError, "chunk"):
      pg.token_entropy(np.zeros((1, 4, 3), np.float32), chunk=0)


if __name__ == "__main__":
  absltest.main()
