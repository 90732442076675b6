"""GGUF files (llama.cpp) <-> jaxlm `Transformer` parameters, LLaMA architecture.

GGUF stores a model as typed key/value metadata ("llama.block_count", "tokenizer.ggml.tokens",
...) and named tensors ("blk.3.attn_q.weight"), each listed innermost dimension first. Both
directions go through the HF state dict of `convert`, so the name table below is the only
GGUF-specific mapping. llama.cpp rotates adjacent pairs (x[2i], x[2i+1]) where HF LLaMA and
jaxlm rotate halves (x[i], x[i + Dh/2]); its converter therefore interleaves the query/key rows
of each head, which `from_gguf` undoes and `to_gguf` redoes.

Reading dequantises any GGUF quantisation to float32; writing stores float32 or float16. Needs
the optional `gguf` package (`pip install gguf`, or `pip install 'jaxlm[gguf]'`).
"""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

import numpy as np

from jaxlm.models import convert
from jaxlm.models.transformer import TransformerConfig

Params = dict[str, Any]

# GGUF tensor base name -> HF LLaMA module name (llama.cpp's own table, gguf-py TensorNameMap).
_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm",
          "output": "lm_head", "attn_norm": "input_layernorm",
          "ffn_norm": "post_attention_layernorm", "attn_q": "self_attn.q_proj",
          "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
          "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj",
          "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
_HF_NAMES = {v: k for k, v in _NAMES.items()}
_DTYPES = {"f32": (np.float32, 0), "f16": (np.float16, 1)}  # numpy type, GGUF file_type


def _gguf():
  try:
    import gguf  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("GGUF files need the optional `gguf` package: pip install gguf "
                      "(or pip install 'jaxlm[gguf]')") from e
  return gguf


def _rename(name: str, to_gguf: bool) -> str:
  """A tensor's name in the other format: "blk.3.attn_q.weight" <-> "model.layers.3.self_attn.
  q_proj.weight"."""
  pattern, table, layer_prefix = (
      (r"(?:model\.layers\.(\d+)\.)?(.+)\.(weight|bias)", _HF_NAMES, "blk.{}.") if to_gguf else
      (r"(?:blk\.(\d+)\.)?(\w+)\.(weight|bias)", _NAMES, "model.layers.{}."))
  m = re.fullmatch(pattern, name)
  if not m or m.group(2) not in table:
    raise ValueError(f"{'to_gguf' if to_gguf else 'from_gguf'}: tensor {name!r} has no "
                     f"{'GGUF' if to_gguf else 'HF LLaMA'} name")
  layer, base, kind = m.groups()
  return ("" if layer is None else layer_prefix.format(layer)) + f"{table[base]}.{kind}"


