"""Tests for the one decoder: cache, padding, scan/remat layouts, GQA and config errors."""

from absl.testing import absltest
from absl.testing import parameterized
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.models import heads
from jaxlm.models import transformer as tfm

FAMILIES = {
    "gpt2": tfm.gpt2_config(vocab_size=61, d_model=32, n_layers=2, n_heads=4, d_ff=64,
                            max_len=32),
    "llama": tfm.llama_config(vocab_size=61, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                              d_ff=48, max_len=32),
}


def _init(cfg, seed=0, t=8):
  tokens = jnp.zeros((1, t), jnp.int32)
  return nn.meta.unbox(tfm.Transformer(cfg).init(jax.random.key(seed), tokens))["params"]


def _tokens(b, t, vocab, seed=1):
  return jnp.asarray(np.random.RandomState(seed).randint(0, vocab, (b, t)), jnp.int32)


def _stack_blocks(params, n_layers):
  """Loop layout (block_i) -> scan layout (blocks with a leading layer axis)."""
  blocks = [params[f"block_{i}"] for i in range(n_layers)]
  out = {k: v for k, v in params.items() if not k.startswith("block_")}
  out["blocks"] = jax.tree.map(lambda *a: jnp.stack(a), *blocks)
  return out


class TransformerTest(parameterized.TestCase):

  @parameterized.named_parameters(("gpt2", "gpt2"), ("llama", "llama"))
  def test_cache_decode_matches_full_forward(self, family):
    cfg = FAMILIES[family]
    params = _init(cfg)
    model = tfm.Transformer(cfg)
    tokens = _tokens(2, 10, cfg.vocab_size)
    full = model.apply({"params": params}, tokens).logits
    out = model.apply({"params": params}, tokens[:, :6], cache=tfm.init_cache(cfg, 2, 16))
    logits = [out.logits]
    for t in range(6, 10):
      out = model.apply({"params": params}, tokens[:, t:t + 1],
                        positions_BxT=jnp.full((2, 1), t), cache=out.cache)
      logits.append(out.logits)
    np.testing.assert_allclose(jnp.concatenate(logits, 1), full, atol=1e-5)
    self.assertEqual(int(out.cache["index"]), 10)

  @parameterized.named_parameters(("gpt2", "gpt2"), ("llama", "llama"))
  def test_left_padding_gives_unpadded_logits(self, family):
    cfg = FAMILIES[family]
    params = _init(cfg)
    model = tfm.Transformer(cfg)
    row = _tokens(1, 5, cfg.vocab_size)
    padded = jnp.concatenate([jnp.zeros((1, 3), jnp.int32), row], axis=1)
    mask = jnp.array([[0, 0, 0, 1, 1, 1, 1, 1]])
    alone = model.apply({"params": params}, row).logits
    with_pad = model.apply({"params": params}, padded, attention_mask_BxT=mask).logits
    np.testing.assert_allclose(with_pad[:, 3:], alone, atol=1e-5)
    np.testing.assert_array_equal(tfm.positions_from_mask(mask), [[0, 0, 0, 0, 1, 2, 3, 4]])

  @parameterized.named_parameters(("gpt2", "gpt2"), ("llama", "llama"))
  def test_scan_and_remat_layouts_match_loop(self, family):
    cfg = FAMILIES[family]
    params = _init(cfg)
    tokens = _tokens(2, 7, cfg.vocab_size)
    scan_cfg = cfg.replace(scan_layers=True, remat=True)
    scan_params = _stack_blocks(params, cfg.n_layers)
    self.assertEqual(jax.tree.structure(scan_params),
                     jax.tree.structure(_init(scan_cfg)))

    def loss(p, c):
      return tfm.Transformer(c).apply({"params": p}, tokens).logits.sum()

    np.testing.assert_allclose(loss(scan_params, scan_cfg), loss(params, cfg), rtol=1e-5)
    g_loop = _stack_blocks(jax.grad(loss)(params, cfg), cfg.n_layers)
    g_scan = jax.grad(loss)(scan_params, scan_cfg)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4), g_scan,
                 g_loop)

  def test_grouped_query_attention_equals_repeated_heads(self):
    gqa = FAMILIES["llama"]
    mha = gqa.replace(n_kv_heads=4)
    p = _init(gqa)
    p_mha = jax.tree.map(lambda x: x, p)
    for i in range(gqa.n_layers):
      for name in ("k", "v"):
        kernel = p[f"block_{i}"]["attn"][name]["kernel"]  # [D, Hkv, Dh]
        p_mha[f"block_{i}"]["attn"][name] = {"kernel": jnp.repeat(kernel, 2, axis=1)}
    tokens = _tokens(2, 6, gqa.vocab_size)
    np.testing.assert_allclose(
        tfm.Transformer(gqa).apply({"params": p}, tokens).logits,
        tfm.Transformer(mha).apply({"params": p_mha}, tokens).logits, atol=1e-5)

  @parameterized.named_parameters(("gpt2", "gpt2"), ("llama", "llama"))
  def test_query_blocks_match_one_block(self, family):
    # Blocks of 4 queries over 11 tokens (the last block short), one row left-padded: logits,
    # gradients and the sown attention maps equal those of one [T, T] block.
    one = FAMILIES[family].replace(query_chunk=0)
    blocked = one.replace(query_chunk=4)
    params = _init(one)
    tokens = _tokens(2, 11, one.vocab_size)
    mask = jnp.ones((2, 11), jnp.int32).at[1, :3].set(0)

    def apply(p, cfg, **kw):
      return tfm.Transformer(cfg).apply({"params": p}, tokens, attention_mask_BxT=mask, **kw)

    def loss(p, cfg):
      return jnp.sum(apply(p, cfg).logits * mask[..., None])

    np.testing.assert_allclose(apply(params, blocked).logits[mask.astype(bool)],
                               apply(params, one).logits[mask.astype(bool)], atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
                 jax.grad(loss)(params, blocked), jax.grad(loss)(params, one))
    maps = [jax.tree.leaves(apply(params, cfg, mutable=["intermediates"])[1])
            for cfg in (blocked, one)]
    self.assertLen(maps[0], one.n_layers)
    for a, b in zip(*maps):
      self.assertEqual(a.shape, b.shape)  # [B, G, R, T, T]
      np.testing.assert_allclose(a[0], b[0], atol=1e-6)  # the unpadded row, every query
      np.testing.assert_allclose(a[1, ..., 3:, :], b[1, ..., 3:, :], atol=1e-6)
    # A prefill into a cache of exactly T slots runs in blocks too; decoding on from it
    # matches one block's cache.
    caches = [tfm.Transformer(cfg).apply({"params": params}, tokens[:, :9],
                                         cache=tfm.init_cache(cfg, 2, 9)) for cfg in (blocked, one)]
    np.testing.assert_allclose(caches[0].logits, caches[1].logits, atol=1e-5)
    np.testing.assert_allclose(caches[0].cache["k"], caches[1].cache["k"], atol=1e-6)
    with self.assertRaisesRegex(ValueError, "query_chunk"):
      tfm.TransformerConfig(query_chunk=-1)

  @parameterized.named_parameters(("gpt2", "gpt2"), ("llama", "llama"))
  def test_num_params_and_logical_axes(self, family):
    cfg = FAMILIES[family]
    boxed = tfm.Transformer(cfg).init(jax.random.key(0), jnp.zeros((1, 4), jnp.int32))
    params = nn.meta.unbox(boxed)["params"]
    self.assertEqual(cfg.num_params(), sum(x.size for x in jax.tree.leaves(params)))
    specs = nn.get_partition_spec(boxed)["params"]
    self.assertEqual(tuple(specs["embed"]["embedding"]), ("vocab", "embed"))
    self.assertEqual(tuple(specs["block_0"]["attn"]["q"]["kernel"]), ("embed", "heads", "kv"))
    self.assertEqual(tuple(specs["block_0"]["mlp"]["up"]["kernel"]), ("embed", "mlp"))

  def test_bfloat16_compute_tracks_float32(self):
    cfg = FAMILIES["llama"]
    params = _init(cfg)
    tokens = _tokens(2, 8, cfg.vocab_size)
    f32 = tfm.Transformer(cfg).apply({"params": params}, tokens)
    bf16 = tfm.Transformer(cfg.replace(dtype="bfloat16")).apply({"params": params}, tokens)
    self.assertEqual(bf16.logits.dtype, jnp.float32)
    self.assertEqual(bf16.hidden.dtype, jnp.bfloat16)
    np.testing.assert_allclose(bf16.logits, f32.logits, atol=5e-2)

  def test_bad_config_names_the_field(self):
    with self.assertRaisesRegex(ValueError, "norm"):
      tfm.TransformerConfig(norm="batchnorm")
    with self.assertRaisesRegex(ValueError, "n_kv_heads"):
      tfm.TransformerConfig(n_heads=4, n_kv_heads=3)
    with self.assertRaisesRegex(ValueError, "n_heads"):
      tfm.TransformerConfig(d_model=30, n_heads=4)

  def test_ilql_heads_shapes_and_bias_init(self):
    module = heads.ILQLHeads(vocab_size=11, init_value=-3.0, value_scale=10.0)
    hidden = jnp.ones((2, 5, 8))
    variables = module.init(jax.random.key(0), hidden)
    out = module.apply(variables, jnp.zeros((2, 5, 8)))
    self.assertEqual(out.q1_BxTxV.shape, (2, 5, 11))
    self.assertEqual(out.v_BxT.shape, (2, 5))
    # Zero input: the ReLU layer outputs 0, so every head returns its bias, the initial value.
    np.testing.assert_allclose(out.q2_BxTxV, -3.0)
    np.testing.assert_allclose(out.v_BxT, -3.0)
    # The MLP's output is multiplied by value_scale before the offset is added.
    bumped = flax.core.unfreeze(nn.meta.unbox(variables))
    bumped["params"]["v"]["out"]["bias"] = jnp.ones((1,))
    np.testing.assert_allclose(module.apply(bumped, jnp.zeros((2, 5, 8))).v_BxT, 7.0)


if __name__ == "__main__":
  absltest.main()
