"""HF and GGUF interop: jaxlm logits equal HF PyTorch logits on random tiny GPT-2 / LLaMA / Qwen2
models; GGUF files as llama.cpp's converter writes them."""

import json
import os
import re
import shutil
import tempfile
from unittest import mock

from absl.testing import absltest, parameterized
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers

from jaxlm.models import Transformer
from jaxlm.models import convert
from jaxlm.models import llama_cpp

TOL = 1e-4


def _hf_configs():
  small = dict(vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, intermediate_size=48, max_position_embeddings=64)
  return {
      "gpt2": transformers.GPT2Config(vocab_size=97, n_embd=32, n_layer=2, n_head=4,
                                      n_positions=64, n_inner=48, bos_token_id=0,
                                      eos_token_id=0),
      # GQA, untied embeddings, a non-default rotary base.
      "llama": transformers.LlamaConfig(**small, rope_theta=500.0, rms_norm_eps=1e-5,
                                        tie_word_embeddings=False),
      # Query/key/value biases, tied embeddings.
      "qwen2": transformers.Qwen2Config(**small, tie_word_embeddings=True),
  }


def _random_hf_model(name):
  """A tiny HF model with every parameter random (biases and norm scales included)."""
  torch.manual_seed(0)
  config = _hf_configs()[name]
  config._attn_implementation = "eager"  # pylint: disable=protected-access
  model = transformers.AutoModelForCausalLM.from_config(config)
  with torch.no_grad():
    for pname, p in model.named_parameters():
      is_scale = pname.endswith("weight") and ("ln" in pname or "norm" in pname)
      p.copy_(torch.randn_like(p) * 0.2 + float(is_scale))
  return model.eval()


def _batch(vocab_size, pad):
  tokens_BxT = np.random.RandomState(1).randint(0, vocab_size, (3, 9))
  mask_BxT = np.ones_like(tokens_BxT)
  if pad:
    mask_BxT[1, :3] = 0
    mask_BxT[2, :5] = 0
  return tokens_BxT, mask_BxT


def _hf_logits(model, tokens_BxT, mask_BxT):
  positions_BxT = np.maximum(np.cumsum(mask_BxT, -1) - 1, 0)
  with torch.no_grad():
    return model(input_ids=torch.tensor(tokens_BxT), attention_mask=torch.tensor(mask_BxT),
                 position_ids=torch.tensor(positions_BxT)).logits.numpy()


def _logits(cfg, params, tokens_BxT, mask_BxT):
  out = Transformer(cfg).apply({"params": params}, jnp.asarray(tokens_BxT),
                               jnp.asarray(mask_BxT))
  return np.asarray(out.logits)


def _tmp(test):
  path = tempfile.mkdtemp()
  test.addCleanup(shutil.rmtree, path)
  return path


def _assert_trees_equal(test, a, b):
  test.assertEqual(jax.tree.structure(a), jax.tree.structure(b))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    test.assertEqual(x.dtype, y.dtype)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


class ConvertTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.models = {name: _random_hf_model(name) for name in _hf_configs()}
    cls.converted = {name: convert.from_hf(m) for name, m in cls.models.items()}

  @parameterized.product(name=["gpt2", "llama", "qwen2"], pad=[False, True])
  def test_logits_match_hf(self, name, pad):
    model = self.models[name]
    cfg, params = self.converted[name]
    tokens_BxT, mask_BxT = _batch(cfg.vocab_size, pad)
    ours, ref = _logits(cfg, params, tokens_BxT, mask_BxT), _hf_logits(model, tokens_BxT,
                                                                       mask_BxT)
    real = mask_BxT.astype(bool)
    self.assertGreater(np.abs(ref[real]).max(), 1.0)  # Not a trivially small comparison.
    self.assertLess(np.abs(ours - ref)[real].max(), TOL)

  def test_config_fields(self):
    llama, qwen, gpt2 = (self.converted[n][0] for n in ("llama", "qwen2", "gpt2"))
    self.assertEqual((llama.n_kv_heads, llama.rope_theta, llama.norm_eps), (2, 500.0, 1e-5))
    self.assertEqual((llama.tie_embeddings, llama.qkv_bias, llama.proj_bias), (False,) * 3)
    self.assertEqual((qwen.tie_embeddings, qwen.qkv_bias, qwen.proj_bias), (True, True, False))
    self.assertEqual((gpt2.pos, gpt2.mlp, gpt2.d_ff, gpt2.max_len), ("learned", "gelu", 48, 64))

  @parameterized.parameters("gpt2", "llama", "qwen2")
  def test_sources_agree(self, name):
    model = self.models[name]
    _, params = self.converted[name]
    _assert_trees_equal(self, convert.from_hf(model.state_dict(), config=model.config)[1],
                        params)
    _assert_trees_equal(self, convert.from_hf(
        model.state_dict(), config=model.config.to_dict())[1], params)
    path = _tmp(self)
    model.save_pretrained(path)
    _assert_trees_equal(self, convert.from_hf(path)[1], params)
    sharded = _tmp(self)
    model.save_pretrained(sharded, max_shard_size="20KB")
    self.assertTrue(os.path.exists(os.path.join(sharded, "model.safetensors.index.json")))
    _assert_trees_equal(self, convert.from_hf(sharded)[1], params)

  @parameterized.parameters("gpt2", "llama", "qwen2")
  def test_round_trip(self, name):
    model = self.models[name]
    cfg, params = self.converted[name]
    path = os.path.join(_tmp(self), "export")
    convert.to_hf(cfg, params, path)
    self.assertEqual(sorted(os.listdir(path)), ["config.json", "model.safetensors"])
    cfg2, params2 = convert.from_hf(path)
    self.assertEqual(cfg2, cfg)
    _assert_trees_equal(self, params2, params)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(path).eval()
    tokens_BxT, mask_BxT = _batch(cfg.vocab_size, pad=True)
    real = mask_BxT.astype(bool)
    np.testing.assert_allclose(_hf_logits(reloaded, tokens_BxT, mask_BxT)[real],
                               _hf_logits(model, tokens_BxT, mask_BxT)[real], atol=1e-5)

  def test_round_trip_bfloat16(self):
    cfg, params = convert.from_hf(self.models["llama"], dtype=jnp.bfloat16)
    self.assertEqual((cfg.dtype, cfg.param_dtype), ("bfloat16", "bfloat16"))
    path = os.path.join(_tmp(self), "bf16")
    convert.to_hf(cfg, params, path)
    cfg2, params2 = convert.from_hf(path, dtype="bfloat16")
    self.assertEqual(cfg2, cfg)
    _assert_trees_equal(self, params2, params)

  @parameterized.parameters("gpt2", "llama")
  def test_scan_layers_layout(self, name):
    cfg, params = self.converted[name]
    scfg, sparams = convert.from_hf(self.models[name], scan_layers=True)
    self.assertTrue(scfg.scan_layers)
    self.assertNotIn("block_0", sparams)
    # Same tree as the scanned model initialises.
    init = jax.eval_shape(Transformer(scfg).init, jax.random.key(0), jnp.zeros((1, 2), jnp.int32))
    init_shapes = jax.tree.map(lambda a: a.shape, nn.meta.unbox(init["params"]))
    self.assertEqual(jax.tree.map(lambda a: a.shape, sparams), init_shapes)
    np.testing.assert_array_equal(sparams["blocks"]["ln1"]["scale"][1],
                                  params["block_1"]["ln1"]["scale"])
    tokens_BxT, mask_BxT = _batch(cfg.vocab_size, pad=True)
    np.testing.assert_allclose(_logits(scfg, sparams, tokens_BxT, mask_BxT),
                               _logits(cfg, params, tokens_BxT, mask_BxT), atol=1e-5)
    # Export from the scanned layout writes the same tensors.
    self.assertEqual(convert.state_dict_from_params(scfg, sparams).keys(),
                     convert.state_dict_from_params(cfg, params).keys())
    path = os.path.join(_tmp(self), "scanned")
    convert.to_hf(scfg, sparams, path)
    _assert_trees_equal(self, convert.from_hf(path)[1], params)

  def test_unsupported_model_type(self):
    config = transformers.GPTNeoXConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1,
                                        num_attention_heads=4, intermediate_size=64)
    with self.assertRaisesRegex(ValueError, "gpt_neox"):
      convert.from_hf({}, config=config)

  @parameterized.named_parameters(
      ("rope_scaling", "llama", dict(rope_scaling={"rope_type": "linear", "factor": 2.0}),
       "linear"),
      ("sliding_window", "mistral", dict(sliding_window=16, max_position_embeddings=64),
       "sliding_window"),
      ("mlp_bias", "llama", dict(mlp_bias=True), "mlp_bias"),
      ("activation", "llama", dict(hidden_act="gelu"), "hidden_act"),
  )
  def test_unsupported_features(self, model_type, overrides, pattern):
    base = dict(model_type=model_type, vocab_size=64, hidden_size=32, num_hidden_layers=1,
                num_attention_heads=4, intermediate_size=64)
    with self.assertRaisesRegex(ValueError, pattern):
      convert.config_from_hf({**base, **overrides})

  def test_mistral_without_window_is_llama(self):
    cfg = convert.config_from_hf(dict(
        model_type="mistral", vocab_size=64, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        sliding_window=None, rope_theta=1e6))
    self.assertEqual((cfg.pos, cfg.n_kv_heads, cfg.rope_theta), ("rope", 2, 1e6))

  def test_bad_state_dicts(self):
    model = self.models["llama"]
    sd = dict(model.state_dict())
    name = "model.layers.1.self_attn.k_proj.weight"
    with self.assertRaisesRegex(ValueError, name):
      convert.from_hf({**sd, name: torch.zeros(8, 32)}, config=model.config)
    with self.assertRaisesRegex(ValueError, name):
      convert.from_hf({k: v for k, v in sd.items() if k != name}, config=model.config)
    with self.assertRaisesRegex(ValueError, "q_proj.bias"):
      convert.from_hf({**sd, "model.layers.0.self_attn.q_proj.bias": torch.zeros(32)},
                      config=model.config)
    with self.assertRaisesRegex(ValueError, "config="):
      convert.from_hf(sd)
    # A config that disagrees with the checkpoint's sizes names the first bad tensor.
    with self.assertRaisesRegex(ValueError, "embed_tokens"):
      convert.from_hf(sd, config={**model.config.to_dict(), "vocab_size": 100})

  def test_to_hf_is_atomic(self):
    cfg, params = self.converted["gpt2"]
    parent = _tmp(self)
    path = os.path.join(parent, "out")
    bad = jax.tree.map(lambda a: a, params)
    bad["block_0"]["attn"]["q"]["kernel"] = bad["block_0"]["attn"]["q"]["kernel"][:, :2]
    with self.assertRaisesRegex(ValueError, "block_0/attn/q/kernel"):
      convert.to_hf(cfg, bad, path)
    with mock.patch.object(convert.safetensors.numpy, "save_file", side_effect=OSError("disk")):
      with self.assertRaisesRegex(OSError, "disk"):
        convert.to_hf(cfg, params, path)
    self.assertEqual(os.listdir(parent), [])  # Nothing half-written, no temporaries.
    convert.to_hf(cfg, params, path)
    with self.assertRaisesRegex(ValueError, "overwrite"):
      convert.to_hf(cfg, params, path)
    with open(os.path.join(path, "config.json")) as f:
      self.assertEqual(json.load(f)["model_type"], "gpt2")
    convert.to_hf(cfg, params, path, overwrite=True)
    self.assertEqual(os.listdir(parent), ["out"])

  def test_to_hf_rejects_mixed_family(self):
    cfg, params = self.converted["llama"]
    with self.assertRaisesRegex(ValueError, "norm, pos, mlp"):
      convert.to_hf(cfg.replace(norm="layernorm"), params, os.path.join(_tmp(self), "x"))