def unpermute_gguf_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
  """Undoes llama.cpp's per-head row interleaving of query/key weights (or biases).

  Its converter stores head row `s * Dh/2 + i` (half s, pair i) at row `2i + s`.
  """
  half = w.shape[0] // n_heads // 2
  return w.reshape(n_heads, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_gguf_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
  """llama.cpp's interleaving (the inverse of `unpermute_gguf_rows`)."""
  half = w.shape[0] // n_heads // 2
  return w.reshape(n_heads, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def from_gguf(path: str, *, dtype: Any = None,
              scan_layers: bool = False) -> tuple[TransformerConfig, Params]:
  """Converts a LLaMA-architecture GGUF file (any quantisation `gguf` dequantises).

  Returns:
    (TransformerConfig, params), as `convert.from_hf`.
  """
  gguf = _gguf()
  with convert.reading(path):
    reader = gguf.GGUFReader(path)
  fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("tokenizer.")}
  arch = fields.get("general.architecture")
  if arch != "llama":
    raise ValueError(f"from_gguf: general.architecture={arch!r} is not supported (llama only)")
  tensors = {t.name: t for t in reader.tensors}

  def field(key, default=None):
    value = fields.get(f"llama.{key}", default)
    if value is None:
      raise ValueError(f"from_gguf: {path} lacks llama.{key}")
    # GGUF floats are float32: take the shortest decimal that rounds to it (1e-05, not 9.99e-06).
    return float(str(np.float32(value))) if isinstance(value, float) else value

  n_heads, d_model = field("attention.head_count"), field("embedding_length")
  n_kv_heads = field("attention.head_count_kv", n_heads)
  head_dim = field("attention.key_length", d_model // n_heads)
  if field("rope.dimension_count", head_dim) != head_dim:
    raise ValueError(f"from_gguf: llama.rope.dimension_count != head_dim={head_dim} "
                     "(partial rotary) is not supported")
  scaling = field("rope.scaling.type", "none")
  if scaling != "none" or "rope_freqs.weight" in tensors:
    raise ValueError(f"from_gguf: llama.rope.scaling.type={scaling!r} / rope_freqs is not "
                     "supported")
  hf_config = dict(
      model_type="llama", vocab_size=int(tensors["token_embd.weight"].shape[-1]),
      hidden_size=d_model, intermediate_size=field("feed_forward_length"),
      num_hidden_layers=field("block_count"), num_attention_heads=n_heads,
      num_key_value_heads=n_kv_heads, head_dim=head_dim,
      max_position_embeddings=field("context_length", 2048),
      rms_norm_eps=field("attention.layer_norm_rms_epsilon"),
      rope_theta=field("rope.freq_base", 10000.0),
      tie_word_embeddings="output.weight" not in tensors,
      attention_bias="blk.0.attn_q.bias" in tensors)
  state_dict = {}
  for name, t in tensors.items():
    a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    a = a.reshape([int(s) for s in reversed(t.shape)])  # GGUF lists dims innermost first.
    if re.search(r"\.attn_[qk]\.", name):
      a = unpermute_gguf_rows(a, n_heads if ".attn_q." in name else n_kv_heads)
    state_dict[_rename(name, to_gguf=False)] = a
  return convert.from_hf(state_dict, config=hf_config, dtype=dtype, scan_layers=scan_layers)


def to_gguf(cfg: TransformerConfig, params: Params, path: str, *, dtype: str = "f32",
            tokenizer_from: str | None = None, name: str | None = None,
            overwrite: bool = False) -> str:
  """Writes a LLaMA-architecture GGUF file that `from_gguf` and llama.cpp read.

  Args:
    cfg, params: a jaxlm model of the LLaMA family (rmsnorm, rope, swiglu; query/key/value and
      output projection biases both or neither), per-block or stacked parameters.
    path: the .gguf file; written to a temporary sibling and renamed into place.
    dtype: "f32" (exact) or "f16" for the matrices; norms and biases stay float32 (llama.cpp's
      own rule for 1-D tensors).
    tokenizer_from: a GGUF file whose "tokenizer.*" metadata (vocabulary, merges, special
      tokens) is copied: llama.cpp needs it to run the model; jaxlm does not.
    name: general.name.
    overwrite: replace an existing `path` (an error otherwise).

  Returns:
    The path written.
  """
  gguf = _gguf()
  if dtype not in _DTYPES:
    raise ValueError(f"to_gguf: dtype={dtype!r}; expected one of {sorted(_DTYPES)}")
  hf = convert.config_to_hf(cfg)
  if hf["model_type"] != "llama":
    raise ValueError(f"to_gguf: a {hf['model_type']} model; only the LLaMA architecture "
                     "(rmsnorm, rope, swiglu, no lone qkv bias) is written")
  path = os.path.abspath(os.fspath(path))
  if os.path.lexists(path) and not overwrite:
    raise ValueError(f"to_gguf: {path} exists (pass overwrite=True)")
  tokenizer = []
  if tokenizer_from is not None:
    with convert.reading(tokenizer_from):
      source = gguf.GGUFReader(tokenizer_from)
    tokenizer = [(k, f.contents(), f.types) for k, f in source.fields.items()
                 if k.startswith("tokenizer.")]
    if not tokenizer:
      raise ValueError(f"to_gguf: {tokenizer_from} has no tokenizer.* metadata")
    tokens = next((v for k, v, _ in tokenizer if k == "tokenizer.ggml.tokens"), None)
    if tokens is not None and len(tokens) != cfg.vocab_size:
      raise ValueError(f"to_gguf: {tokenizer_from} lists {len(tokens)} tokens; the model's "
                       f"vocab_size is {cfg.vocab_size}")
  np_dtype, file_type = _DTYPES[dtype]
  tensors = []
  for hf_name, a in convert.state_dict_from_params(cfg, params).items():
    a = np.asarray(a, np.float32)
    if re.search(r"\.[qk]_proj\.", hf_name):
      a = permute_gguf_rows(a, cfg.n_heads if ".q_proj." in hf_name else cfg.kv_heads)
    tensors.append((_rename(hf_name, to_gguf=True), a if a.ndim == 1 else a.astype(np_dtype)))

  directory, base = os.path.split(path)
  fd, tmp = tempfile.mkstemp(prefix=f".{base}.tmp-", dir=directory)
  os.close(fd)
  try:
    writer = gguf.GGUFWriter(tmp, "llama")
    if name:
      writer.add_name(name)
    # The "llama.*" hyperparameters, each through the writer's own typed setter.
    for setter, value in (
        ("file_type", file_type), ("vocab_size", cfg.vocab_size),
        ("context_length", cfg.max_len), ("embedding_length", cfg.d_model),
        ("block_count", cfg.n_layers), ("feed_forward_length", cfg.d_ff),
        ("head_count", cfg.n_heads), ("head_count_kv", cfg.kv_heads), ("key_length", cfg.dh),
        ("value_length", cfg.dh), ("rope_dimension_count", cfg.dh),
        ("rope_freq_base", cfg.rope_theta), ("layer_norm_rms_eps", cfg.norm_eps)):
      getattr(writer, f"add_{setter}")(value)
    for key, value, types in tokenizer:
      writer.add_key_value(key, value, types[0], sub_type=types[-1] if len(types) > 1 else None)
    for tensor_name, a in tensors:
      writer.add_tensor(tensor_name, np.ascontiguousarray(a))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path
