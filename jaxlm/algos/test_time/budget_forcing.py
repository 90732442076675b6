"""Budget forcing and NoThinking (Ma et al. 2025) with a policy trained on search traces.

The search-trace policy learns "<prompt>{<best-first trace>}Answer:\\n<solution>"
(``jaxlm.envs.countdown_data.trace_sft_batch``), by default starting from the direct-answer
policy (its vocabulary grown by the trace symbols, as s1 fine-tunes a pretrained model on
traces). It is decoded by ``jaxlm.search.lm.ThinkingSampler`` with budget forcing (at most B
thinking tokens, then "}Answer:\\n" is forced) and with NoThinking ("{}Answer:\\n" pre-filled);
pass@k of both and their token costs go to ``budget_forcing.json``.
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.algos.test_time import models
from jaxlm.algos.test_time.config import Config
from jaxlm.envs import countdown
from jaxlm.envs import countdown_data
from jaxlm.search import lm, passk


def evaluate_thinking(sampler: lm.ThinkingSampler, problems: Sequence[countdown.Problem],
                      budgets: Sequence[int], num_samples: int, rng: jax.Array, *,
                      max_len: int, max_rows: int) -> dict[str, Any]:
  """pass@k of budget forcing at each thinking budget B and of NoThinking (Ma et al. 2025).

  Every question gets ``num_samples`` samples per mode; pass@k is the unbiased estimator for
  k = 1, 2, 4, ... <= num_samples. "tokens" is the mean number of generated tokens per sample
  (forced and pre-filled tokens included). "equal_tokens" compares, per budget B, thinking's
  pass@1 with NoThinking's pass@k at the largest k whose k NoThinking samples cost no more
  tokens than one thinking sample (Ma et al. compare the modes at matched token budgets).

  Returns:
    {"nothinking": entry, "thinking": {B: entry}, "equal_tokens": {B: {...}}}; an entry is
    {"tokens", "forced" (fraction of samples whose thinking was cut), "pass@k": {k: value}}.
  """
  tok = countdown_data.trace_tokenizer()
  modes = [(None, models.question_prompts(problems, max_len, tok))]
  thinking_prompts = models.question_prompts(problems, max_len, tok, countdown_data.THINK_OPEN)
  modes += [(int(b), thinking_prompts) for b in budgets]
  questions = np.repeat(np.arange(len(problems)), num_samples)
  ks = [1 << i for i in range(num_samples.bit_length())]
  think_fn = jax.jit(lm.ThinkingSampler.thinking, static_argnums=3)
  nothink_fn = jax.jit(lm.ThinkingSampler.nothinking)
  pass_k = lambda c_Q, k: float(passk.pass_at_k(jnp.asarray(c_Q), num_samples, k).mean())
  entries, counts = {}, {}
  for m, (budget, prompts) in enumerate(modes):
    t0, correct, spent, forced = time.perf_counter(), [], [], []
    for start in range(0, len(questions), max_rows):
      rows = questions[start:start + max_rows]
      part = jax.tree.map(lambda x: x[rows], prompts)
      key = jax.random.fold_in(jax.random.fold_in(rng, m), start)
      if budget is None:
        seqs, cost = nothink_fn(sampler, key, part)
        cut = np.zeros(len(rows), bool)
      else:
        seqs, cost, cut = think_fn(sampler, key, part, budget)
      seqs = jax.tree.map(np.asarray, seqs)
      correct += [countdown.verify(problems[q], tok.decode(
          seqs.tokens[i, part.lengths[i]:seqs.lengths[i]]))[0] for i, q in enumerate(rows)]
      spent.append(np.asarray(cost))
      forced.append(np.asarray(cut))
    counts[budget] = np.reshape(correct, (len(problems), num_samples)).sum(1)
    entries[budget] = {"tokens": float(np.concatenate(spent).mean()),
                       "forced": float(np.concatenate(forced).mean()),
                       "pass@k": {k: pass_k(counts[budget], k) for k in ks}}
    logging.info("%s: %s (%.0fs)", "NoThinking" if budget is None else f"thinking B={budget}",
                 entries[budget], time.perf_counter() - t0)
  base = entries.pop(None)
  equal = {}
  for b, entry in entries.items():
    k = max(1, min(num_samples, int(entry["tokens"] // max(base["tokens"], 1.0))))
    equal[b] = {"thinking_pass@1": entry["pass@k"][1], "nothinking_samples": k,
                "nothinking_pass@k": pass_k(counts[None], k)}
  return {"nothinking": base, "thinking": entries, "equal_tokens": equal}


def budget_forcing_experiment(config: Config, workdir: str, *, resume: bool = False,
                              policy_params: Any = None, problems=None) -> dict[str, Any]:
  """Trains (or loads) the search-trace policy, evaluates budget forcing and NoThinking.

  With ``config.trace_init == "policy"`` the trace policy starts from the direct-answer policy
  (``policy_params``, else ``models.train_policy``), its vocabulary grown by the trace symbols
  (the character ids it knows stay the same). ``problems`` are ``models.problem_sets(config)``
  when the caller has them.
  """
  train, _, val = problems or models.problem_sets(config)
  t0 = time.perf_counter()
  pretrained = models.trace_start(config, train, workdir, resume=resume,
                                  policy_params=policy_params)
  mcfg = config.trace_model_config()
  batch = countdown_data.trace_sft_batch(train, config.trace_max_len)
  params = models.fit_lm(os.path.join(workdir, "trace_policy"), mcfg, config.trace_policy,
                         batch, resume=resume, pretrained=pretrained)
  t1 = time.perf_counter()
  # A self-closed span writes the answer prefix itself: room for it and every step.
  answer_len = len(countdown_data.ANSWER_PREFIX) + config.max_steps * config.step_len
  sampler = lm.make_thinking_sampler(
      mcfg, params, answer_len, config.temperature, countdown_data.trace_tokenizer(),
      think_open=countdown_data.THINK_OPEN, think_close=countdown_data.THINK_CLOSE,
      answer_prefix=countdown_data.ANSWER_PREFIX)
  out = evaluate_thinking(sampler, val, config.thinking_budgets, config.thinking_samples,
                          jax.random.PRNGKey(config.seed + 13), max_len=config.max_len,
                          max_rows=config.max_rows)
  out.update(trace_rows=int(batch.tokens.shape[0]), trace_init=config.trace_init,
             seconds={"train": t1 - t0, "evaluate": time.perf_counter() - t1})
  return out
