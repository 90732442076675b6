"""KTIW experiment: data, loss and probes on hand-built fixtures, sown attention, entry point."""

import functools
import json
import os
import tempfile

from absl.testing import absltest
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import config as config_lib
from jaxlm import train as train_lib
from jaxlm.algos import ktiw
from jaxlm.models import transformer as tfm
from experiments.configs import ktiw as ktiw_configs

# One 2-layer scanned decoder for every model test: sown attention is stacked over layers.
_CFG = tfm.TransformerConfig(vocab_size=9, d_model=16, n_layers=2, n_heads=2, d_ff=32,
                             max_len=8, scan_layers=True)


@functools.lru_cache
def _init(cfg, t=8):
  init = jax.jit(lambda key: tfm.Transformer(cfg).init(key, jnp.zeros((1, t), jnp.int32)))
  return nn.meta.unbox(init(jax.random.key(0)))["params"]


def _sown(cfg, params, **inputs):
  """Intermediates of one jitted apply (one compile instead of one per op)."""
  apply = jax.jit(lambda p, kw: tfm.Transformer(cfg).apply({"params": p}, **kw,
                                                           mutable=["intermediates"])[1])
  return apply(params, inputs)["intermediates"]


class DataTest(absltest.TestCase):

  def test_permutation_rows_are_permutations(self):
    x_BxN = ktiw.sample_sources(np.random.default_rng(0), 200, 6, "permutation")
    np.testing.assert_array_equal(np.sort(x_BxN, axis=1), np.tile(np.arange(6), (200, 1)))
    # Every word co-occurs with every other; positions are uniform: word 0 sits at each of the
    # 6 positions about 200 / 6 times.
    counts = np.bincount(np.argmax(x_BxN == 0, axis=1), minlength=6)
    self.assertGreater(counts.min(), 15)

  def test_iid_rows_are_independent_uniform(self):
    x_BxN = ktiw.sample_sources(np.random.default_rng(0), 2000, 6, "iid")
    self.assertEqual(x_BxN.shape, (2000, 6))
    freq = np.bincount(x_BxN.ravel(), minlength=6) / x_BxN.size
    np.testing.assert_allclose(freq, np.full(6, 1 / 6), atol=0.02)
    # A row of 6 i.i.d. words over 6 is a permutation with probability 6!/6^6 = 1.5%.
    is_perm = (np.sort(x_BxN, axis=1) == np.arange(6)).all(axis=1)
    self.assertBetween(is_perm.mean(), 0.005, 0.03)
    with self.assertRaisesRegex(ValueError, "distribution='zipf'"):
      ktiw.sample_sources(np.random.default_rng(0), 2, 6, "zipf")

  def test_encode_layout_and_iterator(self):
    f_V = ktiw.make_bijection(4, seed=0)
    np.testing.assert_array_equal(np.sort(f_V), np.arange(4))
    tokens = ktiw.encode(np.array([[2, 0, 3, 3]], np.int32), f_V)
    expected = [3, 1, 4, 4, 0] + [5 + f_V[w] for w in (2, 0, 3, 3)]
    np.testing.assert_array_equal(tokens, [expected])
    np.testing.assert_array_equal(ktiw.probe_tokens(3), [[1, 1, 1, 0], [2, 2, 2, 0],
                                                          [3, 3, 3, 0]])
    data = ktiw.TranslationData(f_V, 8, "permutation", seed=1)
    first, second = next(data), next(data)
    self.assertEqual(first["tokens"].shape, (8, 9))
    again = ktiw.TranslationData(f_V, 8, "permutation", seed=1)
    again.set_state({"index": 1})
    np.testing.assert_array_equal(next(again)["tokens"], second["tokens"])


