"""Hugging Face checkpoints <-> jaxlm `Transformer` parameters.

Two families are mapped, each by a table of rules from HF state-dict names to jaxlm parameter
paths, so that import and export are the same table read in two directions:

* GPT-2 (Radford et al. 2019; HF `model_type` "gpt2"). HF stores its projections as `Conv1D`
  with weights [in, out] and the query/key/value projections fused in one `c_attn`.
* LLaMA architecture (Touvron et al. 2023; "llama", "mistral", "qwen2"): `nn.Linear` weights
  [out, in], RMSNorm, rotary positions in the half-split layout (which jaxlm uses too, so no
  permutation), SwiGLU, grouped-query attention; Qwen2 adds query/key/value biases.

Weights are read without pickle: safetensors through its numpy API, or a legacy
`pytorch_model.bin` through `torch.load(weights_only=True)`. GGUF files (llama.cpp) go through
the same state dicts in `llama_cpp`.

Parameters come back unboxed (plain arrays, no `nn.Partitioned`), in the tree
`Transformer(config).init` builds; `config.scan_layers` picks the per-block or stacked layout.
"""

from __future__ import annotations

import glob
import json
import math
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any, NamedTuple

from flax import traverse_util
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import safetensors.numpy

from jaxlm import files
from jaxlm.models.transformer import Transformer, TransformerConfig

Params = dict[str, Any]
StateDict = dict[str, np.ndarray]

_LLAMA_TYPES = ("llama", "mistral", "qwen2")
_SUPPORTED = ("gpt2",) + _LLAMA_TYPES
# Buffers some HF checkpoints carry that are not parameters (GPT-2 causal masks, rotary tables).
_IGNORED = re.compile(r"(\.attn\.(masked_)?bias|\.rotary_emb\.inv_freq)$")


class _Rule(NamedTuple):
  """How one HF tensor (or one chunk of a fused one) maps onto one jaxlm parameter.

  layout: "linear" = torch Linear [out, in]; "conv1d" = GPT-2 Conv1D [in, out]; "vector" = 1-D
    tensor reshaped to the jaxlm shape (norms, biases); "same" = identical shape (embeddings).
  n_in: how many leading axes of the jaxlm kernel are input axes (2 for the attention output).
  part: (j, n) = chunk j of n equal chunks along the HF tensor's last axis (GPT-2 `c_attn`).
  """
  hf: str
  path: tuple[str, ...]
  layout: str
  n_in: int = 1
  part: tuple[int, int] = (0, 1)


def _gpt2_rules(cfg: TransformerConfig) -> list[_Rule]:
  r = [_Rule("transformer.wte.weight", ("embed", "embedding"), "same"),
       _Rule("transformer.wpe.weight", ("pos_embed", "embedding"), "same"),
       _Rule("transformer.ln_f.weight", ("ln_f", "scale"), "vector"),
       _Rule("transformer.ln_f.bias", ("ln_f", "bias"), "vector")]
  for i in range(cfg.n_layers):
    h, b = f"transformer.h.{i}.", f"block_{i}"
    for hf_norm, norm in (("ln_1", "ln1"), ("ln_2", "ln2")):
      r += [_Rule(f"{h}{hf_norm}.weight", (b, norm, "scale"), "vector"),
            _Rule(f"{h}{hf_norm}.bias", (b, norm, "bias"), "vector")]
    for j, name in enumerate("qkv"):
      r += [_Rule(f"{h}attn.c_attn.weight", (b, "attn", name, "kernel"), "conv1d", 1, (j, 3)),
            _Rule(f"{h}attn.c_attn.bias", (b, "attn", name, "bias"), "vector", 1, (j, 3))]
    for hf_mod, mod, n_in in (("attn.c_proj", ("attn", "o"), 2), ("mlp.c_fc", ("mlp", "up"), 1),
                              ("mlp.c_proj", ("mlp", "down"), 1)):
      r += [_Rule(f"{h}{hf_mod}.weight", (b, *mod, "kernel"), "conv1d", n_in),
            _Rule(f"{h}{hf_mod}.bias", (b, *mod, "bias"), "vector")]
  if not cfg.tie_embeddings:
    r.append(_Rule("lm_head.weight", ("lm_head", "kernel"), "linear"))
  return r


