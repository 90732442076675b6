"""A Countdown policy trained from scratch, and a process reward model (PRM) on Monte-Carlo labels.

Policy. A small character-level transformer learns Countdown (Gandhi et al. 2024; Pan et al.
2025) by behaviour cloning on solutions written by the exhaustive solver of
``jaxlm.envs.countdown``. Each example is

    <bos> "<target>|<n1> <n2> ...\\n" "a op b = c\\n" ... "a op b = c" <eos>

(steps written ``hi op lo=c`` by ``countdown.format_step``; with ``write_pool`` a step also
writes the numbers left, ``hi op lo=c|x y c``, so the state is on the step's own line, as in the
Stream-of-Search traces). A step ends at a newline, the last one at EOS, so a search can sample
one step per call. The prompt is a compact stand-in for ``countdown.prompt`` (the long
instruction text would only cost context on CPU). To give best-of-N something to choose from,
each training solution is drawn at random among the solutions (a uniformly random solvable move
at every step, checked with ``countdown.solve``). Optionally a share of the rows are honest near
misses (random moves, then the closest last result as it is): trained on solutions alone, the
policy ends every attempt with "=<target>" whatever the arithmetic gives, and a verifier must
then recompute the last step to judge it.

PRM. Snell, Lee, Xu, Kumar 2024 ("Scaling LLM Test-Time Compute Optimally", Sec. 5 and App. D)
train a PRM without human labels following Wang et al. 2024 ("Math-Shepherd", Eq. 2, soft
estimation): the label of a step prefix is the fraction of R policy rollouts from it that end in a
verified answer, an unbiased Monte-Carlo estimate of the prefix's value under the policy. The PRM
is a value head (``MLPHead``, out=1, sigmoid) on a transformer trunk initialised from the policy,
fitted with binary cross-entropy to the soft labels at each step's last token:

    L = -mean_steps [ y log sigmoid(v) + (1 - y) log(1 - sigmoid(v)) ].

``monte_carlo_values`` (the label generator) is generic: any ``propose`` sampler and any reward
of finished prefixes, so it also gives Monte-Carlo return targets for other value learners.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Sequence

from absl import logging
import chex
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.algos import bc as bc_lib
from jaxlm.algos import offline
from jaxlm.data import RLBatch, SimpleTokenizer
from jaxlm.envs import countdown
from jaxlm.losses import LMOutputs, bc_loss, masked_mean
from jaxlm.models import Transformer, TransformerConfig
from jaxlm.models.heads import MLPHead
from jaxlm.search import tree

ALPHABET = "0123456789+-*/=| \n"
STEP_DELIMITER = "\n"
# Search-trace format (budget forcing): "{" opens the thinking span (the trace of
# ``countdown.search_trace``), "}" closes it, then ``ANSWER_PREFIX`` and the solution lines.
THINK_OPEN, THINK_CLOSE = "{", "}"
ANSWER_PREFIX = countdown.ANSWER_MARKER + STEP_DELIMITER
TRACE_ALPHABET = ALPHABET + "{}#[]>:.AGN" + "abcdefghijklmnopqrstuvwxyz"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """One training run (the fields ``offline.fit`` reads).

  Attributes:
    num_steps: optimizer updates.
    batch_size: rows per update.
    lr, warmup, weight_decay, clip: AdamW with warmup/cosine schedule and global-norm clip.
    seed: initialisation and data order.
    log_every: steps between logged metrics.
    checkpoint_every: steps between checkpoints (a final one is always written).
    mesh: (data, fsdp, tensor) sizes; -1 fills with the remaining devices.
  """
  num_steps: int = 1000
  batch_size: int = 64
  lr: float = 3e-3
  warmup: int = 50
  weight_decay: float = 0.0
  clip: float = 1.0
  seed: int = 0
  log_every: int = 50
  checkpoint_every: int = 500
  mesh: tuple[int, int, int] = (-1, 1, 1)

  def __post_init__(self):
    for name in ("num_steps", "batch_size", "log_every"):
      if getattr(self, name) < 1:
        raise ValueError(f"TrainConfig.{name}={getattr(self, name)} must be >= 1")


# ---------------------------------------------------------------------------------------------
# Countdown text format.


def tokenizer() -> SimpleTokenizer:
  """Character tokenizer over ALPHABET (ids 0, 1, 2 are pad, eos, bos)."""
  return SimpleTokenizer.chars(ALPHABET)


def encode_prompt(tok: SimpleTokenizer, problem: countdown.Problem) -> list[int]:
  """<bos> "<target>|<numbers>\\n"."""
  return [tok.bos_id] + tok.encode(f"{problem.target}|{' '.join(map(str, problem.numbers))}"
                                   + STEP_DELIMITER)


def encode_solution(tok: SimpleTokenizer, steps: Sequence[str]) -> list[int]:
  """Step lines joined by the delimiter, then <eos>."""
  return tok.encode(STEP_DELIMITER.join(steps)) + [tok.eos_id]


def random_solution(problem: countdown.Problem, rng: np.random.Generator, *,
                    write_pool: bool = False, near_miss: bool = False) -> tuple[str, ...]:
  """A random solution path, or with ``near_miss`` a random honest attempt.

  A solution takes a uniformly random solvable move at every step. A near miss takes uniformly
  random legal moves and, on the last two numbers, the operation whose result is closest to the
  target, written with its true result: a failed attempt when it misses. With ``write_pool``
  each step also writes the numbers left ("7*5=35|3 35").
  """
  pool, steps = list(problem.numbers), []
  while len(pool) > 1:
    moves = [(i, j, op, countdown.apply_op(pool[i], pool[j], op))
             for i in range(len(pool)) for j in range(i + 1, len(pool)) for op in countdown.OPS]
    moves = [moves[k] for k in rng.permutation(len(moves)) if moves[k][3] is not None]
    if near_miss and len(pool) == 2:  # the result closest to the target (stable: random ties)
      moves.sort(key=lambda move: abs(move[3] - problem.target))
    for i, j, op, value in moves:
      child = [x for m, x in enumerate(pool) if m not in (i, j)] + [value]
      if near_miss or countdown.solve(
          countdown.Problem(tuple(sorted(child)), problem.target)) is not None:
        step = countdown.format_step(pool[i], op, pool[j])
        steps.append(step + countdown.POOL_SEPARATOR + countdown.format_pool(child)
                     if write_pool else step)
        pool = child
        break
    else:
      raise ValueError(f"{problem} has no solution")
  return tuple(steps)


def make_problems(num_numbers: Sequence[int], count: int, split: str, seed: int,
                  **countdown_kwargs) -> list[countdown.Problem]:
  """``count`` problems split evenly over the starting-number counts k in ``num_numbers``."""
  out = []
  for i, k in enumerate(num_numbers):
    n = count // len(num_numbers) + (i < count % len(num_numbers))
    cfg = countdown.CountdownConfig(num_numbers=k, **countdown_kwargs)
    out.extend(countdown.generate(cfg, seed * 1000 + k, n, split))
  return out


def trace_tokenizer() -> SimpleTokenizer:
  """Character tokenizer over TRACE_ALPHABET (search traces, think delimiters)."""
  return SimpleTokenizer.chars(TRACE_ALPHABET)


def trace_completion(problem: countdown.Problem, max_expansions: int = 100) -> str | None:
  """The search-trace target after the prompt's THINK_OPEN, or None if the search gave up.

  ``"<trace>}Answer:\n<solution lines>"``: the thinking span is the best-first search trace of
  ``countdown.search_trace`` (nodes, children, backtracking) up to its answer marker.
  """
  result = countdown.search_trace(problem, max_expansions)
  if result.solution is None:
    return None
  think = result.trace.rsplit(countdown.ANSWER_MARKER, 1)[0].rstrip(STEP_DELIMITER)
  return think + THINK_CLOSE + ANSWER_PREFIX + STEP_DELIMITER.join(result.solution)


def sft_batch(problems: Sequence[countdown.Problem], max_len: int, seed: int,
              solutions_per_problem: int = 1, *, write_pool: bool = False,
              near_miss_fraction: float = 0.0) -> RLBatch:
  """Behaviour-cloning rows: the prompt is observation, the solution (with <eos>) the action.

  A ``near_miss_fraction`` of the rows are honest failed attempts (``random_solution`` with
  ``near_miss``; one that would not fit max_len becomes a solution): without them the last step
  of every row equals the target, so the policy learns to write the target there whatever the
  arithmetic gives.
  """
  if not 0.0 <= near_miss_fraction < 1.0:
    raise ValueError(f"near_miss_fraction must be in [0, 1), got {near_miss_fraction}")
  tok, rng = tokenizer(), np.random.default_rng(seed)
  rows = []
  for p in problems:
    prompt = encode_prompt(tok, p)
    for _ in range(solutions_per_problem):
      action = None
      if rng.random() < near_miss_fraction:
        action = encode_solution(tok, random_solution(p, rng, write_pool=write_pool,
                                                      near_miss=True))
        action = action if len(prompt) + len(action) <= max_len else None
      if action is None:
        action = encode_solution(tok, random_solution(p, rng, write_pool=write_pool))
      rows.append((prompt, action))
  return lm_batch(rows, max_len, tok.pad_id)


def trace_sft_batch(problems: Sequence[countdown.Problem], max_len: int,
                    max_expansions: int = 100) -> RLBatch:
  """Rows "<prompt>{" -> "<trace>}Answer:\n<solution>" <eos>; rows longer than max_len are
  dropped (long k >= 4 traces), as are problems the search gave up on."""
  tok = trace_tokenizer()
  rows = []
  for p in problems:
    text = trace_completion(p, max_expansions)
    if text is not None:
      row = (encode_prompt(tok, p) + tok.encode(THINK_OPEN), tok.encode(text) + [tok.eos_id])
      if len(row[0]) + len(row[1]) <= max_len:
        rows.append(row)
  if not rows:
    raise ValueError(f"no search trace of {len(problems)} problems fits max_len={max_len}")
  logging.info("trace SFT: %d of %d problems fit max_len=%d", len(rows), len(problems), max_len)
  return lm_batch(rows, max_len, tok.pad_id)


def lm_batch(rows: Sequence[tuple[list[int], list[int]]], max_len: int, pad_id: int) -> RLBatch:
  """(observation ids, action ids) rows -> a right-padded RLBatch, loss on the actions."""
  tokens = np.full((len(rows), max_len), pad_id, np.int32)
  attn, act = np.zeros((2, len(rows), max_len), np.float32)
  for b, (prompt, solution) in enumerate(rows):
    n = len(prompt) + len(solution)
    if n > max_len:
      raise ValueError(f"example {b} needs {n} tokens > max_len={max_len}")
    tokens[b, :n] = prompt + solution
    attn[b, :n], act[b, len(prompt):n] = 1.0, 1.0
  zeros = np.zeros_like(attn)
  return RLBatch(tokens, attn, act, zeros, zeros).validate()


def train_policy(model_config: TransformerConfig, train: TrainConfig,
                 problems: Sequence[countdown.Problem], max_len: int, workdir: str, *,
                 resume: bool = False, solutions_per_problem: int = 4,
                 write_pool: bool = False, near_miss_fraction: float = 0.0) -> Any:
  """Behaviour cloning of solver solutions (and near misses, see ``sft_batch``); checkpoints in
  ``workdir/policy``. Returns params."""
  batch = sft_batch(problems, max_len, train.seed, solutions_per_problem,
                    write_pool=write_pool, near_miss_fraction=near_miss_fraction)
  return fit_lm("policy", model_config, train, batch, workdir, resume=resume)


def fit_lm(name: str, model_config: TransformerConfig, train: TrainConfig, batch: RLBatch,
           workdir: str, *, resume: bool = False, pretrained: Any = None) -> Any:
  """Behaviour cloning of ``batch``'s actions; checkpoints in ``workdir/name``. Returns params.

  ``pretrained`` params initialise the LM (``bc.lm_networks``: a shorter vocabulary grows).
  """
  _, init_fn, logits_fn = bc_lib.lm_networks(model_config, pretrained)

  def loss_fn(params, batch, rng, *, state):
    del rng, state
    return bc_loss(LMOutputs(logits_fn(params, batch.tokens, batch.attention_mask)), batch)

  state = offline.fit(name, train, workdir, init_fn, loss_fn,
                      offline.RandomBatches(batch, train.batch_size, train.seed), resume=resume)
  return state.params


# ---------------------------------------------------------------------------------------------
# Monte-Carlo value labels.


@flax.struct.dataclass
class StaticFn:
  """A plain function as a pytree without leaves, so jit treats it as static."""
  fn: Callable = flax.struct.field(pytree_node=False)

  def __call__(self, *args):
    return self.fn(*args)


def as_pytree(fn: Callable) -> Callable:
  """Leave pytree callables (e.g. a sampler holding params) alone; wrap plain functions."""
  return StaticFn(fn) if jax.tree.leaves(fn) == [fn] else fn


def zero_score(prefixes: tree.Prefixes) -> jax.Array:
  """A constant scorer, for plain sampling with ``tree.best_of_n_sampling``."""
  return jnp.zeros(prefixes.lengths.shape, jnp.float32)


@functools.partial(jax.jit, static_argnames=("num_samples", "max_steps"))
def _sample(rng, prompts, propose, *, num_samples, max_steps):
  return tree.best_of_n_sampling(rng, prompts, propose, zero_score, num_samples=num_samples,
                                 max_steps=max_steps).prefixes


def sample_completions(rng: jax.Array, prompts: tree.Prefixes, propose: tree.ProposeFn, *,
                       num_samples: int, max_steps: int) -> tree.Prefixes:
  """[P] prefixes -> [P, num_samples] independent completions (jitted; numpy leaves)."""
  out = _sample(rng, prompts, as_pytree(propose), num_samples=num_samples, max_steps=max_steps)
  return jax.tree.map(np.asarray, out)


def monte_carlo_values(rng: jax.Array, prefixes: tree.Prefixes, propose: tree.ProposeFn,
                       reward_fn: Callable[[tree.Prefixes], np.ndarray], *,
                       num_rollouts: int, max_steps: int) -> tuple[np.ndarray, np.ndarray]:
  """Monte-Carlo value of each prefix: the mean reward of ``num_rollouts`` policy completions.

  With a 0/1 verifier reward this is the Math-Shepherd soft label (Wang et al. 2024, Eq. 2):
  the fraction of rollouts from a step prefix that reach a correct answer. With any terminal
  reward it is the Monte-Carlo return target of the prefix (gamma = 1). Finished prefixes are
  not extended, so their value is their own reward.

  Args:
    rng: key for the rollouts.
    prefixes: [P] prefixes to value.
    propose: the policy's step sampler (``tree.ProposeFn``; a pytree or a plain function).
    reward_fn: host function, completions [P, R] (numpy Prefixes) -> rewards [P, R].
    num_rollouts: R completions per prefix.
    max_steps: step cap of a completion.

  Returns:
    (values_P, rewards_PxR) as float64 numpy arrays.
  """
  if num_rollouts < 1:
    raise ValueError(f"num_rollouts must be >= 1, got {num_rollouts}")
  chex.assert_rank(prefixes.tokens, 2)
  completions = sample_completions(rng, prefixes, propose, num_samples=num_rollouts,
                                   max_steps=max_steps)
  rewards_PxR = np.asarray(reward_fn(completions), np.float64)
  if rewards_PxR.shape != completions.lengths.shape:
    raise ValueError(f"reward_fn returned shape {rewards_PxR.shape}, expected "
                     f"{completions.lengths.shape}")
  return rewards_PxR.mean(axis=1), rewards_PxR


def step_ends(tokens_L: np.ndarray, start: int, length: int, delimiters: Sequence[int]
              ) -> np.ndarray:
  """Positions in [start, length) holding a step delimiter (the last token of each step)."""
  pos = np.arange(start, length)
  return pos[np.isin(tokens_L[start:length], delimiters)]


# ---------------------------------------------------------------------------------------------
# The process reward model.


@flax.struct.dataclass
class PRMBatch:
  """Rows of tokens with soft value labels at step ends.

  Attributes:
    tokens: [B, T] int32, right-padded.
    attention_mask: [B, T] float32.
    label_mask: [B, T] float32, 1 at the last token of each labelled step.
    labels: [B, T] float32 in [0, 1], the Monte-Carlo value of the prefix ending there.
  """
  tokens: np.ndarray
  attention_mask: np.ndarray
  label_mask: np.ndarray
  labels: np.ndarray


PRM_LABELS = ("soft", "hard")


def estimate_labels(batch: PRMBatch, kind: str) -> PRMBatch:
  """The two step-label estimates of Math-Shepherd (Wang et al. 2024, Eqs. 1-2) from one set of
  rollouts: "soft" (SE) keeps the fraction of rollouts that succeed, "hard" (HE) is 1 where any
  of them succeeds. A soft label is a mean of 0/1 rewards, so HE = [SE > 0] exactly.

  With the same R rollouts behind every label, HE's expectation 1 - (1 - p)^R is a monotone
  function of SE's p, so in the limit both rank steps alike; on Countdown HE fits worse (see
  experiments/configs/search.py).
  """
  if kind not in PRM_LABELS:
    raise ValueError(f"PRM label kind must be one of {PRM_LABELS}, got {kind!r}")
  if kind == "soft":
    return batch
  hard = ((batch.labels > 0) & (batch.label_mask > 0)).astype(batch.labels.dtype)
  return batch.replace(labels=hard)


def prm_networks(model_config: TransformerConfig):
  """(init_fn(key, trunk_params=None), values_fn(params, tokens, mask) -> probabilities [B, T]).

  Params are {"trunk": transformer, "head": MLPHead(out=1)}; ``values_fn`` applies the sigmoid,
  ``logits_fn`` (third element) returns the pre-sigmoid head output.
  """
  model = Transformer(model_config)
  head = MLPHead(1, out_axis=None, squeeze=True)

  def init_fn(key, trunk_params=None):
    k1, k2 = jax.random.split(key)
    trunk = model.init(k1, jnp.zeros((1, model_config.max_len), jnp.int32))["params"]
    if trunk_params is not None:  # keep the logical-axis boxes, take the policy's values
      trunk = jax.tree.map(lambda box, v: box.replace_boxed(v), trunk,
                           nn.meta.unbox(trunk_params),
                           is_leaf=lambda x: isinstance(x, nn.Partitioned))
    return {"trunk": trunk,
            "head": head.init(k2, jnp.zeros((1, 1, model_config.d_model)))["params"]}

  def logits_fn(params, tokens_BxT, mask_BxT):
    hidden = model.apply({"params": params["trunk"]}, tokens_BxT,
                         attention_mask_BxT=mask_BxT).hidden
    return head.apply({"params": params["head"]}, hidden)

  values_fn = lambda params, tokens, mask: jax.nn.sigmoid(logits_fn(params, tokens, mask))
  return init_fn, values_fn, logits_fn


def prm_loss(logits_BxT: jax.Array, batch: PRMBatch) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Binary cross-entropy to soft labels at labelled positions (Wang et al. 2024, Eq. 2)."""
  chex.assert_equal_shape([logits_BxT, batch.labels, batch.label_mask])
  y_BxT = batch.labels.astype(jnp.float32)
  bce_BxT = -(y_BxT * jax.nn.log_sigmoid(logits_BxT)
              + (1.0 - y_BxT) * jax.nn.log_sigmoid(-logits_BxT))
  loss = masked_mean(bce_BxT, batch.label_mask)
  err = masked_mean(jnp.abs(jax.nn.sigmoid(logits_BxT) - y_BxT), batch.label_mask)
  return loss, {"prm_bce": loss, "prm_abs_err": err}


