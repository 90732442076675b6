"""Train-step benchmark at a tiny size: the fused step is the plain step, and the rows add up."""

from absl.testing import absltest
import flax.linen as nn
import jax
import numpy as np

from benchmarks import train_bench


class TrainBenchTest(absltest.TestCase):

  def test_fused_loss_equals_plain_loss_and_grads(self):
    cfg, batch, seq = train_bench.SIZES["tiny"]
    tokens = train_bench._tokens(cfg, batch, seq)
    model, plain = train_bench.lm_loss_fn(cfg, fused=False)
    _, fused = train_bench.lm_loss_fn(cfg, fused=True, chunk_size=5)  # 32 tokens: ragged.
    params = nn.meta.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), tokens[:, :-1])["params"])
    grad = lambda f: jax.jit(jax.value_and_grad(
        lambda p: f(p, tokens, None, state=None)[0]))(params)
    (want, want_g), (got, got_g) = grad(plain), grad(fused)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    self.assertAlmostEqual(float(want), np.log(cfg.vocab_size), delta=0.1)  # Near uniform.
    for g, r in zip(jax.tree.leaves(got_g), jax.tree.leaves(want_g)):
      np.testing.assert_allclose(g, r, atol=1e-6)

  def test_both_sides_step_at_tiny_size(self):
    cfg, batch, seq = train_bench.SIZES["tiny"]
    ours, peak_bytes = train_bench._ours(cfg, batch, seq)
    self.assertGreater(ours(1), 0)
    emb = (cfg.vocab_size + seq) * cfg.d_model  # Embedding params + 2 AdamW moments: a floor.
    self.assertGreater(peak_bytes, 4 * 3 * emb)
    self.assertGreater(train_bench._reference(1, cfg, batch, seq, bf16=True)(1), 0)

  def test_format_breakdown_shares(self):
    times = {"a": (1.0, 2.0), "b": (1.0, 1.0), "output projection + CE (plain)": (1.0, 3.0),
             "output projection + CE (fused)": (0.5, 2.0), "full step (plain)": (4.0, 10.0),
             "full step (fused)": (3.0, 8.0)}
    table = train_bench.format_breakdown(times)
    self.assertIn("| everything else (step - pieces) | 1.000 | 4.000 | 40% |", table)
    self.assertIn("| output projection + CE (plain) | 1.000 | 3.000 | 30% |", table)
    self.assertIn("| full step (fused) | 3.000 | 8.000 | 80% |", table)


if __name__ == "__main__":
  absltest.main()
