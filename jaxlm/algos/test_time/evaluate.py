"""Every search strategy at every budget on the validation questions, judged by the verifier.

A budget N is the number of samples (best-of-N) or beams (beam search, DVTS) per question, the
per-round generation budget of Snell et al. 2024; lookahead spends k extra greedy steps per
scored step on top. Votes count candidates by their answer: by default the whole written
solution (identical step lines), or with ``vote_on="number"`` the number a solution arrives at
(``countdown.final_number``, as a math answer is its final value; a sample that reaches the
target with wrong arithmetic votes for the target but is still wrong). The exact verifier
``countdown.verify`` decides correctness.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.algos.test_time.config import STRATEGIES, Config, check_vote_on, result_names
from jaxlm.envs import countdown
from jaxlm.envs import countdown_data
from jaxlm.search import lm, select, synthetic, tree


@functools.partial(jax.jit, static_argnames=("num_samples", "beam_width", "num_groups",
                                             "max_steps", "lookahead"))
def _search(rng, prompts, propose, score, rollout, *, num_samples, beam_width, num_groups,
            max_steps, lookahead):
  return tree.tree_search(rng, prompts, propose, score, num_samples=num_samples,
                          beam_width=beam_width, num_groups=num_groups, max_steps=max_steps,
                          rollout=rollout if lookahead else None, lookahead=lookahead)


_select = jax.jit(synthetic.select_answer, static_argnums=0)


def search_shape(kind: str, n: int, beam_width: int) -> tuple[int, int]:
  """(M, G) of ``tree.tree_search`` for a strategy kind at budget N."""
  m = min(beam_width, n)
  if kind in ("greedy", "best_of_n"):
    return 1, n
  if n % m:
    raise ValueError(f"budget N={n} is not a multiple of beam width {m}")
  return m, (1 if kind == "beam" else n // m)


class Judge:
  """Host side: decodes candidates, verifies them (cached) and canonicalises answers."""

  def __init__(self, problems: Sequence[countdown.Problem], prompt_lengths: np.ndarray,
               vote_on: str = "solution"):
    check_vote_on(vote_on)
    self.problems, self.starts, self.vote_on = problems, np.asarray(prompt_lengths), vote_on
    self.tok, self.cache = countdown_data.tokenizer(), {}

  def _answer(self, text: str) -> str | None:
    if self.vote_on == "solution":
      return "\n".join(line.strip() for line in text.splitlines() if line.strip())
    number = countdown.final_number(text)
    return None if number is None else str(number)

  def __call__(self, question: int, tokens_L: np.ndarray, length: int, done: bool
               ) -> tuple[bool, str | None]:
    """(correct, canonical answer or None if unfinished or without a final number)."""
    text = self.tok.decode(tokens_L[self.starts[question]:length])
    key = (question, text)
    if key not in self.cache:
      self.cache[key] = countdown.verify(self.problems[question], text)[0], self._answer(text)
    correct, answer = self.cache[key]
    return correct, (answer if done else None)


@dataclasses.dataclass(frozen=True)
class Pool:
  """K judged candidates per question; consecutive groups of N are independent searches."""
  correct: np.ndarray  # [Q, K] bool
  answers: np.ndarray  # [Q, K] object: canonical answer or None
  scores: np.ndarray  # [Q, K]
  valid: np.ndarray  # [Q, K] bool


def run_pool(config: Config, prompts: tree.Prefixes, judge: Judge, copies: int,
             propose: lm.StepSampler, rng: jax.Array, *, scorer: lm.PRMScorer,
             rollout: lm.StepSampler, num_samples: int, beam_width: int, num_groups: int,
             lookahead: int = 0) -> Pool:
  """``copies`` independent searches per question, chunked to ``config.max_rows`` rows a call."""
  num_q = prompts.lengths.shape[0]
  questions = np.repeat(np.arange(num_q), copies)
  chunk = max(1, min(len(questions), config.max_rows // num_samples))
  padded = np.concatenate([questions, np.zeros(-len(questions) % chunk, np.int64)])
  parts = []
  for start in range(0, len(padded), chunk):
    rows = padded[start:start + chunk]
    result = _search(jax.random.fold_in(rng, start), jax.tree.map(lambda x: x[rows], prompts),
                     propose, scorer, rollout, num_samples=num_samples, beam_width=beam_width,
                     num_groups=num_groups, max_steps=config.max_steps, lookahead=lookahead)
    parts.append(jax.tree.map(np.asarray, result))
  result = jax.tree.map(lambda *x: np.concatenate(x)[:len(questions)], *parts)
  p = result.prefixes
  correct = np.zeros(p.lengths.shape, bool)
  answers = np.empty(p.lengths.shape, object)
  for i, j in np.ndindex(*p.lengths.shape):
    correct[i, j], answers[i, j] = judge(questions[i], p.tokens[i, j], p.lengths[i, j],
                                         p.done[i, j])
  as_qk = lambda x: x.reshape(num_q, copies * num_samples)
  return Pool(as_qk(correct), as_qk(answers), as_qk(result.scores), as_qk(result.valid))


def pool_accuracy(pool: Pool, n: int, selections: Sequence[str]) -> dict[str, np.ndarray]:
  """Per question, the mean over its groups of N candidates of each selection's correctness,
  of pass@1 (fraction of valid candidates correct) and of coverage (any correct)."""
  q, k = pool.correct.shape
  if k % n:
    raise ValueError(f"a pool of {k} candidates per question cannot be split into groups of {n}")
  group = lambda x: x.reshape(q * (k // n), n)
  correct, valid = group(pool.correct), group(pool.valid)
  ids = jnp.asarray(select.canonical_answer_ids(group(pool.answers).tolist()))
  out = {s: np.take_along_axis(correct, np.asarray(_select(
      s, jnp.asarray(group(pool.scores)), ids, jnp.asarray(valid)))[:, None], axis=1)[:, 0]
         for s in selections}
  out["pass1"] = (correct & valid).sum(1) / np.maximum(valid.sum(1), 1)
  out["coverage"] = (correct & valid).any(1)
  return {key: v.reshape(q, k // n).mean(axis=1) for key, v in out.items()}


def evaluate_strategies(config: Config, prompts: tree.Prefixes, judge: Judge,
                        sampler: lm.StepSampler, greedy: lm.StepSampler, scorer: lm.PRMScorer,
                        rng: jax.Array) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
  """Accuracy per question [Q, B] for every result name, and extras (pass@1, coverage, time,
  and the PRM's AUC: how well its final score ranks correct above wrong best-of-N samples).

  Best-of-N draws max(budgets) samples once and scores every budget N on disjoint groups of N
  (max(budgets) / N repeats); DVTS likewise pools its width-M subtrees for N >= M. Beam and
  lookahead search run per budget (``config.max_repeats``). Greedy ignores N.
  """
  budgets, nmax, width = sorted(config.budgets), max(config.budgets), config.beam_width
  acc: dict[str, np.ndarray] = {}
  extras: dict[str, Any] = {"seconds": {}, "coverage": {}, "pass1_QxB": None,
                            "prm_auc": None}
  num_q = prompts.lengths.shape[0]
  for s, name in enumerate(config.strategies):
    strategy, t0 = STRATEGIES[name], time.perf_counter()
    key = jax.random.fold_in(rng, s)
    run = functools.partial(run_pool, config, prompts, judge, rollout=greedy, scorer=scorer)
    pools = {}
    if strategy.kind == "greedy":
      pool = run(1, greedy, key, num_samples=1, beam_width=1, num_groups=1)
      pools = {n: pool for n in budgets}
    elif strategy.kind == "best_of_n":
      pool = run(nmax, sampler, key, num_samples=1, beam_width=1, num_groups=1)
      pools = {n: pool for n in budgets}
      auc = select.ranking_auc(pool.scores[pool.valid], pool.correct[pool.valid])
      extras["prm_auc"] = None if np.isnan(auc) else auc  # None: all right or all wrong
      logging.info("PRM AUC on %d validation samples: %.3f", pool.valid.sum(), auc)
    elif strategy.kind == "dvts" and not nmax % width:  # N / M subtrees = N / M width-M beams
      pool = run(nmax // width, sampler, key, num_samples=width, beam_width=width,
                 num_groups=1)
      pools = {n: pool for n in budgets if n >= width}
    for b, n in enumerate(budgets):
      if n not in pools:  # beam / lookahead (and DVTS below M, which is beam search)
        m, g = search_shape(strategy.kind, n, width)
        copies = max(1, min(config.max_repeats, nmax // n))
        pools[n] = run(copies, sampler, jax.random.fold_in(key, b), num_samples=n,
                       beam_width=m, num_groups=g,
                       lookahead=config.lookahead if strategy.lookahead else 0)
      out = pool_accuracy(pools[n], 1 if strategy.kind == "greedy" else n, strategy.selections)
      for result_name, sel in zip(result_names(name), strategy.selections):
        acc.setdefault(result_name, np.zeros((num_q, len(budgets))))[:, b] = out[sel]
      if strategy.kind == "best_of_n":
        if extras["pass1_QxB"] is None:
          extras["pass1_QxB"] = np.zeros((num_q, len(budgets)))
        extras["pass1_QxB"][:, b] = out["pass1"]
        extras["coverage"][n] = float(out["coverage"].mean())
      logging.info("%s N=%d: %s (%.0fs so far)", name, n, ", ".join(
          f"{k}={acc[k][:, b].mean():.3f}" for k in result_names(name)),
                   time.perf_counter() - t0)
    extras["seconds"][name] = time.perf_counter() - t0
  return acc, extras