def _llama_rules(cfg: TransformerConfig) -> list[_Rule]:
  r = [_Rule("model.embed_tokens.weight", ("embed", "embedding"), "same"),
       _Rule("model.norm.weight", ("ln_f", "scale"), "vector")]
  for i in range(cfg.n_layers):
    h, b = f"model.layers.{i}.", f"block_{i}"
    r += [_Rule(f"{h}input_layernorm.weight", (b, "ln1", "scale"), "vector"),
          _Rule(f"{h}post_attention_layernorm.weight", (b, "ln2", "scale"), "vector"),
          _Rule(f"{h}self_attn.o_proj.weight", (b, "attn", "o", "kernel"), "linear", 2)]
    for name in "qkv":
      r.append(_Rule(f"{h}self_attn.{name}_proj.weight", (b, "attn", name, "kernel"), "linear"))
      if cfg.qkv_bias:
        r.append(_Rule(f"{h}self_attn.{name}_proj.bias", (b, "attn", name, "bias"), "vector"))
    if cfg.proj_bias:
      r.append(_Rule(f"{h}self_attn.o_proj.bias", (b, "attn", "o", "bias"), "vector"))
    r += [_Rule(f"{h}mlp.{name}_proj.weight", (b, "mlp", name, "kernel"), "linear")
          for name in ("gate", "up", "down")]
  if not cfg.tie_embeddings:
    r.append(_Rule("lm_head.weight", ("lm_head", "kernel"), "linear"))
  return r


def _rules(cfg: TransformerConfig) -> list[_Rule]:
  return _gpt2_rules(cfg) if cfg.pos == "learned" else _llama_rules(cfg)


def _hf_shape(rule: _Rule, shape: tuple[int, ...]) -> tuple[int, ...]:
  """Shape of the whole HF tensor that `rule` reads a jaxlm parameter of `shape` from."""
  n = rule.part[1]
  d_in, d_out = math.prod(shape[:rule.n_in]), math.prod(shape[rule.n_in:])
  return {"same": shape, "vector": (n * math.prod(shape),), "linear": (d_out, d_in),
          "conv1d": (d_in, n * d_out)}[rule.layout]


