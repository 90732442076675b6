"""The experiment's problem sets and models: the Countdown policy, its PRM labels and the PRM.

The policy is a small character-level transformer that learns Countdown (Gandhi et al. 2024; Pan
et al. 2025) by behaviour cloning on solver solutions and near misses
(``jaxlm.envs.countdown_data.sft_batch``). The PRM is a value head on a copy of the policy's
trunk fitted to Monte-Carlo soft labels of the policy's own samples and of solver references
(``jaxlm.search.labels``; Snell et al. 2024, App. D). Every run checkpoints in its own
directory of the workdir and, with ``resume``, is loaded rather than retrained.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import train as train_lib
from jaxlm.algos import bc
from jaxlm.algos.test_time.config import Config
from jaxlm.config import TrainConfig
from jaxlm.data import RLBatch, SimpleTokenizer
from jaxlm.data.iterators import RandomBatches
from jaxlm.envs import countdown
from jaxlm.envs import countdown_data
from jaxlm.losses import PRMBatch, prm_loss
from jaxlm.models import TransformerConfig, lm_networks
from jaxlm.search import labels, lm, tree


def problem_sets(config: Config) -> tuple[list[countdown.Problem], ...]:
  """(policy training, PRM, validation) problems; each build takes seconds, so callers that
  need them twice pass them along."""
  kw = dict(max_number=config.max_number, min_target=config.min_target,
            max_target=config.max_target)
  make = lambda count, split, seed: countdown_data.make_problems(config.num_numbers, count,
                                                                 split, seed, **kw)
  train = make(config.train_problems, "train", config.seed)
  # PRM questions: training-split problems the policy did not see first, then (small k has few
  # problems) the policy's own; validation stays disjoint either way.
  seen = set(train)
  prm_set = [p for p in make(2 * config.prm_problems, "train", config.seed + 1)
             if p not in seen][:config.prm_problems]
  order = np.random.default_rng(config.seed + 1).permutation(len(train))
  prm_set += [train[i] for i in order[:config.prm_problems - len(prm_set)]]
  val = make(config.eval_problems, "validation", config.seed + 2)
  return train, prm_set, val


def question_prompts(problems: Sequence[countdown.Problem], max_len: int,
                     tok: SimpleTokenizer | None = None, suffix: str = "") -> tree.Prefixes:
  """Right-padded prompt buffers [Q, max_len] (``tok`` defaults to the direct-answer
  tokenizer; ``suffix`` is appended, e.g. THINK_OPEN for the search-trace policy)."""
  tok = tok or countdown_data.tokenizer()
  return lm.encode_prompts([countdown_data.encode_prompt(tok, p) + tok.encode(suffix)
                            for p in problems], max_len, tok.pad_id)


def _fit(run_dir: str, train: TrainConfig, init_fn, loss, batch, *, resume: bool,
         length_buckets: tuple[int, ...] = ()) -> Any:
  """Minimises ``loss(params, rows)`` over rows drawn uniformly from ``batch``
  (``jaxlm.train.fit``; checkpoints in ``run_dir``; ``length_buckets`` as in
  ``RandomBatches``). Returns the params."""

  def loss_fn(params, rows, rng, *, state):
    del rng, state
    return loss(params, rows)

  state, _ = train_lib.fit(run_dir, train, init_fn, loss_fn,
                           RandomBatches(batch, train.batch_size, train.seed,
                                         length_buckets=length_buckets), resume=resume,
                           saved_config=train)
  return state.params


def fit_lm(run_dir: str, model_config: TransformerConfig, train: TrainConfig, batch: RLBatch,
           *, resume: bool = False, pretrained: Any = None,
           length_buckets: tuple[int, ...] = ()) -> Any:
  """Behaviour cloning of ``batch``'s actions; checkpoints in ``run_dir``. Returns params.

  ``pretrained`` params initialise the LM (``jaxlm.models.lm_networks``: a shorter vocabulary
  grows); ``length_buckets`` batch rows of similar length together (``RandomBatches``).
  """
  model, init_fn, _ = lm_networks(model_config, pretrained)
  loss = functools.partial(bc.fused_bc_loss, model)
  return _fit(run_dir, train, init_fn, loss, batch, resume=resume,
              length_buckets=length_buckets)


def train_policy(config: Config, problems: Sequence[countdown.Problem], workdir: str, *,
                 resume: bool = False) -> Any:
  """Trains (or loads) the direct-answer policy on ``problems`` in ``workdir/policy``: solver
  solutions and near misses (``countdown_data.sft_batch``). Returns its params."""
  batch = countdown_data.sft_batch(problems, config.max_len, config.policy.seed,
                                   config.solutions_per_problem, write_pool=config.write_pool,
                                   near_miss_fraction=config.near_miss_fraction)
  return fit_lm(os.path.join(workdir, "policy"), config.model_config(), config.policy, batch,
                resume=resume)


def trace_start(config: Config, problems: Sequence[countdown.Problem], workdir: str, *,
                resume: bool = False, policy_params: Any = None) -> Any:
  """Where a trace policy's SFT starts (``config.trace_init``): None (a random init) for
  "scratch"; for "policy" the direct-answer policy, ``policy_params`` or else trained (or
  loaded) by ``train_policy``. Its character ids keep their rows when the trace vocabulary
  grows (``fit_lm``'s ``pretrained``)."""
  if config.trace_init != "policy":
    return None
  if policy_params is not None:
    return policy_params
  return train_policy(config, problems, workdir, resume=resume)


def label_problems(config: Config, problems: Sequence[countdown.Problem],
                   sampler: lm.StepSampler) -> tuple[PRMBatch, dict[str, float]]:
  """Monte-Carlo labelled PRM rows of ``problems``: ``config.prm_samples`` policy samples and
  ``config.prm_references`` solver solutions per problem, verified by ``countdown.verify``."""
  tok = countdown_data.tokenizer()
  refs = questions = None
  if config.prm_references:
    rows = countdown_data.sft_batch([p for p in problems for _ in range(config.prm_references)],
                                    config.max_len, config.seed + 5,
                                    write_pool=config.write_pool)
    refs = tree.Prefixes(rows.tokens, rows.attention_mask.sum(1).astype(np.int32),
                         np.ones(len(rows.tokens), bool))
    questions = np.repeat(np.arange(len(problems)), config.prm_references)
  return labels.label_solutions(
      jax.random.PRNGKey(config.seed + 7), question_prompts(problems, config.max_len), sampler,
      lambda q, ids: countdown.verify(problems[q], tok.decode(ids))[0],
      num_samples=config.prm_samples, num_rollouts=config.prm_rollouts,
      max_steps=config.max_steps, step_delimiters=(tok.encode(countdown_data.STEP_DELIMITER)[0],
                                                   tok.eos_id),
      eos_id=tok.eos_id, pad_id=tok.pad_id, chunk=max(1, config.max_rows // config.prm_rollouts),
      references=refs, reference_questions=questions)


def prm_data(config: Config, workdir: str, problems: Sequence[countdown.Problem],
             sampler: lm.StepSampler, *, resume: bool = False
             ) -> tuple[PRMBatch, dict[str, float]]:
  """``label_problems``, cached in ``workdir/prm_labels.npz`` (read back with ``resume``)."""
  path = os.path.join(workdir, "prm_labels.npz")
  if resume and os.path.exists(path):
    with np.load(path, allow_pickle=False) as f:
      stats = json.loads(str(f["stats"]))
      return PRMBatch(*(f[k] for k in ("tokens", "attention_mask", "label_mask", "labels"))), stats
  batch, stats = label_problems(config, problems, sampler)
  os.makedirs(workdir, exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez(tmp, tokens=batch.tokens, attention_mask=batch.attention_mask,
           label_mask=batch.label_mask, labels=batch.labels, stats=json.dumps(stats))
  os.replace(tmp, path)
  return batch, stats


def train_prm(model_config: TransformerConfig, train: TrainConfig, batch: PRMBatch,
              policy_params: Any, run_dir: str, *, resume: bool = False) -> Any:
  """Fits the PRM (trunk initialised from the policy, head bias at the mean label's logit) with
  ``jaxlm.losses.prm_loss``; checkpoints in ``run_dir``. Returns params."""
  init_fn, _, logits_fn = lm.prm_networks(model_config)
  mean = float(np.sum(batch.labels * batch.label_mask) / max(batch.label_mask.sum(), 1.0))
  mean = min(max(mean, 1e-3), 1 - 1e-3)

  def init_with_prior(key):
    params = init_fn(key, policy_params)
    bias = params["head"]["out"]["bias"]
    params["head"]["out"]["bias"] = bias.replace_boxed(
        jnp.full(bias.value.shape, np.log(mean / (1 - mean)), jnp.float32))
    return params

  loss = lambda params, rows: prm_loss(logits_fn(params, rows.tokens, rows.attention_mask),
                                       rows)
  return _fit(run_dir, train, init_with_prior, loss, batch, resume=resume)


def train_models(config: Config, workdir: str, *, resume: bool = False, problems=None
                 ) -> tuple[lm.StepSampler, lm.StepSampler, lm.PRMScorer, dict[str, Any]]:
  """Trains (or loads) the policy and the PRM. Returns (sampler, greedy, scorer, stats).

  ``problems`` are ``problem_sets(config)`` when the caller has them.
  """
  train, prm_problems, _ = problems or problem_sets(config)
  mcfg, tok = config.model_config(), countdown_data.tokenizer()
  t0 = time.perf_counter()
  policy_params = train_policy(config, train, workdir, resume=resume)
  sampler, greedy = (lm.make_sampler(mcfg, policy_params, config.step_len, t, tok,
                                     countdown_data.STEP_DELIMITER)
                     for t in (config.temperature, 0.0))
  t1 = time.perf_counter()
  batch, label_stats = prm_data(config, workdir, prm_problems, sampler, resume=resume)
  batch = labels.estimate_labels(batch, config.prm_label)
  t2 = time.perf_counter()
  prm_params = train_prm(mcfg, config.prm, batch, policy_params, os.path.join(workdir, "prm"),
                         resume=resume)
  _, values_fn, _ = lm.prm_networks(mcfg)
  stats = {"prm_labels": label_stats, "seconds": {
      "policy": t1 - t0, "prm_labels": t2 - t1, "prm": time.perf_counter() - t2}}
  return sampler, greedy, lm.PRMScorer(prm_params, values_fn), stats
