"""Train-step throughput: jaxlm vs PyTorch + HF transformers, and MFU against measured peak.

Both sides run the same GPT-2-shaped model (6 layers, d=384, 6 heads, vocab 50257, tied
embeddings), batch 8 x 128, one forward + backward + AdamW update per step, float32, on the same
number of CPU threads. Timings are interleaved (ours, reference, ours, ...) over `repeats`
rounds on a shared, noisy machine; the reported ratio is the median of per-round ratios.

MFU = (training FLOPs per token x tokens/s) / peak, where the peak is this CPU's float32 matmul
rate measured in the same process by a large `jnp.dot` (Chowdhery et al. 2022, App. B).
"""

from __future__ import annotations

import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlm import train
from jaxlm.models import Transformer, gpt2_config

BATCH, SEQ, STEPS = 8, 128, 4
CFG = gpt2_config(vocab_size=50257, d_model=384, n_layers=6, n_heads=6, d_ff=1536, max_len=SEQ)


def matmul_peak_flops(n: int = 2048, reps: int = 5) -> float:
  """Best-of-`reps` float32 FLOP/s of an n x n x n jnp.dot."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  dot = jax.jit(jnp.dot)
  dot(a, a).block_until_ready()
  best = np.inf
  for _ in range(reps):
    t = time.perf_counter()
    dot(a, a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * n ** 3 / best


def _ours():
  """(run(steps) -> seconds) for the jaxlm step."""
  model = Transformer(CFG)

  def loss_fn(params, batch, rng, *, state):
    del rng, state
    logits_BxTxV = model.apply({"params": params}, batch[:, :-1]).logits
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, batch[:, 1:]).mean(), {}

  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, SEQ), jnp.int32))["params"]
  opt = optax.adamw(1e-4)
  state = train.TrainState.create(nn.meta.unbox(params), opt, jax.random.PRNGKey(1))
  step = train.make_train_step(loss_fn, opt)
  batch = jnp.asarray(np.random.default_rng(0).integers(0, CFG.vocab_size, (BATCH, SEQ + 1)),
                      jnp.int32)
  holder = [state]

  def run(steps):
    s = holder[0]
    jax.block_until_ready(s)
    t = time.perf_counter()
    for _ in range(steps):
      s, m = step(s, batch)
    jax.block_until_ready(m)
    holder[0] = s
    return time.perf_counter() - t
  run(1)  # Compile.
  return run


def _reference(threads: int):
  """(run(steps) -> seconds) for PyTorch + HF GPT2LMHeadModel."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  hf_cfg = transformers.GPT2Config(vocab_size=CFG.vocab_size, n_positions=SEQ,
                                   n_embd=CFG.d_model, n_layer=CFG.n_layers,
                                   n_head=CFG.n_heads, n_inner=CFG.d_ff)
  model = transformers.GPT2LMHeadModel(hf_cfg).train()
  opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
  batch = torch.from_numpy(np.random.default_rng(0).integers(0, CFG.vocab_size, (BATCH, SEQ)))

  def run(steps):
    t = time.perf_counter()
    for _ in range(steps):
      loss = model(input_ids=batch, labels=batch).loss
      loss.backward()
      opt.step()
      opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t
  run(1)  # Warm-up.
  return run


def run(repeats: int = 3) -> list[dict]:
  """Interleaved timing; returns rows {name, ours, reference, ratio, unit}."""
  threads = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))
  ours, ref = _ours(), _reference(threads)
  tokens = BATCH * SEQ * STEPS
  ours_tps, ref_tps = [], []
  for _ in range(repeats):
    ours_tps.append(tokens / ours(STEPS))
    ref_tps.append(tokens / ref(STEPS))
  ratios = np.array(ours_tps) / np.array(ref_tps)
  peak = matmul_peak_flops()
  flops = CFG.flops_per_token(SEQ) * float(np.median(ours_tps))
  ref_flops = CFG.flops_per_token(SEQ) * float(np.median(ref_tps))
  return [
      {"name": "train_step_tokens_per_s", "ours": float(np.median(ours_tps)),
       "reference": float(np.median(ref_tps)), "ratio": float(np.median(ratios)),
       "unit": "tokens/s"},
      {"name": "train_step_mfu", "ours": flops / peak, "reference": ref_flops / peak,
       "ratio": flops / ref_flops, "unit": f"fraction of {peak / 1e9:.0f} GFLOP/s f32 matmul peak"},
  ]


if __name__ == "__main__":
  for row in run():
    print(row)