def _to_jax_layout(rule: _Rule, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
  j, n = rule.part
  a = np.split(a, n, axis=-1)[j]
  return (a.T if rule.layout == "linear" else a).reshape(shape)


def _to_hf_layout(rule: _Rule, a: np.ndarray) -> np.ndarray:
  if rule.layout == "vector":
    return a.reshape(-1)
  if rule.layout == "same":
    return a
  a = a.reshape(math.prod(a.shape[:rule.n_in]), -1)
  return a.T if rule.layout == "linear" else a


# ------------------------------------------------------------------------------------------------
# Configurations.


def _get(hf_config: Any) -> dict[str, Any]:
  if isinstance(hf_config, Mapping):
    return dict(hf_config)
  if hasattr(hf_config, "to_dict"):
    return hf_config.to_dict()
  raise ValueError(f"expected an HF config object or dict, got {type(hf_config).__name__}")


def _rope_theta(d: dict[str, Any], model_type: str) -> float:
  """Rotary base; any rope scaling other than the plain one is refused."""
  rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
  kind = rope.get("rope_type", rope.get("type", "default"))
  if kind != "default":
    raise ValueError(f"{model_type}: rope_scaling type {kind!r} is not supported (only the "
                     "default rotary embedding)")
  if d.get("partial_rotary_factor", 1.0) != 1.0:
    raise ValueError(f"{model_type}: partial_rotary_factor={d['partial_rotary_factor']} is not "
                     "supported")
  return float(rope.get("rope_theta", d.get("rope_theta", 10000.0)))


def _check_full_attention(d: dict[str, Any], model_type: str) -> None:
  """Refuses sliding-window attention when it can change the result."""
  layer_types = d.get("layer_types") or []
  bad = sorted({t for t in layer_types if t != "full_attention"})
  if bad:
    raise ValueError(f"{model_type}: layer_types {bad} are not supported (full attention only)")
  window, max_len = d.get("sliding_window"), d.get("max_position_embeddings")
  if (d.get("use_sliding_window", model_type != "qwen2") and window is not None
      and (max_len is None or window < max_len)):
    raise ValueError(f"{model_type}: sliding_window={window} is in use "
                     f"(< max_position_embeddings={max_len}); not supported")


def config_from_hf(hf_config: Any, *, dtype: Any = None,
                   scan_layers: bool = False) -> TransformerConfig:
  """jaxlm config of an HF config (object or dict as in config.json).

  Args:
    hf_config: `transformers.PretrainedConfig` or its dict.
    dtype: compute and parameter dtype of the returned config (default float32).
    scan_layers: parameter layout of the returned config.

  Returns:
    TransformerConfig.

  Raises:
    ValueError: unsupported `model_type`, or a feature the jaxlm transformer lacks (naming it).
  """
  d = _get(hf_config)
  model_type = d.get("model_type")
  dt = jnp.dtype(dtype or "float32").name
  common = dict(dtype=dt, param_dtype=dt, scan_layers=scan_layers)
  if model_type == "gpt2":
    act = d.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
      raise ValueError(f"gpt2: activation_function={act!r} is not supported (tanh GELU only)")
    for field, want in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                        ("add_cross_attention", False)):
      if d.get(field, want) != want:
        raise ValueError(f"gpt2: {field}={d[field]} is not supported")
    return TransformerConfig(
        vocab_size=d["vocab_size"], d_model=d["n_embd"], n_layers=d["n_layer"],
        n_heads=d["n_head"], d_ff=d.get("n_inner") or 4 * d["n_embd"], max_len=d["n_positions"],
        norm="layernorm", norm_eps=d.get("layer_norm_epsilon", 1e-5), pos="learned",
        mlp="gelu", tie_embeddings=d.get("tie_word_embeddings", True), qkv_bias=True,
        proj_bias=True, **common)
  if model_type in _LLAMA_TYPES:
    if d.get("hidden_act", "silu") != "silu":
      raise ValueError(f"{model_type}: hidden_act={d['hidden_act']!r} is not supported (silu)")
    if d.get("mlp_bias", False):
      raise ValueError(f"{model_type}: mlp_bias=True is not supported")
    theta = _rope_theta(d, model_type)
    _check_full_attention(d, model_type)
    attention_bias = bool(d.get("attention_bias", False))
    n_heads = d["num_attention_heads"]
    return TransformerConfig(
        vocab_size=d["vocab_size"], d_model=d["hidden_size"], n_layers=d["num_hidden_layers"],
        n_heads=n_heads, n_kv_heads=d.get("num_key_value_heads") or n_heads,
        head_dim=d.get("head_dim") or d["hidden_size"] // n_heads, d_ff=d["intermediate_size"],
        max_len=d.get("max_position_embeddings", 2048), norm="rmsnorm",
        norm_eps=d.get("rms_norm_eps", 1e-6), pos="rope", rope_theta=theta, mlp="swiglu",
        tie_embeddings=d.get("tie_word_embeddings", False),
        qkv_bias=model_type == "qwen2" or attention_bias,
        proj_bias=model_type != "qwen2" and attention_bias, **common)
  raise ValueError(f"unsupported HF model_type {model_type!r}; supported: {_SUPPORTED}")