class LossAndProbesTest(absltest.TestCase):

  def test_translation_loss_scores_outputs_only(self):
    rng = np.random.default_rng(0)
    tokens_BxL = np.array([[1, 2, 0, 3, 4], [2, 2, 0, 4, 4]], np.int32)  # n = 2
    logits_BxTxV = rng.normal(size=(2, 4, 5)).astype(np.float32)
    logp = logits_BxTxV - np.log(np.exp(logits_BxTxV).sum(-1, keepdims=True))
    # Outputs y_1, y_2 are tokens 3, 4, scored at positions 2, 3.
    nll = -np.mean([logp[b, 2 + t, tokens_BxL[b, 3 + t]] for b in range(2) for t in range(2)])
    hits = np.mean([logits_BxTxV[b, 2 + t].argmax() == tokens_BxL[b, 3 + t]
                    for b in range(2) for t in range(2)])
    for fn in (ktiw.translation_loss, jax.jit(ktiw.translation_loss)):
      loss, aux = fn(logits_BxTxV, tokens_BxL)
      np.testing.assert_allclose(loss, nll, rtol=1e-5)
      np.testing.assert_allclose(aux["token_accuracy"], hits)
    changed = logits_BxTxV.copy()
    changed[:, :2] += 5.0  # Source positions do not count.
    np.testing.assert_allclose(ktiw.translation_loss(changed, tokens_BxL)[0], nll, rtol=1e-5)
    with self.assertRaisesRegex(ValueError, "must be odd"):
      ktiw.translation_loss(logits_BxTxV[:, :3], tokens_BxL[:, :4])

  def test_attention_accuracy_on_hand_built_maps(self):
    n = 2  # Rows 2, 3 predict y_1, y_2; aligned keys 0, 1.
    attn = np.zeros((1, 2, 4, 4), np.float32)
    attn[0, 0, 2] = [0.6, 0.4, 0, 0]
    attn[0, 0, 3] = [0.3, 0.7, 0, 0]   # head 0: both aligned
    attn[0, 1, 2] = [0.2, 0.8, 0, 0]   # head 1: row 2 misaligned
    attn[0, 1, 3] = [0.1, 0.5, 0.4, 0]  # row 3 aligned
    attn[0, :, :2] = 0.5  # source rows are ignored
    for fn in (ktiw.attention_accuracy, jax.jit(ktiw.attention_accuracy, static_argnums=1)):
      np.testing.assert_allclose(fn(attn, n), [1.0, 0.5])
    with self.assertRaisesRegex(ValueError, "must cover 2n = 6"):
      ktiw.attention_accuracy(attn, 3)

  def test_ktiw_scores_on_hand_built_logits(self):
    logits_WxV = np.log(np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]],
                                 np.float32))
    targets_W = np.array([1, 1, 2], np.int32)
    for fn in (ktiw.ktiw_scores, jax.jit(ktiw.ktiw_scores)):
      s = fn(logits_WxV, targets_W)
      np.testing.assert_allclose(s["ktiw_accuracy"], 2 / 3, rtol=1e-6)
      np.testing.assert_allclose(s["ktiw_probability"], (0.7 + 0.3 + 0.6) / 3, rtol=1e-5)

  def test_first_steps_and_claims(self):
    rows = [{"step": s, "eval/ktiw_accuracy": k, "eval/attention_accuracy": a,
             "eval/token_accuracy": a} for s, k, a in ((0, 0.1, 0.0), (10, 0.95, 0.5),
                                                      (20, 0.97, 0.92), (30, 1.0, 1.0))]
    rows.insert(1, {"step": 5, "loss": 1.0})  # train rows are skipped
    first = ktiw.first_steps(rows, 0.9)
    self.assertEqual(first, {"ktiw_accuracy": 10, "attention_accuracy": 20,
                             "token_accuracy": 20})
    never = {k: None for k in ktiw.METRICS}
    runs = {"easy": {"first_step": first}, "permutation": {"first_step": never},
            "permutation_multihead": {"first_step": never}}
    self.assertEqual(ktiw.claims(runs), {"easy_ktiw_leads": True,
                                         "permutation_single_head_stalls": True,
                                         "multihead_recovers": False})