def _gguf_permute(w, n_heads):
  """llama.cpp's converter: per head, row s * Dh/2 + i goes to 2i + s."""
  return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(
      w.shape)


# llama.cpp tensor names (its gguf-py TensorNameMap), written out independently of convert.py.
_GGUF = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output",
         "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
         "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
         "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
         "mlp.down_proj": "ffn_down"}


def _gguf_name(hf_name):
  m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)", hf_name)
  if m:
    return f"blk.{m[1]}.{_GGUF[m[2]]}.{m[3]}"
  module, kind = hf_name.rsplit(".", 1)
  return f"{_GGUF[module]}.{kind}"


def _write_gguf(path, arch, fields=(), tensors=()):
  import gguf  # pylint: disable=g-import-not-at-top
  writer = gguf.GGUFWriter(path, arch)
  for key, value, kind in fields:
    writer.add_key_value(key, value, kind, sub_type=(
        gguf.GGUFValueType.STRING if kind == gguf.GGUFValueType.ARRAY else None))
  for name, a in tensors:
    writer.add_tensor(name, np.ascontiguousarray(a))
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()


class GgufTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    try:
      import gguf  # pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      self.skipTest("gguf not installed")

  def test_row_permutations_match_llama_cpp(self):
    w = np.arange(2 * 8 * 3).reshape(16, 3)
    np.testing.assert_array_equal(llama_cpp.permute_gguf_rows(w, 2), _gguf_permute(w, 2))
    np.testing.assert_array_equal(llama_cpp.unpermute_gguf_rows(_gguf_permute(w, 2), 2), w)
    # Head 0, Dh = 8: stored rows interleave the halves: 0, 4, 1, 5, ...
    np.testing.assert_array_equal(_gguf_permute(w, 2)[:4, 0], [0, 12, 3, 15])

  def _llama_cpp_file(self, model):
    """`model` written the way llama.cpp's converter writes it (independent of llama_cpp.py)."""
    import gguf  # pylint: disable=g-import-not-at-top
    c = model.config
    t = gguf.GGUFValueType
    fields = [("llama.block_count", c.num_hidden_layers, t.UINT32),
              ("llama.context_length", c.max_position_embeddings, t.UINT32),
              ("llama.embedding_length", c.hidden_size, t.UINT32),
              ("llama.feed_forward_length", c.intermediate_size, t.UINT32),
              ("llama.attention.head_count", c.num_attention_heads, t.UINT32),
              ("llama.attention.head_count_kv", c.num_key_value_heads, t.UINT32),
              ("llama.attention.layer_norm_rms_epsilon", c.rms_norm_eps, t.FLOAT32),
              ("llama.rope.freq_base", c.rope_parameters["rope_theta"], t.FLOAT32),
              ("tokenizer.ggml.model", "gpt2", t.STRING),
              ("tokenizer.ggml.tokens", [f"t{i}" for i in range(c.vocab_size)], t.ARRAY)]
    tensors = []
    for name, a in model.state_dict().items():
      a = a.numpy()
      if ".q_proj." in name:
        a = _gguf_permute(a, c.num_attention_heads)
      elif ".k_proj." in name:
        a = _gguf_permute(a, c.num_key_value_heads)
      tensors.append((_gguf_name(name), a))
    path = os.path.join(_tmp(self), "tiny.gguf")
    _write_gguf(path, "llama", fields, tensors)
    return path

  def test_from_gguf_matches_hf(self):
    model = _random_hf_model("llama")
    cfg, params = llama_cpp.from_gguf(self._llama_cpp_file(model))
    ref_cfg, ref_params = convert.from_hf(model)
    self.assertEqual(cfg, ref_cfg)
    _assert_trees_equal(self, params, ref_params)

  def test_to_gguf_writes_llama_cpp_layout(self):
    import gguf  # pylint: disable=g-import-not-at-top
    model = _random_hf_model("llama")
    source = self._llama_cpp_file(model)
    cfg, params = convert.from_hf(model, scan_layers=True)
    path = llama_cpp.to_gguf(cfg, params, os.path.join(_tmp(self), "out.gguf"),
                             tokenizer_from=source, name="tiny")
    ours, ref = gguf.GGUFReader(path), gguf.GGUFReader(source)
    ref_tensors = {t.name: t for t in ref.tensors}
    self.assertEqual(sorted(t.name for t in ours.tensors), sorted(ref_tensors))
    for t in ours.tensors:  # same names, shapes and (permuted) rows as llama.cpp's converter
      self.assertEqual(t.tensor_type, gguf.GGMLQuantizationType.F32, t.name)
      np.testing.assert_array_equal(t.data, ref_tensors[t.name].data, err_msg=t.name)
    for key, f in ref.fields.items():
      if key.startswith(("llama.", "tokenizer.")):
        self.assertEqual(ours.fields[key].contents(), f.contents(), key)
    self.assertEqual(ours.fields["general.name"].contents(), "tiny")
    # And back: the same config and parameters, bit for bit.
    cfg2, params2 = llama_cpp.from_gguf(path, scan_layers=True)
    self.assertEqual(cfg2, cfg)
    _assert_trees_equal(self, params2, params)

  def test_to_gguf_f16(self):
    import gguf  # pylint: disable=g-import-not-at-top
    cfg, params = convert.from_hf(_random_hf_model("llama"))
    path = llama_cpp.to_gguf(cfg, params, os.path.join(_tmp(self), "h.gguf"), dtype="f16")
    kinds = {t.name: t.tensor_type for t in gguf.GGUFReader(path).tensors}
    self.assertEqual(kinds["blk.0.attn_q.weight"], gguf.GGMLQuantizationType.F16)
    self.assertEqual(kinds["blk.0.attn_norm.weight"], gguf.GGMLQuantizationType.F32)
    _, params2 = llama_cpp.from_gguf(path)
    for x, y in zip(jax.tree.leaves(params2), jax.tree.leaves(params)):
      y = np.asarray(y)  # matrices rounded to float16, vectors (norm scales) exact
      np.testing.assert_array_equal(x, y if y.ndim == 1 else y.astype(np.float16).astype(y.dtype))

  def test_to_gguf_refuses_and_keeps_existing_file(self):
    cfg, params = convert.from_hf(_random_hf_model("llama"))
    path = os.path.join(_tmp(self), "m.gguf")
    with open(path, "w") as f:
      f.write("keep")
    with self.assertRaisesRegex(ValueError, "exists"):
      llama_cpp.to_gguf(cfg, params, path)
    with mock.patch("gguf.GGUFWriter.write_tensors_to_file", side_effect=OSError("disk full")):
      with self.assertRaisesRegex(OSError, "disk full"):
        llama_cpp.to_gguf(cfg, params, path, overwrite=True)
    with open(path) as f:
      self.assertEqual(f.read(), "keep")
    self.assertEqual(os.listdir(os.path.dirname(path)), ["m.gguf"])  # no temporary left
    source = self._llama_cpp_file(_random_hf_model("llama"))
    with self.assertRaisesRegex(ValueError, "lists 101 tokens; the model's vocab_size is 102"):
      llama_cpp.to_gguf(cfg.replace(vocab_size=102), params, path, overwrite=True,
                        tokenizer_from=source)
    with self.assertRaisesRegex(ValueError, "dtype='bf16'"):
      llama_cpp.to_gguf(cfg, params, path, dtype="bf16", overwrite=True)
    gpt2_cfg, gpt2_params = convert.from_hf(_random_hf_model("gpt2"))
    with self.assertRaisesRegex(ValueError, "a gpt2 model"):
      llama_cpp.to_gguf(gpt2_cfg, gpt2_params, path, overwrite=True)
    qwen_cfg, qwen_params = convert.from_hf(_random_hf_model("qwen2"))
    with self.assertRaisesRegex(ValueError, "a qwen2 model"):
      llama_cpp.to_gguf(qwen_cfg, qwen_params, path, overwrite=True)

  def test_from_gguf_rejects_other_architectures(self):
    path = os.path.join(_tmp(self), "other.gguf")
    _write_gguf(path, "gpt2", tensors=[("token_embd.weight", np.zeros((4, 8), np.float32))])
    with self.assertRaisesRegex(ValueError, "general.architecture='gpt2'"):
      llama_cpp.from_gguf(path)


if __name__ == "__main__":
  absltest.main()