def config_to_hf(cfg: TransformerConfig) -> dict[str, Any]:
  """The HF config.json dict of a jaxlm config (GPT-2, LLaMA or Qwen2 architecture).

  Raises:
    ValueError: the config mixes families in a way no supported HF architecture has.
  """
  family = (cfg.norm, cfg.pos, cfg.mlp)
  dt = jnp.dtype(cfg.param_dtype).name
  if family == ("layernorm", "learned", "gelu"):
    for field, ok in (("qkv_bias", cfg.qkv_bias), ("proj_bias", cfg.proj_bias),
                      ("n_kv_heads", cfg.kv_heads == cfg.n_heads),
                      ("head_dim", cfg.dh * cfg.n_heads == cfg.d_model)):
      if not ok:
        raise ValueError(f"to_hf: GPT-2 export needs the GPT-2 value of {field}")
    return dict(model_type="gpt2", architectures=["GPT2LMHeadModel"],
                vocab_size=cfg.vocab_size, n_embd=cfg.d_model, n_layer=cfg.n_layers,
                n_head=cfg.n_heads, n_inner=cfg.d_ff, n_positions=cfg.max_len,
                layer_norm_epsilon=cfg.norm_eps, activation_function="gelu_new",
                tie_word_embeddings=cfg.tie_embeddings, torch_dtype=dt)
  if family == ("rmsnorm", "rope", "swiglu"):
    if cfg.qkv_bias and not cfg.proj_bias:
      model_type, extra = "qwen2", dict(use_sliding_window=False, sliding_window=None)
    elif cfg.qkv_bias == cfg.proj_bias:
      model_type, extra = "llama", dict(attention_bias=cfg.qkv_bias, mlp_bias=False)
    else:
      raise ValueError("to_hf: proj_bias without qkv_bias has no HF LLaMA-family architecture")
    arch = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}[model_type]
    return dict(model_type=model_type, architectures=[arch], vocab_size=cfg.vocab_size,
                hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
                num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                num_key_value_heads=cfg.kv_heads, head_dim=cfg.dh,
                max_position_embeddings=cfg.max_len, rms_norm_eps=cfg.norm_eps,
                rope_theta=cfg.rope_theta,
                rope_parameters=dict(rope_type="default", rope_theta=cfg.rope_theta),
                hidden_act="silu", tie_word_embeddings=cfg.tie_embeddings, torch_dtype=dt,
                **extra)
  raise ValueError(f"to_hf: (norm, pos, mlp)={family} matches neither GPT-2 "
                   "(layernorm, learned, gelu) nor LLaMA (rmsnorm, rope, swiglu)")


# ------------------------------------------------------------------------------------------------
# Parameters.


