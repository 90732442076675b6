"""KV-cache greedy generation: jaxlm `generate` vs HF transformers (PyTorch) `generate`.

Both sides run the same random GPT-2-shaped model (6 layers, d=384, 6 heads, vocab 50257) on
batch 8 x 32-token prompts and produce 64 new tokens greedily, with the same number of CPU
threads. Runs are interleaved (ours, reference, ours, ...) and the median of per-repeat ratios
is reported, because the machine is shared and noisy.

    python -m benchmarks.generate_bench
    taskset -c 0 python -m benchmarks.generate_bench   # 1 thread each side

On an oversubscribed machine PyTorch's multi-threaded kernels collapse (its worker threads spin
while other processes hold the cores) far more than XLA's, which inflates the 2-thread ratio;
pinning to one core gives the fairer comparison under load. Both sides read the 77 MB f32 output
embedding every step, which bounds the ratio on a CPU.
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np

BATCH, PROMPT, NEW = 8, 32, 64


def _hf_model():
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  hf_cfg = transformers.GPT2Config(vocab_size=50257, n_positions=1024, n_embd=384, n_layer=6,
                                   n_head=6)
  return transformers.GPT2LMHeadModel(hf_cfg).eval()


def _timed(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def run(repeats: int = 3) -> list[dict]:
  """Returns [{name, ours, reference, ratio, unit}] for greedy generation new tokens/s."""
  import torch  # pylint: disable=g-import-not-at-top
  from jaxlm import generation  # pylint: disable=g-import-not-at-top
  from jaxlm.models import convert, transformer  # pylint: disable=g-import-not-at-top

  threads = len(os.sched_getaffinity(0))  # XLA's CPU client uses every core it may run on.
  torch.set_num_threads(threads)
  hf = _hf_model()
  cfg, params = convert.from_hf(hf)
  model = transformer.Transformer(cfg)
  prompt = np.random.RandomState(0).randint(0, cfg.vocab_size, (BATCH, PROMPT))
  prompt_pt = torch.as_tensor(prompt)

  def ours():
    out = generation.generate(model, params, prompt, max_new_tokens=NEW, temperature=0.0)
    jax.block_until_ready(out.tokens_BxN)
    return np.asarray(out.tokens_BxN)

  def reference():
    with torch.no_grad():
      return hf.generate(prompt_pt, attention_mask=torch.ones_like(prompt_pt), do_sample=False,
                         max_new_tokens=NEW, min_new_tokens=NEW, pad_token_id=0)[:, PROMPT:]

  ours()  # Compile.
  reference()  # Warm up.
  new_tokens = BATCH * NEW
  rates = np.array([(new_tokens / _timed(ours), new_tokens / _timed(reference))
                    for _ in range(repeats)])
  ratio = float(np.median(rates[:, 0] / rates[:, 1]))
  return [dict(name=f"greedy generate b{BATCH} p{PROMPT} +{NEW} (gpt2 6x384, {threads} threads)",
               ours=float(np.median(rates[:, 0])), reference=float(np.median(rates[:, 1])),
               ratio=ratio, unit="new tokens/s")]


if __name__ == "__main__":
  for row in run():
    print(f"{row['name']}: ours {row['ours']:.0f} {row['unit']}, HF torch "
          f"{row['reference']:.0f}, ratio {row['ratio']:.2f}x")
