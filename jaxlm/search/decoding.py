"""The ``DecodeFn`` of a transformer (``make_decode``) for the thread orchestrators.

``jaxlm.search.threads`` decodes through an injected ``DecodeFn``: ``(prompt id lists, max new
tokens per prompt, stop ids, key) -> completion id lists``. ``make_decode`` implements it with
``jaxlm.generate`` (jitted KV-cache sampling) on a batch of threads, padding shapes to a few
buckets (``bucket``) so rounds of changing sizes share compilations.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import generation
from jaxlm.search.threads import Completion
from jaxlm.search.threads import DecodeFn


def bucket(n: int, fine: bool = False) -> int:
  """The smallest power of two >= n (shapes rounded so few programs compile); with `fine`,
  the smallest power of two or three quarters of one (..., 48, 64, 96, 128, ...): at most a
  third of padding instead of a half, for twice the shapes."""
  b = 1 << max(n - 1, 0).bit_length()
  return b * 3 // 4 if fine and b >= 8 and n <= b * 3 // 4 else b


def make_decode(model: Any, params: Any, *, temperature: float = 1.0, pad_id: int = 0,
                max_batch: int = 128, max_attention: int = 1 << 26, chunk: int | None = None
                ) -> DecodeFn:
  """The ``DecodeFn`` of a transformer: one ``jaxlm.generate`` call per batch of threads; its
  completions are ``Completion``s (ids and the sampler's log-prob of each).

  Prompts are left-padded; the batch and prompt length are rounded up to powers of two or
  three quarters of one (`bucket(fine=True)`; the prefill's cost grows with rows x prompt^2),
  the decode length to a power of two (lengths within a learned position table; padding rows
  copy the first prompt and decode one token) and stop ids padded to 4, each row limited by
  its own budget, so rounds of different sizes and lengths share few compilations. Prompts
  are decoded at most `max_batch` at a time (one key per call), and fewer when long: the
  prefill's attention holds rows x heads x prompt x prompt scores (and each step reads a cache
  of prompt + decode slots), so a call takes the largest power of two of rows that keeps
  rows x prompt x (prompt + decode) (padded) within `max_attention` (2^26 entries; 64 rows of
  768-token prompts in the e3 default's 4-head model peak at 1.4 GB).

  With `chunk`, a call decodes at most `chunk` tokens per row; rows that neither stopped nor
  used their budget continue from their prompt and what they decoded (re-prefilled) with the
  next key. Each step of a call reads the whole KV cache, prompt + decode length (padded), so
  when rows stop long before their budget (e3's attempts: ~50 tokens of a 512-token budget)
  a short chunk shrinks every step's cache; a row that decodes far past `chunk` pays a
  prefill per chunk instead.
  """
  max_len = model.cfg.max_len if model.cfg.pos == "learned" else None
  if chunk is not None and chunk < 1:
    raise ValueError(f"make_decode: chunk={chunk} must be >= 1 (or None)")

  def decode(prompts, max_new_tokens, stop_ids, key):
    if chunk is None:
      return call(prompts, max_new_tokens, stop_ids, key)
    outs, live = [Completion([], []) for _ in prompts], list(range(len(prompts)))
    while live:
      key, k = jax.random.split(key)
      got = call([list(prompts[i]) + outs[i] for i in live],
                 [min(chunk, max_new_tokens[i] - len(outs[i])) for i in live], stop_ids, k)
      for i, out in zip(live, got):
        outs[i] = Completion(outs[i] + out, outs[i].logprobs + out.logprobs)
      live = [i for i, out in zip(live, got)
              if (not out or out[-1] not in stop_ids) and len(outs[i]) < max_new_tokens[i]]
    return outs

  def call(prompts, max_new_tokens, stop_ids, key):
    p, n = max(map(len, prompts)), max(max_new_tokens)
    p_pad, n_pad = bucket(p, fine=True), bucket(n)
    rows = min(max_batch, max(1, max_attention // (p_pad * (p_pad + n_pad))))
    rows = 1 << (rows.bit_length() - 1)
    if len(prompts) > rows:
      keys = jax.random.split(key, -(-len(prompts) // rows))
      return [out for i, k in enumerate(keys)
              for out in call(prompts[i * rows:(i + 1) * rows],
                            max_new_tokens[i * rows:(i + 1) * rows], stop_ids, k)]
    b = len(prompts)  # padding rows copy the first prompt and decode one token: p, n stay
    pad = bucket(b, fine=True) - b
    prompts, max_new_tokens = list(prompts) + [prompts[0]] * pad, list(max_new_tokens) + [1] * pad
    if max_len is not None and p_pad - 1 + n_pad > max_len:
      p_pad, n_pad = p, max(n, min(n_pad, max_len + 1 - p))
    prompt_BxP = np.full((len(prompts), p_pad), pad_id, np.int32)
    mask_BxP = np.zeros((len(prompts), p_pad), np.int32)
    for r, ids in enumerate(prompts):
      prompt_BxP[r, p_pad - len(ids):], mask_BxP[r, p_pad - len(ids):] = ids, 1
    stop_K = list(stop_ids) + [-1] * (-len(stop_ids) % 4)  # -1 never matches a token
    out = generation.generate(model, params, jnp.asarray(prompt_BxP), jnp.asarray(mask_BxP),
                              rng=key, max_new_tokens=n_pad, temperature=temperature,
                              stop_tokens=stop_K, pad_id=pad_id,
                              max_lengths_B=jnp.asarray(max_new_tokens, jnp.int32))
    tokens_BxN, lengths_B = np.asarray(out.tokens_BxN), np.asarray(out.lengths_B)
    logp_BxN = np.asarray(out.processed_logprobs_BxN, np.float64)
    return [Completion(tokens_BxN[i, :lengths_B[i]].tolist(), logp_BxN[i, :lengths_B[i]].tolist())
            for i in range(b)]

  return decode