def _param_shapes(cfg: TransformerConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Unscanned parameter paths and shapes of `Transformer(cfg)`, without allocating."""
  cfg = cfg.replace(scan_layers=False)
  tokens = jnp.zeros((1, 1), jnp.int32)
  abstract = jax.eval_shape(lambda: Transformer(cfg).init(jax.random.key(0), tokens))
  flat = traverse_util.flatten_dict(nn.meta.unbox(abstract["params"]))
  return {k: tuple(v.shape) for k, v in flat.items()}


def _stack_layers(params: Params, n_layers: int) -> Params:
  blocks = [params.pop(f"block_{i}") for i in range(n_layers)]
  return {**params, "blocks": jax.tree.map(lambda *a: np.stack(a), *blocks)}


def _unstack_layers(params: Params, n_layers: int) -> Params:
  params = dict(params)
  blocks = params.pop("blocks")
  return {**params, **{f"block_{i}": jax.tree.map(lambda a, i=i: a[i], blocks)
                       for i in range(n_layers)}}


def _to_numpy(t: Any) -> np.ndarray:
  """A torch tensor (any dtype, bf16 included), jax or numpy array as a numpy array."""
  if hasattr(t, "detach"):  # torch: bf16 has no numpy twin, f32 holds it exactly.
    t = t.detach().cpu()
    return (t.float() if t.dtype.is_floating_point and t.dtype.itemsize < 4 else t).numpy()
  return np.asarray(t)


def params_from_state_dict(cfg: TransformerConfig, state_dict: Mapping[str, Any]) -> Params:
  """jaxlm params (unboxed, layout per `cfg.scan_layers`) of an HF causal-LM state dict.

  Names may lack the `transformer.` / `model.` prefix (a bare `GPT2Model`/`LlamaModel`).

  Raises:
    ValueError: a missing or unexpected tensor, or one whose shape does not fit `cfg`,
      naming the HF parameter.
  """
  prefix = "transformer." if cfg.pos == "learned" else "model."
  sd = {(k if k.startswith((prefix, "lm_head.")) else prefix + k): v
        for k, v in state_dict.items()}
  rules, shapes = _rules(cfg), _param_shapes(cfg)
  if cfg.tie_embeddings:
    sd.pop("lm_head.weight", None)  # HF state_dict() lists the tied head again.
  unexpected = sorted(set(sd) - {r.hf for r in rules} - {k for k in sd if _IGNORED.search(k)})
  if unexpected:
    raise ValueError(f"unexpected parameters for this config (unsupported feature?): "
                     f"{unexpected[:5]}")
  missing = sorted({r.hf for r in rules} - set(sd))
  if missing:
    raise ValueError(f"checkpoint lacks parameters: {missing[:5]}")
  dt = jnp.dtype(cfg.param_dtype)
  flat = {}
  for rule in rules:
    a, shape = _to_numpy(sd[rule.hf]), shapes[rule.path]
    if a.shape != _hf_shape(rule, shape):
      raise ValueError(f"parameter {rule.hf} has shape {a.shape}, but the config needs "
                       f"{_hf_shape(rule, shape)} (jaxlm {'/'.join(rule.path)} {shape})")
    flat[rule.path] = _to_jax_layout(rule, a, shape).astype(dt, copy=False)
  assert set(flat) == set(shapes), set(flat) ^ set(shapes)
  params = traverse_util.unflatten_dict(flat)
  if cfg.scan_layers:
    params = _stack_layers(params, cfg.n_layers)
  return jax.tree.map(jnp.asarray, params)


def state_dict_from_params(cfg: TransformerConfig, params: Params) -> StateDict:
  """The HF state dict (numpy, HF layouts, fused GPT-2 `c_attn`) of jaxlm params.

  Raises:
    ValueError: a parameter missing or of the wrong shape for `cfg` (naming its path).
  """
  params = jax.tree.map(np.asarray, nn.meta.unbox(params))
  if cfg.scan_layers:
    params = _unstack_layers(params, cfg.n_layers)
  flat, shapes = traverse_util.flatten_dict(params), _param_shapes(cfg)
  for path, shape in shapes.items():
    if path not in flat or flat[path].shape != shape:
      got = flat[path].shape if path in flat else "missing"
      raise ValueError(f"param {'/'.join(path)}: expected shape {shape}, got {got}")
  parts: dict[str, list[np.ndarray]] = {}
  for rule in _rules(cfg):  # Chunks of a fused tensor come in order (part j = 0, 1, ...).
    parts.setdefault(rule.hf, []).append(_to_hf_layout(rule, flat[rule.path]))
  return {name: np.ascontiguousarray(np.concatenate(chunks, axis=-1))
          for name, chunks in parts.items()}


# ------------------------------------------------------------------------------------------------
# Files.


# What a corrupt or truncated weights/config file raises while being parsed.
_PARSE_ERRORS = (ValueError, RuntimeError, KeyError, pickle.UnpicklingError,
                 safetensors.SafetensorError)


def reading(path: str):
  """Parse errors of `path` -> a ValueError naming it."""
  return files.reading(path, _PARSE_ERRORS)


def _read_dir(directory: str) -> tuple[dict[str, Any], dict[str, Any]]:
  """(config dict, state dict) of an HF checkpoint directory; never unpickles.

  A missing, truncated or corrupt file is a ValueError naming it.
  """
  config_path = os.path.join(directory, "config.json")
  if not os.path.isfile(config_path):
    raise ValueError(f"{directory}: no config.json")
  hf_config = files.read_json(config_path, _PARSE_ERRORS)
  index = os.path.join(directory, "model.safetensors.index.json")
  if os.path.isfile(index):
    index_json = files.read_json(index, _PARSE_ERRORS)
    with reading(index):
      weight_files = sorted({os.path.join(directory, v)
                             for v in index_json["weight_map"].values()})
    missing = [os.path.basename(f) for f in weight_files if not os.path.isfile(f)]
    if missing:
      raise ValueError(f"{index}: lists weight files that do not exist: {missing}")
  else:
    weight_files = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
  state_dict: dict[str, Any] = {}
  for path in weight_files:
    with reading(path):
      state_dict.update(safetensors.numpy.load_file(path))
  if not weight_files:
    bins = sorted(glob.glob(os.path.join(directory, "pytorch_model*.bin")))
    if not bins:
      raise ValueError(f"{directory}: no *.safetensors or pytorch_model*.bin weights")
    import torch  # pylint: disable=g-import-not-at-top
    for path in bins:
      with reading(path):
        state_dict.update(torch.load(path, map_location="cpu", weights_only=True))
  return hf_config, state_dict


def from_hf(x: Any, *, config: Any = None, dtype: Any = None,
            scan_layers: bool = False) -> tuple[TransformerConfig, Params]:
  """Converts an HF causal LM to jaxlm.

  Args:
    x: a `transformers.PreTrainedModel`, a state dict (name -> torch tensor or numpy array;
      then pass `config`), or a local directory with config.json and *.safetensors (sharded
      with model.safetensors.index.json or not) or pytorch_model*.bin.
    config: HF config (object or dict); required with a state dict, overrides the others'.
    dtype: compute and parameter dtype (default float32).
    scan_layers: return params stacked over layers (`params["blocks"]`, leading [L] axis).

  Returns:
    (TransformerConfig, params) with `Transformer(cfg).apply({"params": params}, tokens)`.
  """
  if isinstance(x, (str, os.PathLike)):
    hf_config, state_dict = _read_dir(os.fspath(x))
  elif hasattr(x, "state_dict") and hasattr(x, "config"):
    hf_config, state_dict = x.config, x.state_dict()
  elif isinstance(x, Mapping):
    if config is None:
      raise ValueError("from_hf(state_dict) needs config= (an HF config object or dict)")
    hf_config, state_dict = config, x
  else:
    raise ValueError(f"from_hf: expected a model, state dict or directory, got {type(x)}")
  cfg = config_from_hf(config if config is not None else hf_config, dtype=dtype,
                       scan_layers=scan_layers)
  return cfg, params_from_state_dict(cfg, state_dict)


def to_hf(cfg: TransformerConfig, params: Params, directory: str, *,
          overwrite: bool = False) -> str:
  """Writes config.json + model.safetensors that `AutoModelForCausalLM.from_pretrained` loads.

  Atomic: both files are written into a temporary sibling directory that is renamed into place,
  so a failure leaves nothing half-written. An existing non-empty `directory` is an error unless
  `overwrite=True`, which replaces the whole directory.

  Returns:
    The directory written.
  """
  hf_config = config_to_hf(cfg)
  state_dict = state_dict_from_params(cfg, params)
  directory = os.path.abspath(os.fspath(directory))
  if os.path.lexists(directory) and not os.path.isdir(directory):
    raise ValueError(f"to_hf: {directory} exists and is not a directory")
  exists = os.path.isdir(directory) and bool(os.listdir(directory))
  if exists and not overwrite:
    raise ValueError(f"to_hf: {directory} exists and is not empty (pass overwrite=True)")
  parent, name = os.path.split(directory)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=parent)
  try:
    safetensors.numpy.save_file(state_dict, os.path.join(tmp, "model.safetensors"),
                                metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json"), "w") as f:
      json.dump(hf_config, f, indent=2)
    if os.path.lexists(directory):
      old = tmp + "-old"
      os.rename(directory, old)
      try:
        os.rename(tmp, directory)
      except BaseException:
        os.rename(old, directory)
        raise
      shutil.rmtree(old)
    else:
      os.rename(tmp, directory)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return directory
