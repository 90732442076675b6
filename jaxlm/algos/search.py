"""Test-time compute on Countdown with a transformer policy and PRM (Snell et al. 2024).

This module plugs the models of ``jaxlm.algos.prm`` into the model-free search of
``jaxlm.search.tree`` (it lives in ``algos`` because it trains; ``jaxlm.search`` stays pure):

* ``StepSampler`` is the ``propose(rng, prefixes[P], n) -> steps[P, n]`` of the tree search: it
  left-aligns the fixed-shape prefix buffers and calls ``jaxlm.generate`` (jitted KV-cache
  decode) until the step delimiter (newline) or <eos>, which finishes a solution.
* ``PRMScorer`` is ``score(prefixes[P]) -> values[P]``: the PRM's sigmoid value at each
  prefix's last token.
* ``train_and_evaluate`` trains (or, with ``resume``, loads) the policy and the PRM, then runs
  greedy decoding, best-of-N (naive / majority / PRM-weighted vote), PRM beam search, lookahead
  search and DVTS at every budget N, bins validation questions by difficulty (oracle pass@1),
  runs the cross-validated compute-optimal selector (``jaxlm.search.compute_optimal``) and
  writes ``results.json`` ({strategy: {N: accuracy}}), ``report.json`` (per-bin tables,
  coverage, timings) and accuracy-vs-budget plots.
* ``ThinkingSampler`` / ``budget_forcing_experiment``: a policy trained on search traces
  ("{<trace>}Answer:\n<solution>", ``prm_lib.trace_sft_batch``) decoded with budget forcing
  (``tree.budget_force``: at most B thinking tokens, then "}Answer:\n" is forced) and with
  NoThinking (``tree.nothinking_prefill`` of "{}Answer:\n"), Ma et al. 2025; pass@k of both and
  their token costs go to ``budget_forcing.json``.

A budget N is the number of samples (best-of-N) or beams (beam search, DVTS) per question, the
per-round generation budget of Snell et al.; lookahead spends k extra greedy steps per scored
step on top. Votes count candidates by their answer: by default the whole written solution
(identical step lines), or with ``vote_on="number"`` the number a solution arrives at
(``countdown.final_number``, as a math answer is its final value; a sample that reaches the
target with wrong arithmetic votes for the target but is still wrong). The exact verifier
``countdown.verify`` decides correctness.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Any, Callable, Sequence

from absl import logging
import chex
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import generation
from jaxlm.algos import offline
from jaxlm.algos import prm as prm_lib
from jaxlm.envs import countdown
from jaxlm.models import Transformer, TransformerConfig
from jaxlm.search import compute_optimal, passk, select, synthetic, tree


VOTE_ON = ("number", "solution")
TRACE_INIT = ("policy", "scratch")


def _check_vote_on(vote_on: str) -> None:
  if vote_on not in VOTE_ON:
    raise ValueError(f"vote_on must be one of {VOTE_ON}, got {vote_on!r}")


@dataclasses.dataclass(frozen=True)
class Config:
  """Countdown test-time-compute experiment.

  Attributes:
    seed: problems, training and search randomness.
    num_numbers: starting-number counts k mixed in every split (the difficulty knob).
    max_number: largest starting number.
    min_target, max_target: target range.
    train_problems: problems for the policy's behaviour cloning.
    solutions_per_problem: random solver solutions per training problem.
    prm_problems: further training problems whose policy samples get Monte-Carlo labels.
    prm_samples: policy solutions sampled per PRM problem.
    prm_rollouts: rollouts per step prefix (the soft label's denominator).
    prm_references: reference (solver) solutions per PRM problem, labelled by the same
      rollouts (``prm_lib.label_solutions``).
    prm_label: the PRM's target, "soft" (fraction of rollouts that succeed) or "hard" (1 if
      any does), Math-Shepherd's SE and HE (``prm_lib.estimate_labels``).
    eval_problems: validation questions.
    write_pool: the policy writes the numbers left after every step ("7*5=35|3 35"), so a
      state's solvability is a function of the step's own line (for the policy and the PRM).
    near_miss_fraction: share of the policy's training rows that are honest failed attempts
      (random moves, the closest last result written as it is), so the policy computes its last
      step instead of always claiming the target.
    max_len: prefix buffer length (prompt + solution tokens).
    step_len: most tokens in one step (newline included).
    model: the transformer of the policy and of the PRM trunk (vocab_size, max_len set here).
    policy: policy training run.
    prm: PRM training run.
    temperature: sampling temperature of proposals.
    vote_on: what a vote counts as the same answer: "solution" (identical written step
      lines) or "number" (the number a solution arrives at).
    budgets: N values.
    strategies: names among STRATEGIES.
    beam_width: M of beam search, lookahead and DVTS (min(M, N) at small N).
    lookahead: k greedy rollout steps per scored step in lookahead search.
    max_repeats: a budget N is run max(1, min(max_repeats, max(budgets) // N)) times per
      question (lower variance at small N).
    max_rows: candidate rows per search call (questions are chunked).
    num_bins: difficulty bins (bin 0 is the hardest).
    num_folds: cross-validation folds of the compute-optimal selector.
    difficulty_samples: policy samples per validation question, independent of the evaluated
      ones, whose mean correctness (oracle pass@1) bins the questions by difficulty; 0 reuses
      the best-of-N pool (then a bin's best-of-N accuracy is biased by its own definition).
    thinking_budgets: thinking-token budgets B of budget forcing; empty skips the search-trace
      policy and the budget-forcing / NoThinking evaluation.
    thinking_samples: samples per validation question in that evaluation (pass@k, k <= this).
    trace_max_len: buffer of a search-trace training row (longer traces are dropped).
    trace_policy: training run of the search-trace policy.
    trace_init: "policy" starts the search-trace policy from the direct-answer policy (trained
      first with ``policy``), "scratch" from a random init.
  """
  seed: int = 0
  num_numbers: tuple[int, ...] = (4,)
  max_number: int = 9
  min_target: int = 10
  max_target: int = 40
  train_problems: int = 4000
  solutions_per_problem: int = 4
  prm_problems: int = 512
  prm_samples: int = 2
  prm_rollouts: int = 8
  prm_references: int = 0
  prm_label: str = "soft"
  eval_problems: int = 100
  write_pool: bool = True
  near_miss_fraction: float = 0.1
  max_len: int = 64
  step_len: int = 20
  model: TransformerConfig = TransformerConfig(d_model=64, n_layers=2, n_heads=4, d_ff=256,
                                               pos="rope")
  policy: prm_lib.TrainConfig = prm_lib.TrainConfig()
  prm: prm_lib.TrainConfig = prm_lib.TrainConfig(num_steps=500)
  temperature: float = 1.0
  vote_on: str = "solution"
  budgets: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
  strategies: tuple[str, ...] = ("greedy", "best_of_n", "beam", "lookahead", "dvts")
  beam_width: int = 4
  lookahead: int = 1
  max_repeats: int = 4
  max_rows: int = 2048
  num_bins: int = 5
  num_folds: int = 5
  difficulty_samples: int = 32
  thinking_budgets: tuple[int, ...] = ()
  thinking_samples: int = 8
  trace_max_len: int = 352
  trace_policy: prm_lib.TrainConfig = prm_lib.TrainConfig(batch_size=32)
  trace_init: str = "policy"

  def __post_init__(self):
    unknown = sorted(set(self.strategies) - set(STRATEGIES))
    if unknown:
      raise ValueError(f"strategies {unknown} unknown; choose from {sorted(STRATEGIES)}")
    if self.thinking_budgets and min(self.thinking_budgets) < 1:
      raise ValueError(f"thinking_budgets must be positive, got {self.thinking_budgets}")
    if self.thinking_samples < 1:
      raise ValueError(f"thinking_samples must be >= 1, got {self.thinking_samples}")
    if not self.budgets or min(self.budgets) < 1:
      raise ValueError(f"budgets must be positive, got {self.budgets}")
    _check_vote_on(self.vote_on)
    if self.prm_label not in prm_lib.PRM_LABELS:
      raise ValueError(f"prm_label must be one of {prm_lib.PRM_LABELS}, got {self.prm_label!r}")
    if self.trace_init not in TRACE_INIT:
      raise ValueError(f"trace_init must be one of {TRACE_INIT}, got {self.trace_init!r}")
    if self.eval_problems < max(self.num_bins, self.num_folds):
      raise ValueError(f"eval_problems={self.eval_problems} must be >= num_bins and num_folds")

  @property
  def max_steps(self) -> int:
    return max(self.num_numbers) - 1

  def model_config(self) -> TransformerConfig:
    return dataclasses.replace(self.model, vocab_size=prm_lib.tokenizer().vocab_size,
                               max_len=self.max_len)


# ---------------------------------------------------------------------------------------------
# propose and score.


def encode_prompts(problems: Sequence[countdown.Problem], max_len: int, *, tok=None,
                   suffix: str = "") -> tree.Prefixes:
  """Right-padded prompt buffers [Q, max_len] (``tok`` defaults to ``prm_lib.tokenizer()``;
  ``suffix`` is appended, e.g. THINK_OPEN for the search-trace policy)."""
  tok = tok or prm_lib.tokenizer()
  ids = [prm_lib.encode_prompt(tok, p) + tok.encode(suffix) for p in problems]
  if max(map(len, ids)) >= max_len:
    raise ValueError(f"a prompt needs {max(map(len, ids))} tokens; max_len={max_len} is too small")
  tokens = np.full((len(ids), max_len), tok.pad_id, np.int32)
  for q, x in enumerate(ids):
    tokens[q, :len(x)] = x
  return tree.Prefixes(tokens, np.array([len(x) for x in ids], np.int32),
                       np.zeros(len(ids), bool))


def left_align(tokens_BxL: jax.Array, lengths_B: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Right-padded rows (valid up to lengths) -> left-padded rows and their mask."""
  chex.assert_rank([tokens_BxL, lengths_B], [2, 1])
  length = tokens_BxL.shape[1]
  pos_L = jnp.arange(length)
  idx_BxL = (pos_L[None, :] + lengths_B[:, None]) % length
  mask_BxL = pos_L[None, :] >= length - lengths_B[:, None]
  return jnp.take_along_axis(tokens_BxL, idx_BxL, axis=1), mask_BxL.astype(jnp.int32)


@flax.struct.dataclass
class StepSampler:
  """``tree.ProposeFn``: sample one step per prefix and proposal with the policy.

  Attributes:
    params: policy parameters (a pytree leaf set: jit traces them, no recompiles).
    model: the policy Transformer.
    step_len: most tokens per step.
    temperature: 0 for greedy decoding.
    delimiter_id: the step delimiter (newline); eos_id finishes the solution.
  """
  params: Any
  model: Transformer = flax.struct.field(pytree_node=False)
  step_len: int = flax.struct.field(pytree_node=False)
  temperature: float = flax.struct.field(pytree_node=False)
  delimiter_id: int = flax.struct.field(pytree_node=False)
  eos_id: int = flax.struct.field(pytree_node=False)
  pad_id: int = flax.struct.field(pytree_node=False, default=0)

  def __call__(self, rng: jax.Array, prefixes: tree.Prefixes, n: int) -> tree.Steps:
    chex.assert_rank(prefixes.tokens, 2)
    p, length = prefixes.tokens.shape
    tokens_BxL = jnp.repeat(prefixes.tokens, n, axis=0)
    lengths_B = jnp.repeat(prefixes.lengths, n)
    left_BxL, mask_BxL = left_align(tokens_BxL, lengths_B)
    room_B = jnp.where(jnp.repeat(prefixes.done, n), 0,
                       jnp.clip(length - lengths_B, 0, self.step_len))
    out = generation.generate(
        self.model, self.params, left_BxL, mask_BxL, rng=rng, max_new_tokens=self.step_len,
        temperature=self.temperature, stop_tokens=(self.delimiter_id, self.eos_id),
        max_lengths_B=room_B, pad_id=self.pad_id)
    last_B = jnp.take_along_axis(out.tokens_BxN, jnp.maximum(out.lengths_B - 1, 0)[:, None],
                                 axis=1)[:, 0]
    done_B = (last_B == self.eos_id) | ~out.done_B  # <eos>, or a step that never ended
    return tree.Steps(out.tokens_BxN.reshape(p, n, self.step_len),
                      out.lengths_B.reshape(p, n), done_B.reshape(p, n))


def make_sampler(model_config: TransformerConfig, params: Any, step_len: int,
                 temperature: float) -> StepSampler:
  tok = prm_lib.tokenizer()
  return StepSampler(params, Transformer(model_config), step_len, temperature,
                     tok.encode(prm_lib.STEP_DELIMITER)[0], tok.eos_id, tok.pad_id)


@flax.struct.dataclass
class PRMScorer:
  """``tree.ScoreFn``: the PRM's probability of success at each prefix's last token."""
  params: Any
  values_fn: Callable = flax.struct.field(pytree_node=False)

  def __call__(self, prefixes: tree.Prefixes) -> jax.Array:
    chex.assert_rank(prefixes.tokens, 2)
    mask_BxL = jnp.arange(prefixes.tokens.shape[1])[None, :] < prefixes.lengths[:, None]
    v_BxL = self.values_fn(self.params, prefixes.tokens, mask_BxL.astype(jnp.int32))
    return jnp.take_along_axis(v_BxL, (prefixes.lengths - 1)[:, None], axis=1)[:, 0]


# ---------------------------------------------------------------------------------------------
# Strategies.


@dataclasses.dataclass(frozen=True)
class Strategy:
  """A search family: kind in {"greedy", "best_of_n", "beam", "dvts"}, its selections."""
  kind: str
  selections: tuple[str, ...] = ("weighted",)
  lookahead: bool = False


STRATEGIES = {
    "greedy": Strategy("greedy", ("naive",)),
    "best_of_n": Strategy("best_of_n", synthetic.SELECTIONS),
    "beam": Strategy("beam"),
    "lookahead": Strategy("beam", lookahead=True),
    "dvts": Strategy("dvts"),
}


def result_names(name: str) -> list[str]:
  """Result keys of a strategy: one per selection when it has several."""
  sels = STRATEGIES[name].selections
  return [f"{name}_{s}" for s in sels] if len(sels) > 1 else [name]


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
    _check_vote_on(vote_on)
    self.problems, self.starts, self.vote_on = problems, np.asarray(prompt_lengths), vote_on
    self.tok, self.cache = prm_lib.tokenizer(), {}

  def _answer(self, text: str) -> str | None:
    if self.vote_on == "solution":
      return "\n".join(line.strip() for line in text.splitlines() if line.strip())
    number = countdown.final_number(text)
    return None if number is None else str(number)

  def __call__(self, question: int, tokens_L: np.ndarray, length: int, done: bool
               ) -> tuple[bool, str | None]:
    """(correct, canonical answer or None if unfinished or without a final number)."""
    text = prm_lib.solution_text(self.tok, tokens_L, self.starts[question], length)
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
             propose: StepSampler, rng: jax.Array, *, scorer: PRMScorer, rollout: StepSampler,
             num_samples: int, beam_width: int, num_groups: int, lookahead: int = 0) -> Pool:
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
                        sampler: StepSampler, greedy: StepSampler, scorer: PRMScorer,
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


# ---------------------------------------------------------------------------------------------
# Budget forcing and NoThinking (Ma et al. 2025) with a search-trace policy.


@flax.struct.dataclass
class ThinkingSampler:
  """Budget-forced decoding of a policy trained on "<prompt>{<trace>}Answer:\n<solution>".

  ``thinking`` (prompts end with THINK_OPEN): decode at most ``budget`` thinking tokens, stopping
  at THINK_CLOSE; where the span is still open, ``tree.budget_force`` writes THINK_CLOSE and the
  answer prefix; then decode the answer. ``nothinking``: ``tree.nothinking_prefill`` appends a
  closed thinking span and the answer prefix to prompts without THINK_OPEN, then decodes the
  answer. Both return the full sequences and the tokens generated per row (forced tokens
  included), the token cost that Ma et al. match between the two modes.

  Attributes:
    params: policy parameters.
    model: the policy Transformer.
    answer_len: most answer tokens after the answer prefix.
    temperature: sampling temperature (0: greedy).
    think_open, think_close, eos_id, pad_id: token ids.
    forced_ids: THINK_CLOSE + answer prefix, written by budget forcing.
    prefill_ids: THINK_OPEN + THINK_CLOSE + answer prefix, the NoThinking pre-fill.
  """
  params: Any
  model: Transformer = flax.struct.field(pytree_node=False)
  answer_len: int = flax.struct.field(pytree_node=False)
  temperature: float = flax.struct.field(pytree_node=False)
  think_open: int = flax.struct.field(pytree_node=False)
  think_close: int = flax.struct.field(pytree_node=False)
  eos_id: int = flax.struct.field(pytree_node=False)
  pad_id: int = flax.struct.field(pytree_node=False)
  forced_ids: tuple[int, ...] = flax.struct.field(pytree_node=False)
  prefill_ids: tuple[int, ...] = flax.struct.field(pytree_node=False)

  def _continue(self, rng, prefixes: tree.Prefixes, max_new: int, stop: tuple[int, ...]):
    """Decode up to max_new tokens after each prefix; returns the generated tokens [B, max_new]
    and lengths (0 for rows already done)."""
    left_BxL, mask_BxL = left_align(prefixes.tokens, prefixes.lengths)
    out = generation.generate(
        self.model, self.params, left_BxL, mask_BxL, rng=rng, max_new_tokens=max_new,
        temperature=self.temperature, stop_tokens=stop, pad_id=self.pad_id,
        max_lengths_B=jnp.where(prefixes.done, 0, max_new))
    return out.tokens_BxN, out.lengths_B

  def _answer(self, rng, tokens_BxL, lengths_B, done_B, spent_B):
    tokens_BxL = jnp.pad(tokens_BxL, ((0, 0), (0, self.answer_len)), constant_values=self.pad_id)
    new_BxN, new_B = self._continue(rng, tree.Prefixes(tokens_BxL, lengths_B, done_B),
                                    self.answer_len, (self.eos_id,))
    tokens_BxL, lengths_B = tree.write_tokens(tokens_BxL, lengths_B, new_BxN, new_B)
    return tree.Prefixes(tokens_BxL, lengths_B, jnp.ones_like(done_B)), spent_B + new_B

  def thinking(self, rng: jax.Array, prompts: tree.Prefixes, budget: int
               ) -> tuple[tree.Prefixes, jax.Array, jax.Array]:
    """Prompts [B] (right-padded, ending with THINK_OPEN) -> (sequences, generated tokens [B],
    forced [B])."""
    chex.assert_rank(prompts.tokens, 2)
    k_think, k_answer = jax.random.split(rng)
    f = len(self.forced_ids)
    think_BxN, think_B = self._continue(k_think, prompts, budget, (self.think_close, self.eos_id))
    think_BxN = jnp.pad(think_BxN, ((0, 0), (0, f)), constant_values=self.pad_id)
    # A row that wrote <eos> inside its thinking has ended: it is neither forced nor answered.
    ended_B = prompts.done | jnp.any(think_BxN == self.eos_id, axis=1)
    forced_BxN, forced_len_B, forced_B = tree.budget_force(
        think_BxN, think_B, budget=budget, think_open=self.think_open,
        think_close=self.think_close, forced_ids=self.forced_ids, pad_id=self.pad_id)
    think_BxN = jnp.where(ended_B[:, None], think_BxN, forced_BxN)
    think_B = jnp.where(ended_B, think_B, forced_len_B)
    tokens_BxL = jnp.pad(prompts.tokens, ((0, 0), (0, budget + f)), constant_values=self.pad_id)
    tokens_BxL, lengths_B = tree.write_tokens(tokens_BxL, prompts.lengths, think_BxN, think_B)
    seqs, spent_B = self._answer(k_answer, tokens_BxL, lengths_B, ended_B, think_B)
    return seqs, spent_B, forced_B & ~ended_B

  def nothinking(self, rng: jax.Array, prompts: tree.Prefixes) -> tuple[tree.Prefixes, jax.Array]:
    """Prompts [B] without THINK_OPEN -> (sequences, generated tokens [B], pre-fill included)."""
    chex.assert_rank(prompts.tokens, 2)
    f = len(self.prefill_ids)
    tokens_BxL = jnp.pad(prompts.tokens, ((0, 0), (0, f)), constant_values=self.pad_id)
    tokens_BxL, lengths_B = tree.nothinking_prefill(tokens_BxL, prompts.lengths,
                                                    self.prefill_ids)
    return self._answer(rng, tokens_BxL, lengths_B, prompts.done,
                        jnp.full(lengths_B.shape, f, jnp.int32))


def make_thinking_sampler(model_config: TransformerConfig, params: Any, answer_len: int,
                          temperature: float) -> ThinkingSampler:
  """A ThinkingSampler with the ids of ``prm_lib.trace_tokenizer``."""
  tok = prm_lib.trace_tokenizer()
  ids = lambda text: tuple(tok.encode(text))
  close_answer = ids(prm_lib.THINK_CLOSE + prm_lib.ANSWER_PREFIX)
  return ThinkingSampler(params, Transformer(model_config), answer_len, temperature,
                         ids(prm_lib.THINK_OPEN)[0], ids(prm_lib.THINK_CLOSE)[0], tok.eos_id,
                         tok.pad_id, close_answer, ids(prm_lib.THINK_OPEN) + close_answer)


def evaluate_thinking(sampler: ThinkingSampler, problems: Sequence[countdown.Problem],
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
  tok = prm_lib.trace_tokenizer()
  modes = [(None, encode_prompts(problems, max_len, tok=tok))]
  thinking_prompts = encode_prompts(problems, max_len, tok=tok, suffix=prm_lib.THINK_OPEN)
  modes += [(int(b), thinking_prompts) for b in budgets]
  questions = np.repeat(np.arange(len(problems)), num_samples)
  ks = [1 << i for i in range(num_samples.bit_length())]
  think_fn = jax.jit(ThinkingSampler.thinking, static_argnums=3)
  nothink_fn = jax.jit(ThinkingSampler.nothinking)
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


# ---------------------------------------------------------------------------------------------
# The experiment.


def _problem_sets(config: Config):
  kw = dict(max_number=config.max_number, min_target=config.min_target,
            max_target=config.max_target)
  train = prm_lib.make_problems(config.num_numbers, config.train_problems, "train", config.seed,
                                **kw)
  # PRM questions: training-split problems the policy did not see first, then (small k has few
  # problems) the policy's own; validation stays disjoint either way.
  seen = set(train)
  extra = prm_lib.make_problems(config.num_numbers, 2 * config.prm_problems, "train",
                                config.seed + 1, **kw)
  prm_set = [p for p in extra if p not in seen][:config.prm_problems]
  order = np.random.default_rng(config.seed + 1).permutation(len(train))
  prm_set += [train[i] for i in order[:config.prm_problems - len(prm_set)]]
  val = prm_lib.make_problems(config.num_numbers, config.eval_problems, "validation",
                              config.seed + 2, **kw)
  return train, prm_set, val


def _prm_data(config, workdir, prm_problems, sampler, resume):
  """Monte-Carlo labelled PRM rows, cached in ``workdir/prm_labels.npz``."""
  path = os.path.join(workdir, "prm_labels.npz")
  if resume and os.path.exists(path):
    with np.load(path, allow_pickle=False) as f:
      stats = json.loads(str(f["stats"]))
      return prm_lib.PRMBatch(*(f[k] for k in ("tokens", "attention_mask", "label_mask",
                                               "labels"))), stats
  batch, stats = prm_lib.label_solutions(
      jax.random.PRNGKey(config.seed + 7), encode_prompts(prm_problems, config.max_len),
      prm_problems, sampler, num_samples=config.prm_samples, num_rollouts=config.prm_rollouts,
      max_steps=config.max_steps, chunk=max(1, config.max_rows // config.prm_rollouts),
      num_references=config.prm_references, write_pool=config.write_pool, seed=config.seed + 5)
  os.makedirs(workdir, exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez(tmp, tokens=batch.tokens, attention_mask=batch.attention_mask,
           label_mask=batch.label_mask, labels=batch.labels, stats=json.dumps(stats))
  os.replace(tmp, path)
  return batch, stats


def train_policy(config: Config, train: Sequence[countdown.Problem], workdir: str, *,
                 resume: bool = False) -> Any:
  """Trains (or loads) the direct-answer policy on ``train`` in ``workdir/policy``; returns its
  params."""
  return prm_lib.train_policy(config.model_config(), config.policy, train, config.max_len,
                              workdir, resume=resume,
                              solutions_per_problem=config.solutions_per_problem,
                              write_pool=config.write_pool,
                              near_miss_fraction=config.near_miss_fraction)


def train_models(config: Config, workdir: str, *, resume: bool = False, problems=None):
  """Trains (or loads) the policy and the PRM. Returns (sampler, greedy, scorer, stats).

  ``problems`` are ``_problem_sets(config)`` when the caller has them (they take seconds).
  """
  train, prm_problems, _ = problems or _problem_sets(config)
  mcfg = config.model_config()
  t0 = time.perf_counter()
  policy_params = train_policy(config, train, workdir, resume=resume)
  sampler = make_sampler(mcfg, policy_params, config.step_len, config.temperature)
  greedy = make_sampler(mcfg, policy_params, config.step_len, 0.0)
  t1 = time.perf_counter()
  batch, label_stats = _prm_data(config, workdir, prm_problems, sampler, resume)
  batch = prm_lib.estimate_labels(batch, config.prm_label)
  t2 = time.perf_counter()
  prm_params = prm_lib.train_prm(mcfg, config.prm, batch, policy_params, workdir, resume=resume)
  _, values_fn, _ = prm_lib.prm_networks(mcfg)
  stats = {"prm_labels": label_stats, "seconds": {
      "policy": t1 - t0, "prm_labels": t2 - t1, "prm": time.perf_counter() - t2}}
  return sampler, greedy, PRMScorer(prm_params, values_fn), stats


def budget_forcing_experiment(config: Config, workdir: str, *, resume: bool = False,
                              policy_params: Any = None) -> dict[str, Any]:
  """Trains (or loads) the search-trace policy, evaluates budget forcing and NoThinking.

  With ``config.trace_init == "policy"`` the trace policy starts from the direct-answer policy
  (``policy_params``, else ``train_policy``), its vocabulary grown by the trace symbols (the
  character ids it knows stay the same), as s1 fine-tunes a pretrained model on traces.
  """
  train, _, val = _problem_sets(config)
  t0 = time.perf_counter()
  pretrained = None
  if config.trace_init == "policy":
    pretrained = (policy_params if policy_params is not None
                  else train_policy(config, train, workdir, resume=resume))
  mcfg = dataclasses.replace(config.model_config(), max_len=config.trace_max_len,
                             vocab_size=prm_lib.trace_tokenizer().vocab_size)
  batch = prm_lib.trace_sft_batch(train, config.trace_max_len)
  params = prm_lib.fit_lm("trace_policy", mcfg, config.trace_policy, batch, workdir,
                          resume=resume, pretrained=pretrained)
  t1 = time.perf_counter()
  # A self-closed span writes the answer prefix itself: room for it and every step.
  answer_len = len(prm_lib.ANSWER_PREFIX) + config.max_steps * config.step_len
  sampler = make_thinking_sampler(mcfg, params, answer_len, config.temperature)
  out = evaluate_thinking(sampler, val, config.thinking_budgets, config.thinking_samples,
                          jax.random.PRNGKey(config.seed + 13), max_len=config.max_len,
                          max_rows=config.max_rows)
  out.update(trace_rows=int(batch.tokens.shape[0]), trace_init=config.trace_init,
             seconds={"train": t1 - t0, "evaluate": time.perf_counter() - t1})
  return out


def train_and_evaluate(config: Config, workdir: str, *, resume: bool = False
                       ) -> dict[str, dict[int, float]]:
  """Trains the models, runs every strategy at every budget, selects compute-optimally.

  Writes ``results.json`` ({name: {N: accuracy}} for every strategy/selection, plus
  "compute_optimal", "best_single", "best_single_cv" and "gain_over_best_of_n_weighted"),
  ``report.json`` (the same per difficulty bin, best-of-N coverage, PRM label stats, timings),
  ``accuracy.npz`` (per-question accuracy [Q, strategy, N] and difficulty, for paired
  comparisons), and the plots ``accuracy_vs_budget.png`` and ``accuracy_vs_budget_hard.png``
  (bin 0). With ``config.thinking_budgets`` it also writes ``budget_forcing.json``
  (``budget_forcing_experiment``). With no strategies only that part runs.
  """
  results, policy_params = {}, None
  if config.strategies:
    results, policy_params = search_experiment(config, workdir, resume=resume)
  if config.thinking_budgets:
    os.makedirs(workdir, exist_ok=True)
    offline.write_json(os.path.join(workdir, "budget_forcing.json"),
                       budget_forcing_experiment(config, workdir, resume=resume,
                                                 policy_params=policy_params))
  return results


def search_experiment(config: Config, workdir: str, *, resume: bool = False
                      ) -> tuple[dict[str, dict[int, float]], Any]:
  """The search part of ``train_and_evaluate``: results.json, report.json and the plots.

  Returns the results and the policy's params.
  """
  t0 = time.perf_counter()
  problems = _problem_sets(config)
  sampler, greedy, scorer, stats = train_models(config, workdir, resume=resume,
                                                problems=problems)
  val = problems[2]
  prompts = encode_prompts(val, config.max_len)
  judge = Judge(val, prompts.lengths, config.vote_on)
  t1 = time.perf_counter()
  acc, extras = evaluate_strategies(config, prompts, judge, sampler, greedy, scorer,
                                    jax.random.PRNGKey(config.seed + 11))
  budgets = sorted(config.budgets)
  names = list(acc)
  acc_QxCxB = np.stack([acc[k] for k in names], axis=1)
  if config.difficulty_samples:  # oracle pass@1 from samples independent of the evaluation
    difficulty = run_pool(config, prompts, judge, config.difficulty_samples, sampler,
                          jax.random.PRNGKey(config.seed + 17), scorer=scorer, rollout=greedy,
                          num_samples=1, beam_width=1, num_groups=1).correct.mean(axis=1)
  elif extras["pass1_QxB"] is not None:  # the best-of-N pool itself (biased bins)
    difficulty = extras["pass1_QxB"].mean(axis=1)
  else:
    difficulty = acc_QxCxB.mean(axis=(1, 2))
  ks = np.array([len(p.numbers) for p in val])
  stats["policy_pass1"] = {"all": float(difficulty.mean()),
                           **{f"k={k}": float(difficulty[ks == k].mean()) for k in set(ks)}}
  baseline = "best_of_n_weighted" if "best_of_n_weighted" in names else names[0]
  results = compute_optimal.compute_optimal_report(
      acc_QxCxB, difficulty, names, budgets, baseline=baseline, num_bins=config.num_bins,
      num_folds=config.num_folds, seed=config.seed)
  bins = compute_optimal.difficulty_bins(difficulty, config.num_bins)
  by_bin = {str(k): {name: {int(n): float(acc[name][bins == k, b].mean())
                            for b, n in enumerate(budgets)} for name in names}
            for k in range(config.num_bins)}
  report = {"by_bin": by_bin, "bin_sizes": np.bincount(bins, minlength=config.num_bins).tolist(),
            "bin_mean_pass1": [float(difficulty[bins == k].mean())
                               for k in range(config.num_bins)],
            "best_of_n_coverage": extras["coverage"], "prm_auc": extras["prm_auc"], **stats,
            "search_seconds": extras["seconds"],
            "seconds": {"train": t1 - t0, "search": time.perf_counter() - t1},
            "config": json.loads(json.dumps(dataclasses.asdict(config)))}
  os.makedirs(workdir, exist_ok=True)
  offline.write_json(os.path.join(workdir, "results.json"), results)
  offline.write_json(os.path.join(workdir, "report.json"), report)
  np.savez(os.path.join(workdir, "accuracy.npz"), names=np.array(names),
           budgets=np.array(budgets), accuracy_QxCxB=acc_QxCxB, difficulty_Q=difficulty)
  compute_optimal.plot_accuracy_vs_budget(results, os.path.join(workdir,
                                                                "accuracy_vs_budget.png"),
                                          title="Countdown: accuracy vs budget")
  compute_optimal.plot_accuracy_vs_budget(
      {k: {int(n): v for n, v in c.items()} for k, c in by_bin["0"].items()},
      os.path.join(workdir, "accuracy_vs_budget_hard.png"),
      title="Countdown, hardest bin: accuracy vs budget")
  return results, sampler.params


def results_table(results: dict[str, dict[int, float]]) -> str:
  """Plain-text accuracy table: one row per strategy, one column per budget N."""
  if not results:
    return "(no search strategies run)"
  budgets = sorted(next(iter(results.values())))
  lines = [f"{'strategy':<30}" + "".join(f"{'N=' + str(n):>8}" for n in budgets)]
  lines += [f"{name:<30}" + "".join(f"{curve[n]:>8.3f}" for n in budgets)
            for name, curve in results.items()]
  return "\n".join(lines)


def config_from_dict(d: dict[str, Any]) -> Config:
  """A Config from a nested dict (e.g. a ConfigDict's to_dict()); unknown keys are errors."""
  return offline.config_from_dict(Config, d)