def train_prm(model_config: TransformerConfig, train: TrainConfig, batch: PRMBatch,
              policy_params: Any, workdir: str, *, resume: bool = False) -> Any:
  """Fits the PRM (trunk initialised from the policy); checkpoints in ``workdir/prm``."""
  init_fn, _, logits_fn = prm_networks(model_config)
  mean = float(np.sum(batch.labels * batch.label_mask) / max(batch.label_mask.sum(), 1.0))
  mean = min(max(mean, 1e-3), 1 - 1e-3)

  def init_with_prior(key):
    params = init_fn(key, policy_params)
    bias = params["head"]["out"]["bias"]  # start at the mean label
    params["head"]["out"]["bias"] = bias.replace_boxed(
        jnp.full(bias.value.shape, np.log(mean / (1 - mean)), jnp.float32))
    return params

  def loss_fn(params, batch, rng, *, state):
    del rng, state
    return prm_loss(logits_fn(params, batch.tokens, batch.attention_mask), batch)

  state = offline.fit("prm", train, workdir, init_with_prior, loss_fn,
                      offline.RandomBatches(batch, train.batch_size, train.seed), resume=resume)
  return state.params


def solution_text(tok: SimpleTokenizer, tokens_L: np.ndarray, start: int, length: int) -> str:
  """The solution written after the prompt (tokens [start, length); <eos>/<pad> dropped)."""
  return tok.decode(tokens_L[start:length])


