"""Evaluation of extracted policies in text environments: batched rollouts, scores, CIs.

`evaluate_policy` rolls a `jaxlm.models.policy.Policy` out in a task's environment for every beta
of a sweep in one batched pass and reports the raw return, the normalised score (each with a 95%
CI) and the success rate per beta. Two ways to act, chosen by the task:

* a fixed action set (`Task.candidates`, e.g. Maze's moves): the policy reranks the candidates
  by their log-probability under the token-level extracted policy (`make_candidate_scorer`,
  `RerankPolicy`);
* free text (Wordle): each action is decoded token by token with `jaxlm.generate` through the
  policy's step decoder (`GenerationPolicy`).

Either way the prompt is the context a training window holds before the action (`prompt_ids`),
so evaluation sees what training saw.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import generation
from jaxlm.envs import base as envs_base
from jaxlm.envs.tasks import Task
from jaxlm.models import policy as policy_lib


def prompt_ids(history: envs_base.History, tokenizer, transitions: int) -> list[int]:
  """BOS + the context a training window holds before the next action.

  Windows hold `transitions` (action, observation) chunks each (`to_rl_batch(...,
  transitions=)`), so decision k is preceded by observations k - k % transitions .. k.
  """
  k = len(history) // 2  # decisions already taken
  first = 2 * (k - k % transitions)
  return [tokenizer.bos_id] + [t for text, _ in history[first:] for t in tokenizer.encode(text)]


def make_candidate_scorer(scorer: policy_lib.Scorer, betas: Sequence[float], temperature: float,
                          adv_clip: float | None = None):
  """Jitted: (params, tokens_RxT, mask_RxT, cand_mask_RxT) -> log-prob per row and beta [K, R].

  Row r is a prompt followed by one candidate action; cand_mask marks the candidate's tokens.
  The score of beta_k is sum over the candidate's tokens of log softmax(perturb(logits, adv,
  beta_k)) (the token-level extracted policy), divided by the sampling temperature.
  """
  betas_K = jnp.asarray(betas, jnp.float32)
  clip = jnp.inf if adv_clip is None else adv_clip

  @jax.jit
  def score(params, tokens_RxT, mask_RxT, cand_mask_RxT):
    logits_RxTxV, adv_RxTxV = scorer(params, tokens_RxT, mask_RxT)
    next_RxT = jnp.concatenate([tokens_RxT[:, 1:], tokens_RxT[:, :1]], axis=1)
    on_RxT = jnp.concatenate([cand_mask_RxT[:, 1:], jnp.zeros_like(cand_mask_RxT[:, :1])],
                             axis=1)

    def one(beta):
      beta_R = jnp.broadcast_to(beta, tokens_RxT.shape[:1])
      x = policy_lib.perturb(logits_RxTxV, adv_RxTxV, beta_R, clip)
      logp_RxT = jnp.take_along_axis(jax.nn.log_softmax(x), next_RxT[..., None], -1)[..., 0]
      return (logp_RxT * on_RxT).sum(-1)

    return jax.vmap(one)(betas_K) / max(temperature, 1e-6)
  return score


class RerankPolicy:
  """Acts over `task.candidates` for each (history, variant) pair; see make_candidate_scorer.

  `policy(histories, variants) -> actions`, variants[i] picking the beta index of row i.
  """

  def __init__(self, score_fn, params, task: Task, max_len: int, transitions: int,
               temperature: float, rng: np.random.Generator, num_variants: int):
    self.score_fn, self.params, self.task, self.max_len = score_fn, params, task, max_len
    self.transitions, self.temperature, self.rng = transitions, temperature, rng
    self.num_variants = num_variants
    self.cands = [task.tokenizer.encode(c) for c in task.candidates]

  def __call__(self, histories, variants):
    tok, cands = self.task.tokenizer, self.cands
    c_max = max(len(c) for c in cands)
    # Episodes in the same state share a prompt (fully observed Maze has 25 states): score
    # each distinct prompt once.
    prompts = [tuple(prompt_ids(h, tok, self.transitions)) for h in histories]
    index = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
    unique, which = list(index), np.array([index[p] for p in prompts])
    u, c = len(unique), len(cands)
    # Power-of-two rows and multiple-of-16 columns: few shapes, so few recompiles.
    rows = 1 << max(0, (u * c - 1).bit_length())
    cols = min(self.max_len, -(-(max(map(len, unique)) + c_max) // 16) * 16)
    tokens = np.full((rows, cols), tok.pad_id, np.int32)
    mask, cmask = np.zeros((2, rows, cols), np.int32)
    for i, prompt in enumerate(unique):
      for j, cand in enumerate(cands):
        row, seq = i * c + j, list(prompt) + cand
        tokens[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
        cmask[row, len(prompt):len(seq)] = 1
    scores_KxUxC = np.asarray(self.score_fn(self.params, tokens, mask, cmask))[:, :u * c]
    scores_NxC = scores_KxUxC.reshape(self.num_variants, u, c)[np.asarray(variants), which]
    if self.temperature == 0:
      choice = scores_NxC.argmax(-1)
    else:
      p = np.exp(scores_NxC - scores_NxC.max(-1, keepdims=True))
      p /= p.sum(-1, keepdims=True)
      choice = (p.cumsum(-1) < self.rng.random((len(p), 1))).sum(-1).clip(max=c - 1)
    return [self.task.candidates[k] for k in choice]


_MIN_COLS = 64  # Narrowest prompt: padding a short prompt costs less than another compile.


class GenerationPolicy:
  """Free-text policy: each action decoded token by token by `jaxlm.generate`.

  Prompts are the training windows' context (`prompt_ids`), left-padded. One `generate` call
  per environment step decodes every (history, variant) row through `policy.decoder`, with the
  row's beta as data, so one compiled loop serves the whole sweep. A row stops at
  `task.action_end` or after `task.max_action_tokens` tokens; a row cut by the cap is returned
  as it is (the environment judges it). Rows are padded to a power of two (padding rows
  generate nothing) and prompt columns to a power of two >= _MIN_COLS (capped by the position
  table), so an evaluation compiles a handful of loops.

  `policy(histories, variants) -> action texts`, variants[i] picking the beta index of row i;
  `actions[k]` and `cut[k]` count the actions of variant k and those cut by the cap.
  """

  def __init__(self, policy: policy_lib.Policy, params, task: Task, betas: Sequence[float],
               transitions: int, temperature: float, seed: int,
               adv_clip: float | None = None):
    tok = task.tokenizer
    if task.max_action_tokens is None or task.max_action_tokens < 1:
      raise ValueError(f"{task.name}: free-text decoding needs Task.max_action_tokens >= 1 "
                       f"(the cap on an action's tokens), got {task.max_action_tokens}")
    self.stop = tok.encode(task.action_end)
    if len(self.stop) != 1:
      raise ValueError(f"{task.name}: action_end {task.action_end!r} must be one token, the "
                       f"tokenizer gives {self.stop}")
    self.policy, self.params, self.task, self.transitions = policy, params, task, transitions
    self.temperature, self.adv_clip = temperature, adv_clip
    self.betas_K = np.asarray(betas, np.float32)
    self.key, self.calls = jax.random.key(seed), itertools.count()
    self.actions = np.zeros(len(self.betas_K), np.int64)
    self.cut = np.zeros(len(self.betas_K), np.int64)

  def __call__(self, histories, variants):
    tok, n_new, mcfg = self.task.tokenizer, self.task.max_action_tokens, self.policy.decoder.cfg
    prompts = [prompt_ids(h, tok, self.transitions) for h in histories]
    n, longest = len(prompts), max(map(len, prompts))
    rows = 1 << max(0, (n - 1).bit_length())
    cols = max(longest, min(1 << max(longest - 1, _MIN_COLS - 1).bit_length(),
                            mcfg.max_len + 1 - n_new))
    tokens = np.full((rows, cols), tok.pad_id, np.int32)
    mask = np.zeros((rows, cols), np.int32)
    tokens[:, -1], mask[:, -1] = tok.bos_id, 1  # padding rows: a lone BOS, length limit 0
    for i, prompt in enumerate(prompts):
      tokens[i, cols - len(prompt):], mask[i, cols - len(prompt):] = prompt, 1
    variants = np.asarray(variants)
    beta_B, limit_B = np.zeros(rows, np.float32), np.zeros(rows, np.int32)
    beta_B[:n], limit_B[:n] = self.betas_K[variants], n_new
    out = generation.generate(
        self.policy.decoder, self.policy.step_params(self.params, beta_B, self.adv_clip),
        tokens, mask, rng=jax.random.fold_in(self.key, next(self.calls)),
        max_new_tokens=n_new, temperature=self.temperature, stop_tokens=self.stop,
        max_lengths_B=limit_B, pad_id=tok.pad_id, config=mcfg)
    new_BxN, lengths_B = np.asarray(out.tokens_BxN), np.asarray(out.lengths_B)
    np.add.at(self.actions, variants, 1)
    np.add.at(self.cut, variants, ~np.asarray(out.done_B)[:n])
    return [tok.decode(new_BxN[i, :lengths_B[i]].tolist()) for i in range(n)]


def rollout_scores(policy, task: Task, num_variants: int, episodes: int, seed: int
                   ) -> list[dict[str, float]]:
  """Rolls `policy` out for every variant on the same `episodes` seeds in one batched pass.

  Returns one dict per variant: mean return (+- 95% CI), normalised score (+- CI), success rate
  (episode ended by reaching its goal) and the episode count.
  """
  seeds = np.random.default_rng(10_000 + seed).integers(2**31 - 1, size=episodes)
  variants = np.repeat(np.arange(num_variants), episodes)
  trajs = envs_base.rollout(task.make_env, policy, np.tile(seeds, num_variants), task.max_steps,
                            env_tags=variants)
  out = []
  for k in range(num_variants):
    mine = [t for t, v in zip(trajs, variants) if v == k]
    returns = np.array([t.total_return for t in mine])
    ret, ret_ci = envs_base.mean_confidence_interval(returns)
    norm, norm_ci = envs_base.mean_confidence_interval(task.scores.normalize(returns))
    success = np.mean([t.done and t.rewards[-2] == 0.0 for t in mine])
    defined = lambda ci: None if np.isnan(ci) else ci  # one episode: no interval (JSON null)
    out.append({"return": ret, "return_ci": defined(ret_ci), "normalized": norm,
                "normalized_ci": defined(norm_ci), "success": float(success),
                "episodes": len(mine)})
  return out


def evaluate_policy(policy: policy_lib.Policy, params: Any, task: Task, *,
                    betas: Sequence[float], episodes: int, temperature: float,
                    transitions: int, max_len: int, seed: int, name: str,
                    adv_clip: float | None = None) -> list[dict[str, float]]:
  """Evaluates the extracted policy for each beta (one batched rollout); logs a row each.

  Tasks with a fixed action set rerank `task.candidates` with the policy's full-sequence
  scorer (`RerankPolicy`); free-text tasks (`task.candidates is None`) decode each action with
  `GenerationPolicy` and report the fraction of actions cut by the token cap ("cut_actions").

  Args:
    policy: what an algorithm's `train` returns (`jaxlm.models.policy.Policy`).
    params: its trained params.
    task: the environment (`jaxlm.envs.tasks`).
    betas: perturbation strengths, evaluated on the same episode seeds.
    episodes: episodes per beta.
    temperature: sampling temperature (0 = greedy).
    transitions: (action, observation) chunks per training window (the prompt context).
    max_len: the training window length (longest reranking row).
    seed: episode seeds and sampling.
    name: run name for the log lines.
    adv_clip: bound on |advantage| when extracting (None = none).
  """
  if task.candidates is None:
    if not isinstance(policy, policy_lib.Policy):
      raise TypeError(f"{task.name} has free-text actions: evaluating them decodes with "
                      "jaxlm.generate and needs a jaxlm.models.policy.Policy (what bc/mc/ilql "
                      f".train return), got {type(policy).__name__}")
    actor = GenerationPolicy(policy, params, task, betas, transitions, temperature, seed,
                             adv_clip)
  else:
    score_fn = make_candidate_scorer(policy, betas, temperature, adv_clip)
    actor = RerankPolicy(score_fn, params, task, max_len, transitions, temperature,
                         np.random.default_rng(seed), len(betas))
  t0 = time.perf_counter()
  rows = rollout_scores(actor, task, len(betas), episodes, seed)
  for k, (beta, row) in enumerate(zip(betas, rows)):
    row["beta"] = float(beta)
    if isinstance(actor, GenerationPolicy):
      row["cut_actions"] = float(actor.cut[k] / max(actor.actions[k], 1))
    logging.info("%s beta=%g: return %.2f +- %s, normalized %.1f, success %.2f (%.0fs)", name,
                 beta, row["return"], _ci(row["return_ci"], 2), row["normalized"],
                 row["success"], time.perf_counter() - t0)
  return rows


def _ci(half_width: float | None, digits: int) -> str:
  return "n/a" if half_width is None else f"{half_width:.{digits}f}"


def results_table(results: dict[str, dict[str, float]]) -> str:
  """A plain-text table: algo, return +- CI, normalised score +- CI, success, episodes."""
  lines = [f"{'algo':<12} {'return':>16} {'normalized':>16} {'success':>8} {'episodes':>8}"]
  for algo, r in results.items():
    lines.append(f"{algo:<12} {r['return']:>9.2f} +- {_ci(r.get('return_ci'), 2):<4} "
                 f"{r['normalized']:>9.1f} +- {_ci(r.get('normalized_ci'), 1):<4} "
                 f"{r['success']:>8.2f} {r['episodes']:>8d}")
  return "\n".join(lines)
