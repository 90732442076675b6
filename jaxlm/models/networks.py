"""Networks the algorithms build from the one transformer, and pretrained weights loaded into them.

`lm_networks(config, pretrained)` gives `(model, init_fn, logits_fn)` of a transformer LM; every
algorithm's networks start from it (a policy, a value trunk, a PRM trunk). Pretrained params
(a Hugging Face checkpoint through `jaxlm.models.from_hf`, or an earlier run's policy) replace the
fresh init leaf by leaf in `load_pretrained`, keeping the logical-axis boxes so they shard alike.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlm.models.transformer import Transformer, TransformerConfig


def lm_networks(config: TransformerConfig, pretrained: Any = None):
  """(model, init_fn, logits_fn) of a transformer LM.

  `init_fn(key)` returns fresh params, or `pretrained` loaded into them (`load_pretrained`: a
  pretrained `vocab` axis may be shorter than `config.vocab_size`, e.g. a policy's character set
  extended at the end by search-trace symbols; known ids keep their rows, new ids the fresh
  init). `logits_fn(params, tokens_BxT, mask_BxT) -> logits_BxTxV`.
  """
  model = Transformer(config)

  def init_fn(key):
    fresh = model.init(key, jnp.zeros((1, min(config.max_len, 8)), jnp.int32))["params"]
    if pretrained is None:
      return fresh
    return jax.tree.map(load_pretrained, fresh, pretrained,
                        is_leaf=lambda x: isinstance(x, nn.Partitioned))

  logits_fn = lambda params, tokens, mask: model.apply({"params": params}, tokens,
                                                       attention_mask_BxT=mask).logits
  return model, init_fn, logits_fn


def load_pretrained(fresh: Any, w: Any) -> Any:
  """`w` in the dtype (and logical-axis box) of the fresh leaf; a shorter `vocab` axis grows."""
  unbox = lambda x: x.unbox() if isinstance(x, nn.Partitioned) else x
  value = unbox(fresh)
  w = jnp.asarray(unbox(w), value.dtype)
  if w.shape != value.shape:
    names = fresh.names if isinstance(fresh, nn.Partitioned) else ()
    grow = [i for i, (a, b) in enumerate(zip(w.shape, value.shape)) if a != b]
    if (w.ndim != value.ndim or len(grow) != 1 or grow[0] >= len(names)
        or names[grow[0]] != "vocab" or w.shape[grow[0]] > value.shape[grow[0]]):
      raise ValueError(f"pretrained shape {w.shape} does not fit {value.shape} (axes {names});"
                       " only a shorter 'vocab' axis can be grown")
    w = jax.lax.dynamic_update_slice(value, w, (0,) * w.ndim)
  return fresh.replace_boxed(w) if isinstance(fresh, nn.Partitioned) else w
