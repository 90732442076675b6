"""Fused, chunked output projection + cross-entropy against the plain [N, V] path."""

from absl.testing import absltest
from absl.testing import parameterized
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import testing
from jaxlm.losses import lm
from jaxlm.losses import xent
from jaxlm.models import transformer

N, D, V = 13, 8, 37  # 13 tokens: chunk sizes 4 and 5 do not divide it.


def _fixture(seed=0):
  rng = np.random.default_rng(seed)
  hidden = jnp.asarray(rng.normal(size=(N, D)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(V, D)), jnp.float32)
  targets = jnp.asarray(rng.integers(0, V, N), jnp.int32)
  mask = jnp.asarray(rng.random(N) < 0.7, jnp.float32)  # Masked / padded tokens weigh 0.
  return hidden, w, targets, mask


def _numpy_nll(hidden, w, targets):
  """Eq. 1 in float64 numpy: the hand-computed reference."""
  z = np.asarray(hidden, np.float64) @ np.asarray(w, np.float64).T
  m = z.max(-1, keepdims=True)
  lse = (m + np.log(np.exp(z - m).sum(-1, keepdims=True)))[:, 0]
  return lse - z[np.arange(len(targets)), np.asarray(targets)], z.argmax(-1)


def _numpy_grads(hidden, w, targets, a):
  """Eq. 2 for sum_n a_n nll_n in float64: (d/dhidden, d/dw)."""
  h, w64 = np.asarray(hidden, np.float64), np.asarray(w, np.float64)
  z = h @ w64.T
  p = np.exp(z - z.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  p[np.arange(len(targets)), np.asarray(targets)] -= 1.0
  dz = p * np.asarray(a, np.float64)[:, None]
  return dz @ w64, dz.T @ h


def _plain(hidden, w, targets, a):
  logp = jax.nn.log_softmax(hidden @ w.T, axis=-1)
  return -jnp.sum(a * jnp.take_along_axis(logp, targets[:, None], axis=-1)[:, 0])


class XentTest(parameterized.TestCase):

  @parameterized.parameters(1, 5, 64)
  def test_token_nll_values_and_grads(self, chunk):
    hidden, w, targets, mask = _fixture()
    nll, argmax = jax.jit(lambda h, w: xent.token_nll(h, w, targets, chunk_size=chunk))(hidden, w)
    want, want_argmax = _numpy_nll(hidden, w, targets)
    np.testing.assert_allclose(nll, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(argmax, want_argmax)
    a = mask / mask.sum()
    loss = lambda h, w: jnp.sum(a * xent.token_nll(h, w, targets, chunk_size=chunk)[0])
    dh, dw = jax.grad(loss, (0, 1))(hidden, w)
    want_dh, want_dw = _numpy_grads(hidden, w, targets, a)
    np.testing.assert_allclose(dh, want_dh, atol=1e-5)
    np.testing.assert_allclose(dw, want_dw, atol=1e-5)
    self.assertTrue(np.all(np.asarray(dh)[np.asarray(mask) == 0] == 0))  # Masked rows: no grad.

  @parameterized.parameters(4, 13)
  def test_weighted_nll_values_and_grads(self, chunk):
    hidden, w, targets, mask = _fixture(1)
    a = mask / mask.sum()
    fn = lambda h, w: xent.weighted_nll(h, w, targets, a, chunk_size=chunk)
    loss, nll, argmax = jax.jit(fn)(hidden, w)
    grads = jax.jit(jax.grad(lambda h, w: 3.0 * fn(h, w)[0], (0, 1)))(hidden, w)
    want, want_argmax = _numpy_nll(hidden, w, targets)
    np.testing.assert_allclose(nll, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss, np.sum(np.asarray(a) * want), rtol=1e-5)
    np.testing.assert_array_equal(argmax, want_argmax)
    want_dh, want_dw = _numpy_grads(hidden, w, targets, a)  # Cotangent 3 scales Eq. 2.
    np.testing.assert_allclose(grads[0], 3 * want_dh, atol=1e-5)
    np.testing.assert_allclose(grads[1], 3 * want_dw, atol=1e-5)

  @parameterized.parameters((1, 1.0), (5, 0.7), (64, 1.3))
  def test_token_logprob_entropy_values_and_grads(self, chunk, temperature):
    hidden, w, targets, mask = _fixture(2)
    rng = np.random.default_rng(3)
    g_lp, g_ent = (jnp.asarray(rng.normal(size=N), jnp.float32) * mask for _ in range(2))
    fused = lambda h, w: xent.token_logprob_entropy(h, w, targets, temperature=temperature,
                                                    chunk_size=chunk)
    # Reference in float64 numpy: log-softmax of z = h W^T / T and H = -sum p log p.
    z = np.asarray(hidden, np.float64) @ np.asarray(w, np.float64).T / temperature
    logp_full = z - z.max(-1, keepdims=True)
    logp_full -= np.log(np.exp(logp_full).sum(-1, keepdims=True))
    p = np.exp(logp_full)
    want_logp = logp_full[np.arange(N), np.asarray(targets)]
    want_ent = -(p * logp_full).sum(-1)
    logp, ent = jax.jit(fused)(hidden, w)
    np.testing.assert_allclose(logp, want_logp, atol=1e-5)
    np.testing.assert_allclose(ent, want_ent, atol=1e-5)
    # Gradients of sum(g_lp * logp + g_ent * H), Eq. 3 by hand in float64.
    onehot = np.eye(V)[np.asarray(targets)]
    gl, ge = np.asarray(g_lp, np.float64)[:, None], np.asarray(g_ent, np.float64)[:, None]
    dz = gl * (onehot - p) - ge * p * (logp_full + want_ent[:, None])
    h64, w64 = np.asarray(hidden, np.float64), np.asarray(w, np.float64)
    want_dh, want_dw = dz @ w64 / temperature, dz.T @ h64 / temperature
    obj = lambda h, w: jnp.sum(g_lp * fused(h, w)[0] + g_ent * fused(h, w)[1])
    dh, dw = jax.jit(jax.grad(obj, (0, 1)))(hidden, w)
    # float32 against float64: entries up to ~10, so a relative tolerance as well.
    np.testing.assert_allclose(dh, want_dh, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-4, atol=1e-5)
    with self.assertRaisesRegex(ValueError, "temperature=0"):
      xent.token_logprob_entropy(hidden, w, targets, temperature=0)

  def test_matches_plain_path_tied_and_untied(self):
    """Tied: w is the embedding [V, D]; untied: w is lm_head [D, V] transposed (grad flows)."""
    hidden, w, targets, mask = _fixture(2)
    a = mask / mask.sum()
    kernel_DxV = w.T
    for name, fused in (
        ("token", lambda h, k: jnp.sum(a * xent.token_nll(h, k.T, targets, chunk_size=4)[0])),
        ("weighted", lambda h, k: xent.weighted_nll(h, k.T, targets, a, chunk_size=4)[0])):
      got = jax.value_and_grad(fused, (0, 1))(hidden, kernel_DxV)
      want = jax.value_and_grad(lambda h, k: _plain(h, k.T, targets, a), (0, 1))(
          hidden, kernel_DxV)
      for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, r, atol=1e-5, err_msg=name)

  def test_weights_get_no_gradient_and_nll_is_metric_only(self):
    hidden, w, targets, mask = _fixture(3)
    da = jax.grad(lambda a: xent.weighted_nll(hidden, w, targets, a, chunk_size=4)[0])(mask)
    np.testing.assert_array_equal(da, np.zeros(N))
    dh = jax.grad(lambda h: xent.weighted_nll(h, w, targets, mask)[1].sum())(hidden)
    np.testing.assert_array_equal(dh, np.zeros((N, D)))

  def test_bfloat16_hidden_close_to_float32(self):
    hidden, w, targets, _ = _fixture(4)
    nll16, _ = xent.token_nll(hidden.astype(jnp.bfloat16), w, targets, chunk_size=5)
    self.assertEqual(nll16.dtype, jnp.float32)
    np.testing.assert_allclose(nll16, _numpy_nll(hidden, w, targets)[0], rtol=0.05, atol=0.3)
    dh = jax.grad(lambda h: xent.token_nll(h, w, targets)[0].sum())(
        hidden.astype(jnp.bfloat16))
    self.assertEqual(dh.dtype, jnp.bfloat16)

  def test_bad_inputs_name_the_field(self):
    hidden, w, targets, mask = _fixture()
    with self.assertRaisesRegex(ValueError, "targets_N"):
      xent.token_nll(hidden, w, targets[:-1])
    with self.assertRaisesRegex(ValueError, "w_VxD"):
      xent.token_nll(hidden, w[:, :-1], targets)
    with self.assertRaisesRegex(ValueError, "targets_N must be integer"):
      xent.token_nll(hidden, w, targets.astype(jnp.float32))
    with self.assertRaisesRegex(ValueError, "chunk_size"):
      xent.weighted_nll(hidden, w, targets, mask, chunk_size=0)


class FusedLMLossTest(absltest.TestCase):
  """The library's LM losses on (hidden, output matrix) equal the logits path."""

  def _model_outputs(self, tie):
    cfg = testing.tiny_model(vocab_size=23, tie_embeddings=tie, max_len=16)
    model = transformer.Transformer(cfg)
    batch = testing.fake_rl_batch(batch_size=3, length=10, vocab_size=23)
    params = nn.meta.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), batch.tokens)["params"])
    return cfg, model, params, batch

  def test_bc_lm_and_next_token_losses_match_logits_path(self):
    for tie in (True,):  # Untied: test_output_matrix_untied (values) + the xent-level test.
      cfg, model, params, batch = self._model_outputs(tie)

      def losses(params, fused):
        out = model.apply({"params": params}, batch.tokens,
                          attention_mask_BxT=batch.attention_mask, with_logits=not fused)
        if fused:
          self.assertIsNone(out.logits)
          outputs = lm.LMOutputs(hidden_BxTxD=out.hidden,
                                 w_VxD=transformer.output_matrix(params, cfg))
          nt = lm.fused_next_token_loss(out.hidden, outputs.w_VxD, batch.tokens)
        else:
          outputs = lm.LMOutputs(out.logits)
          nt = lm.next_token_loss(out.logits, batch.tokens)
        return (lm.bc_loss(outputs, batch)[0], lm.lm_loss(outputs, batch)[0], nt[0],
                nt[1]["accuracy"])

      # bc, lm and dense next-token losses, and the gradient of a mix of them (one compile).
      mixed = lambda p, f: (lambda v: (v[0] + 2 * v[1] + 3 * v[2], v))(losses(p, f))
      got, want = (jax.jit(jax.value_and_grad(lambda p, f=f: mixed(p, f), has_aux=True))(params)
                   for f in (True, False))
      for g, r in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, r, atol=1e-5, err_msg=f"tie={tie}")

  def test_output_matrix_untied(self):
    cfg, model, params, batch = self._model_outputs(tie=False)
    self.assertIn("lm_head", params)  # Created at init even though with_logits=False exists.
    out = jax.jit(model.apply)({"params": params}, batch.tokens)
    w_VxD = transformer.output_matrix(params, cfg)
    self.assertEqual(w_VxD.shape, (cfg.vocab_size, cfg.d_model))
    np.testing.assert_allclose(out.hidden @ w_VxD.T, out.logits, rtol=1e-5, atol=1e-5)

  def test_lm_outputs_without_logits_or_hidden_is_clear(self):
    batch = testing.fake_rl_batch(batch_size=2, length=6, vocab_size=7)
    with self.assertRaisesRegex(ValueError, "hidden_BxTxD and w_VxD"):
      lm.bc_loss(lm.LMOutputs(hidden_BxTxD=jnp.zeros((2, 6, 4))), batch)


if __name__ == "__main__":
  absltest.main()