class AttentionTest(absltest.TestCase):

  def test_sown_attention_is_softmax_qk(self):
    params = _init(_CFG)
    tokens = jnp.array([[3, 1, 4, 1, 5, 0]], jnp.int32)
    inter = _sown(_CFG, params, tokens_BxT=tokens)
    (probs,) = inter["blocks"]["attn"]["attention"]
    self.assertEqual(probs.shape, (2, 1, 2, 1, 6, 6))  # [L, B, G, R, T, S]
    # Layer 0 by hand: embeddings, LayerNorm, q/k projections, causal softmax(q.k / sqrt(8)).
    p = jax.tree.map(lambda x: np.asarray(x)[0], params["blocks"])
    x = np.asarray(params["embed"]["embedding"])[np.asarray(tokens[0])]
    x = x + np.asarray(params["pos_embed"]["embedding"])[:6]
    ln = p["ln1"]
    x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    x = x * ln["scale"] + ln["bias"]
    a = p["attn"]
    q_TxHxK = np.einsum("td,dhk->thk", x, a["q"]["kernel"]) + a["q"]["bias"]
    k_TxHxK = np.einsum("td,dhk->thk", x, a["k"]["kernel"]) + a["k"]["bias"]
    logits_HxTxS = np.einsum("thk,shk->hts", q_TxHxK, k_TxHxK) / np.sqrt(8)
    logits_HxTxS = np.where(np.tril(np.ones((6, 6), bool)), logits_HxTxS, -np.inf)
    manual = np.exp(logits_HxTxS - logits_HxTxS.max(-1, keepdims=True))
    manual /= manual.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs[0, 0, :, 0], manual, atol=1e-6)
    maps = ktiw.attention_maps(inter)  # [B, L*H, T, S]
    np.testing.assert_allclose(maps[0, :2], manual, atol=1e-6)
    np.testing.assert_allclose(maps[0, 2:], probs[1, 0, :, 0], atol=1e-6)

  def test_zero_queries_give_uniform_attention_over_the_source(self):
    cfg = _CFG
    params = ktiw.scale_queries(_init(cfg), 0.0)
    self.assertEqual(float(jnp.abs(params["blocks"]["attn"]["q"]["kernel"]).max()), 0.0)
    tokens = jnp.asarray(ktiw.encode(np.array([[0, 1, 2]], np.int32), np.arange(3))[:, :-1])
    maps = ktiw.attention_maps(_sown(cfg, params, **ktiw.source_only_inputs(tokens, 3)))
    self.assertEqual(maps.shape, (1, 4, 6, 6))  # 2 layers x 2 heads
    np.testing.assert_allclose(maps[0, :, 3:], np.broadcast_to([1 / 3] * 3 + [0] * 3,
                                                               (4, 3, 6)), atol=1e-6)

  def test_uniform_warmup_freezes_queries_and_keys(self):
    model = tfm.Transformer(_CFG)
    params = _init(_CFG)
    loss_fn = ktiw.make_loss_fn(model, uniform_warmup=5)
    batch = {"tokens": jnp.asarray(ktiw.encode(np.array([[0, 1, 2, 3]], np.int32),
                                               np.array([1, 0, 3, 2])))}
    @jax.jit
    def grads_at(step):
      state = train_lib.TrainState(step=step, params=params, opt_state=None, rng=None)
      return jax.grad(lambda p: loss_fn(p, batch, None, state=state)[0])(params)

    for step, frozen in ((4, True), (5, False)):
      attn = grads_at(jnp.asarray(step))["blocks"]["attn"]
      for name in ("q", "k"):
        norm = float(jnp.abs(attn[name]["kernel"]).max())
        self.assertEqual(norm == 0.0, frozen, msg=f"step {step} {name}: {norm}")
      self.assertGreater(float(jnp.abs(attn["v"]["kernel"]).max()), 0.0)


class EntryPointTest(absltest.TestCase):

  def test_config_validation(self):
    d = ktiw_configs.get_config("smoke").to_dict()
    with self.assertRaisesRegex(ValueError, r"unknown run\(s\) \['copy'\]"):
      config_lib.from_dict(ktiw.Config, {**d, "runs": ("easy", "copy")})
    with self.assertRaisesRegex(ValueError, "vocab_size=9 must be 2 \\* num_words \\+ 1 = 11"):
      config_lib.from_dict(ktiw.Config, {**d, "num_words": 5})
    with self.assertRaisesRegex(ValueError, "unknown ktiw preset 'huge'"):
      ktiw_configs.get_config("huge")

  def test_smoke_preset_writes_results(self):
    # In process (the path `experiments.launch.run` takes after parsing flags): a subprocess
    # would pay the jax/torch imports again, several times this test's budget on a busy host.
    config = config_lib.from_dict(ktiw.Config, ktiw_configs.get_config("smoke").to_dict())
    with tempfile.TemporaryDirectory() as workdir:
      returned = ktiw.train_and_evaluate(config, workdir)
      with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
      self.assertTrue(os.path.exists(os.path.join(workdir, "ktiw_curves.png")))
    self.assertEqual(results, returned)
    self.assertEqual(set(results["runs"]), set(ktiw_configs.get_config("smoke").runs))
    for run in results["runs"].values():
      self.assertEqual(run["steps"], 4)
      self.assertEqual(set(run["first_step"]), set(ktiw.METRICS))
      for key in ktiw.METRICS:
        self.assertBetween(run["final"][key], 0.0, 1.0)
    self.assertIn("multihead_recovers", results["claims"])


if __name__ == "__main__":
  absltest.main()
