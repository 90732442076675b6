"""Interleaved decoding (e3's rollouts): `make_decode(chunk=64)` vs one call per segment.

`jaxlm.search.threads.interleave` decodes every live row until a stop or trigger token, lets the
environment append its segment, and decodes again. Each decode call allocates a KV cache of
prompt + decode length (padded) and every step reads all of it; without a chunk the decode
length is the largest remaining budget (hundreds of tokens) although segments end after tens.
`chunk=64` caps a call at 64 new tokens (rows that run on are re-prefilled in the next call).

Workload: e3's policy shape (2 layers, d=64, 4 heads, the 58-symbol trace alphabet), randomly
initialised, so each token is a stop (<eos>) or the trigger with probability ~2/58: segments
of ~30 tokens, as the trained policy's ~50-token attempts; the environment answers each
trigger with 12 tokens; 64 rollouts, budget 512. Each side runs the same key twice and only
the second run is timed (every shape compiled by the first); sides alternate, and the median
of per-repeat ratios is reported (the machine is shared).

    python -m benchmarks.interleave_bench
"""

import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlm.envs import countdown_data
from jaxlm.models import transformer as tfm
from jaxlm.search import threads

ROWS, BUDGET, REPEATS = 64, 512, 3


def _rollouts(decode, tok, key):
  respond = lambda i, text: ("verify invalid\n", False)  # 15 characters of environment text
  out = threads.interleave(decode, tok, ["12 3 4 5 -> 17\n"] * ROWS, BUDGET, key,
                           trigger="v", respond=respond)
  return sum(r.decoded_tokens for r in out)


def run() -> list[dict]:
  tok = countdown_data.trace_tokenizer()
  cfg = tfm.TransformerConfig(vocab_size=tok.vocab_size, d_model=64, n_layers=2, n_heads=4,
                              d_ff=256, max_len=2048, pos="rope")
  model = tfm.Transformer(cfg)
  params = nn.meta.unbox(model.init(jax.random.key(0), jnp.ones((1, 8), jnp.int32))["params"])
  sides = {"chunk=64": threads.make_decode(model, params, chunk=64, pad_id=tok.pad_id),
           "one call": threads.make_decode(model, params, pad_id=tok.pad_id)}
  rates = {name: [] for name in sides}
  for rep in range(REPEATS):
    key = jax.random.key(rep)
    for name, decode in sides.items():
      _rollouts(decode, tok, key)  # compiles this key's shapes
      t0 = time.perf_counter()
      tokens = _rollouts(decode, tok, key)
      rates[name].append(tokens / (time.perf_counter() - t0))
      print(f"repeat {rep} {name}: {rates[name][-1]:.0f} decoded tokens/s", flush=True)
  ratio = statistics.median(a / b for a, b in zip(rates["chunk=64"], rates["one call"]))
  return [{"name": f"interleave, {ROWS} rollouts x {BUDGET} tokens, e3 policy shape: "
                   "decoded tokens/s, chunk=64 vs one call per segment",
           "ours": statistics.median(rates["chunk=64"]),
           "reference": statistics.median(rates["one call"]), "unit": "tokens/s",
           "ratio": ratio}]


if __name__ == "__main__":
  for row in run():
    print(row)
