"""Monte-Carlo value labels of step prefixes: the training data of a process reward model.

Snell, Lee, Xu, Kumar 2024 ("Scaling LLM Test-Time Compute Optimally", Sec. 5 and App. D) train
a PRM without human labels following Wang et al. 2024 ("Math-Shepherd", Eq. 2, soft
estimation): the label of a step prefix is the fraction of R policy rollouts from it that end in
a verified answer, an unbiased Monte-Carlo estimate of the prefix's value under the policy. The
PRM (``jaxlm.search.lm.prm_networks``) is fitted to them with ``jaxlm.losses.prm_loss``.

``monte_carlo_values`` (the label generator) is generic: any ``propose`` sampler and any reward
of finished prefixes, so it also gives Monte-Carlo return targets for other value learners.
``label_solutions`` samples solutions, cuts them at every step end and labels each prefix.
"""

from __future__ import annotations

import functools
import time
from typing import Callable, Sequence

from absl import logging
import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import processors
from jaxlm.losses.prm import PRMBatch
from jaxlm.search import tree

PRM_LABELS = ("soft", "hard")


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
  out = _sample(rng, prompts, processors.as_pytree(propose), num_samples=num_samples,
                max_steps=max_steps)
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


def estimate_labels(batch: PRMBatch, kind: str) -> PRMBatch:
  """The two step-label estimates of Math-Shepherd (Wang et al. 2024, Eqs. 1-2) from one set of
  rollouts: "soft" (SE) keeps the fraction of rollouts that succeed, "hard" (HE) is 1 where any
  of them succeeds. A soft label is a mean of 0/1 rewards, so HE = [SE > 0] exactly.

  With the same R rollouts behind every label, HE's expectation 1 - (1 - p)^R is a monotone
  function of SE's p, so in the limit both rank steps alike; on Countdown HE fits worse (see
  docs/search.md).
  """
  if kind not in PRM_LABELS:
    raise ValueError(f"PRM label kind must be one of {PRM_LABELS}, got {kind!r}")
  if kind == "soft":
    return batch
  hard = ((batch.labels > 0) & (batch.label_mask > 0)).astype(batch.labels.dtype)
  return batch.replace(labels=hard)


def label_solutions(rng: jax.Array, prompts: tree.Prefixes, propose: tree.ProposeFn,
                    verify: Callable[[int, np.ndarray], float], *, num_samples: int,
                    num_rollouts: int, max_steps: int, step_delimiters: Sequence[int],
                    eos_id: int, pad_id: int, chunk: int = 256,
                    references: tree.Prefixes | None = None,
                    reference_questions: np.ndarray | None = None
                    ) -> tuple[PRMBatch, dict[str, float]]:
  """PRM training rows: sample solutions from the policy and label every step prefix.

  Rows may also hold reference solutions (e.g. a solver's, in the policy's format): their
  prefixes are labelled by the same policy rollouts. A weak policy reaches few solvable states
  and fewer correct answers (labels of its own samples are mostly 0); the references add the
  states and answers it rarely reaches, with the values the policy has from them.

  Args:
    rng: key.
    prompts: [Q] question prefixes.
    propose: the policy's step sampler (temperature > 0).
    verify: host reward, ``verify(question, solution_ids) -> 0/1``, of the tokens a finished
      rollout wrote after its question's prompt.
    num_samples: sampled solutions per question (each becomes a row).
    num_rollouts: R rollouts per step prefix.
    max_steps: step cap of a solution.
    step_delimiters: ids that end a step (e.g. the newline and <eos>).
    eos_id, pad_id: token ids.
    chunk: prefixes valued per call (fixed shapes: the last chunk is padded).
    references: [R] finished rows (prompt + solution, same buffer length as ``prompts``).
    reference_questions: [R] question index of each reference.

  Returns:
    (PRMBatch, stats): rows are the Q * num_samples samples (question-major), then the
    references; stats hold rows, labelled steps, mean label and the policy's pass@1 on the
    sampled solutions ("final_step_accuracy").
  """
  q, length = prompts.tokens.shape
  rng, key = jax.random.split(rng)
  sols = jax.tree.map(lambda x: x.reshape((q * num_samples,) + x.shape[2:]),
                      sample_completions(key, prompts, propose, num_samples=num_samples,
                                         max_steps=max_steps))
  question_B = np.repeat(np.arange(q), num_samples)
  if references is not None:
    sols = jax.tree.map(lambda a, b: np.concatenate([a, np.asarray(b)]), sols, references)
    question_B = np.concatenate([question_B, np.asarray(reference_questions)])
  start_B = np.asarray(prompts.lengths)[question_B]
  owner, ends = [], []  # one prefix per step end of every row
  for b in range(len(question_B)):
    for t in step_ends(sols.tokens[b], start_B[b], sols.lengths[b], step_delimiters):
      owner.append(b)
      ends.append(t)
  owner, ends = np.asarray(owner, np.int64), np.asarray(ends, np.int64)
  p, pad = len(owner), -len(owner) % chunk
  rows = np.concatenate([owner, np.full(pad, owner[0] if p else 0)])
  lengths = np.concatenate([ends + 1, np.full(pad, 1)]).astype(np.int32)
  tokens = np.where(np.arange(length)[None] < lengths[:, None], sols.tokens[rows], pad_id)
  done = tokens[np.arange(len(rows)), lengths - 1] == eos_id
  prefixes = tree.Prefixes(tokens, lengths, done)

  def reward_fn(completions, offset):
    out = np.zeros(completions.lengths.shape)
    for i, r in np.ndindex(*out.shape):
      b = rows[offset + i]
      out[i, r] = verify(question_B[b],
                         completions.tokens[i, r, start_B[b]:completions.lengths[i, r]])
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