def label_solutions(rng: jax.Array, prompts: tree.Prefixes,
                    problems: Sequence[countdown.Problem], propose: tree.ProposeFn, *,
                    num_samples: int, num_rollouts: int, max_steps: int, chunk: int = 256,
                    num_references: int = 0, write_pool: bool = False, seed: int = 0
                    ) -> tuple[PRMBatch, dict[str, float]]:
  """PRM training rows: sample solutions from the policy and label every step prefix.

  Rows may also hold reference solutions (``random_solution``, in the policy's format): their
  prefixes are labelled by the same policy rollouts. A weak policy reaches few solvable states
  and fewer correct answers (labels of its own samples are mostly 0); the references add the
  states and answers it rarely reaches, with the values the policy has from them.

  Args:
    rng: key.
    prompts: [Q] question prefixes.
    problems: the Q problems (for the verifier).
    propose: the policy's step sampler (temperature > 0).
    num_samples: sampled solutions per question (each becomes a row).
    num_rollouts: R rollouts per step prefix.
    max_steps: step cap of a solution.
    chunk: prefixes valued per call (fixed shapes: the last chunk is padded).
    num_references: reference solutions per question (rows after the sampled ones).
    write_pool: the references write the numbers left after each step.
    seed: seed of the references.

  Returns:
    (PRMBatch, stats) with stats: rows, labelled steps, mean label and the policy's pass@1 on
    the sampled solutions.
  """
  tok = tokenizer()
  q, length = prompts.tokens.shape
  rng, key = jax.random.split(rng)
  sols = jax.tree.map(lambda x: x.reshape((q * num_samples,) + x.shape[2:]),
                      sample_completions(key, prompts, propose, num_samples=num_samples,
                                         max_steps=max_steps))
  question_B = np.repeat(np.arange(q), num_samples)
  if num_references:
    refs = sft_batch([p for p in problems for _ in range(num_references)], length, seed,
                     write_pool=write_pool)
    ref_lengths = refs.attention_mask.sum(1).astype(np.int32)
    sols = tree.Prefixes(np.concatenate([sols.tokens, refs.tokens]),
                         np.concatenate([sols.lengths, ref_lengths]),
                         np.concatenate([sols.done, np.ones(len(ref_lengths), bool)]))
    question_B = np.concatenate([question_B, np.repeat(np.arange(q), num_references)])
  start_B = np.asarray(prompts.lengths)[question_B]
  delimiters = (tok.encode(STEP_DELIMITER)[0], tok.eos_id)
  owner, ends = [], []  # one prefix per step end of every sampled solution
  for b in range(len(question_B)):
    for t in step_ends(sols.tokens[b], start_B[b], sols.lengths[b], delimiters):
      owner.append(b)
      ends.append(t)
  owner, ends = np.asarray(owner, np.int64), np.asarray(ends, np.int64)
  p, pad = len(owner), -len(owner) % chunk
  rows = np.concatenate([owner, np.full(pad, owner[0] if p else 0)])
  lengths = np.concatenate([ends + 1, np.full(pad, 1)]).astype(np.int32)
  tokens = np.where(np.arange(length)[None] < lengths[:, None], sols.tokens[rows], tok.pad_id)
  done = tokens[np.arange(len(rows)), lengths - 1] == tok.eos_id
  prefixes = tree.Prefixes(tokens, lengths, done)

  def reward_fn(completions, offset):
    out = np.zeros(completions.lengths.shape)
    for i, r in np.ndindex(*out.shape):
      b = rows[offset + i]
      text = solution_text(tok, completions.tokens[i, r], start_B[b], completions.lengths[i, r])
      out[i, r] = countdown.verify(problems[question_B[b]], text)[0]
    return out

  values, t0 = [], time.perf_counter()
  for start in range(0, p + pad, chunk):
    rng, key = jax.random.split(rng)
    part = jax.tree.map(lambda x: x[start:start + chunk], prefixes)
    values.append(monte_carlo_values(key, part, propose,
                                     functools.partial(reward_fn, offset=start),
                                     num_rollouts=num_rollouts, max_steps=max_steps)[0])
    logging.info("PRM labels: %d / %d prefixes (%.0fs)", min(start + chunk, p), p,
                 time.perf_counter() - t0)
  values = np.concatenate(values)[:p] if p else np.zeros(0)
  label_mask, labels = np.zeros((2,) + sols.tokens.shape, np.float32)
  label_mask[owner, ends], labels[owner, ends] = 1.0, values
  attn = (np.arange(length)[None] < sols.lengths[:, None]).astype(np.float32)
  final = done[:p] & (owner < q * num_samples)  # the policy's own answers
  stats = {"rows": float(len(question_B)), "labelled_steps": float(p),
           "mean_label": float(values.mean()) if p else 0.0,
           "final_step_accuracy": float(values[final].mean()) if final.any() else 0.0}
  return PRMBatch(sols.tokens, attn, label_mask, labels), stats
