"""What every offline RL algorithm shares: tasks, batches, the fit loop and evaluation.

An algorithm module (bc.py, mc.py, ilql.py) supplies three pure pieces and calls `fit` and
`evaluate` from here:

* `init_fn(key) -> params` (may hold `nn.Partitioned` boxes: `fit` shards them),
* `loss_fn(params, batch, rng, *, state) -> (loss, metrics)` for `jaxlm.train.make_train_step`,
* a `decoding.Policy` from `train`: the full-sequence scorer `(params, tokens_BxT, mask_BxT) ->
  (logits_BxTxV, advantage_BxTxV | None)` and the same policy as a step decoder for
  `jaxlm.generate`; the extracted policy is softmax(logits + beta * advantage) at every
  position; BC has no advantage, MC returns use Q, ILQL uses Q - V (Snell et al. 2022, Eq. 6).

Evaluation rolls the policy out in the environment for every beta of a sweep in one batched
pass. On tasks with a fixed action set (Maze) the policy reranks the candidate actions by their
log-probability under the extracted token-level policy; on open-ended tasks (Wordle) it decodes
with `jaxlm.generate` (see `generation_policy`).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import time
from typing import Any, Callable, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import checkpoint as checkpoint_lib
from jaxlm import generation
from jaxlm import sharding as sharding_lib
from jaxlm import train as train_lib
from jaxlm.algos import decoding
from jaxlm.data import (HFTokenizer, RLBatch, SimpleTokenizer, TextTrajectory, next_window_rows, read_jsonl,
                        to_rl_batch, top_fraction_by_return, write_jsonl)
from jaxlm.envs import base as envs_base
from jaxlm.envs import maze as maze_lib
from jaxlm.envs import wordle as wordle_lib
from jaxlm.models import TransformerConfig
from jaxlm.models import convert

Scorer = Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, jax.Array | None]]


@dataclasses.dataclass(frozen=True)
class OfflineConfig:
  """Fields every offline RL algorithm shares.

  Attributes:
    seed: seeds the dataset, data order, initialisation and evaluation episodes.
    env: "maze_fo", "maze_po" (LMRL-Gym Maze, fully/partially observed) or "wordle" (free-text
      guesses decoded with `jaxlm.generate`; whole episodes fit in max_len=136 char tokens with
      window_transitions=6).
    tokenizer: "phrase" (Maze: moves and fixed sentences are single tokens; see
      `jaxlm.data.tokenizer`), "word" (Maze) or "char" (Wordle); "" = the task's default.
    num_trajectories: offline dataset size (episodes).
    filter_fraction: keep only the best fraction of episodes by return (1.0 = all; filtered BC).
    max_len: tokens per training window (longer episodes become chained windows).
    window_transitions: (action, observation) chunks per window; evaluation replays the same
      context (1 suits fully observed tasks, whose state is the last observation).
    gamma: discount per action token.
    model: the transformer (vocab_size and max_len are set from the task and max_len).
    batch_size: windows per update.
    num_steps: optimizer updates.
    lr, warmup, weight_decay, clip: AdamW with warmup/cosine schedule and global-norm clip.
    eval_episodes: episodes per evaluated policy.
    eval_temperature: sampling temperature of the extracted policy (0 = greedy).
    log_every: steps between logged metrics.
    checkpoint_every: steps between checkpoints (a final one is always written).
    mesh: (data, fsdp, tensor) sizes; -1 fills with the remaining devices.
    hf_model: a local Hugging Face checkpoint directory (config.json, *.safetensors and tokenizer
      files, e.g. `save_pretrained` of "gpt2"); when set, every transformer (policy LM and value
      trunks) starts from its weights (`jaxlm.models.from_hf`), its tokenizer replaces the
      task's, and `model` is ignored (value heads stay freshly initialised). Needs the `hf`
      extra; meant for accelerators (LMRL-Gym's GPT-2 setup).
    wordle_words: Wordle only: play on `jaxlm.envs.wordle.word_subset(wordle_words)`, a
      deterministic subset of the shipped list (answers and valid guesses), scored against that
      subset's own constants (`wordle_scores`); 0 = the whole list (LMRL-Gym's game).
  """
  seed: int = 0
  env: str = "maze_fo"
  tokenizer: str = ""
  num_trajectories: int = 1000
  filter_fraction: float = 1.0
  max_len: int = 96
  window_transitions: int = 1
  gamma: float = 0.99
  model: TransformerConfig = TransformerConfig(d_model=128, n_layers=2, n_heads=4, d_ff=512)
  batch_size: int = 64
  num_steps: int = 1000
  lr: float = 1e-3
  warmup: int = 50
  weight_decay: float = 0.0
  clip: float = 1.0
  eval_episodes: int = 64
  eval_temperature: float = 1.0
  log_every: int = 50
  checkpoint_every: int = 500
  mesh: tuple[int, int, int] = (-1, 1, 1)
  hf_model: str = ""
  wordle_words: int = 0

  def __post_init__(self):
    if self.env not in TASKS:
      raise ValueError(f"env={self.env!r}; expected one of {sorted(TASKS)}")
    if self.tokenizer and self.tokenizer not in TOKENIZERS[self.env]:
      raise ValueError(f"tokenizer={self.tokenizer!r} for env={self.env!r}; expected one of "
                       f"{TOKENIZERS[self.env]}")
    if self.hf_model and not os.path.isfile(os.path.join(self.hf_model, "config.json")):
      raise ValueError(f"hf_model={self.hf_model!r} is not a checkpoint directory with "
                       "config.json (save one with save_pretrained)")
    _check_wordle_words(self.env, self.wordle_words)
    if not 0 < self.filter_fraction <= 1:
      raise ValueError(f"filter_fraction={self.filter_fraction} must be in (0, 1]")
    for name in ("num_trajectories", "max_len", "window_transitions", "batch_size", "num_steps",
                 "eval_episodes"):
      if getattr(self, name) < 1:
        raise ValueError(f"{type(self).__name__}.{name}={getattr(self, name)} must be >= 1")


def config_from_dict(cls, d: dict[str, Any]):
  """Builds a (nested) frozen config dataclass from a dict; unknown keys name themselves."""
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - set(fields))
  if unknown:
    raise ValueError(f"unknown {cls.__name__} config key(s) {unknown}; known: {sorted(fields)}")
  kw = {}
  for k, v in d.items():
    default = fields[k].default
    if dataclasses.is_dataclass(default) and isinstance(v, dict):
      v = config_from_dict(type(default), v)
    elif isinstance(default, tuple) and isinstance(v, (list, tuple)):
      v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
    kw[k] = v
  return cls(**kw)


# ---------------------------------------------------------------------------------------------
# Tasks.


@dataclasses.dataclass(frozen=True)
class Task:
  """An environment with its offline data, tokenizer and score normalisation."""
  name: str
  make_env: Callable[[], envs_base.TextEnv]
  tokenizer: SimpleTokenizer
  scores: envs_base.ScoreConstants
  max_steps: int
  candidates: tuple[str, ...] | None  # fixed action texts (reranking), None = free text
  build_dataset: Callable[[int, int], list[TextTrajectory]]
  max_action_tokens: int | None = None  # free text: cap on an action's generated tokens
  action_end: str = "\n"  # free text: the (one-token) text that ends every action


def _maze_task(fully_observed: bool, tokenizer: str) -> Task:
  env = maze_lib.Maze(fully_observed)
  return Task(
      name="maze_fo" if fully_observed else "maze_po",
      make_env=lambda: maze_lib.Maze(fully_observed),
      tokenizer=(SimpleTokenizer.phrases(maze_lib.PHRASES, env.texts()) if tokenizer == "phrase"
                 else SimpleTokenizer.words(env.texts())),
      scores=maze_lib.MAZE_SCORES, max_steps=env.max_steps,
      candidates=tuple(m + "\n" for m in maze_lib.MOVES),
      build_dataset=lambda n, seed: maze_lib.maze_dataset(n, seed,
                                                          fully_observed=fully_observed))


def _wordle_task(tokenizer: str, num_words: int = 0) -> Task:
  """Wordle on the shipped list, or on `word_subset(num_words)` when num_words > 0."""
  del tokenizer  # characters only
  words = wordle_lib.word_subset(num_words) if num_words else wordle_lib.load_words()
  return Task(name=f"wordle{num_words}" if num_words else "wordle",
              make_env=lambda: wordle_lib.Wordle(words), tokenizer=SimpleTokenizer.chars(),
              scores=wordle_lib.wordle_scores(num_words), max_steps=wordle_lib.MAX_GUESSES,
              candidates=None,
              build_dataset=lambda n, seed: wordle_lib.wordle_dataset(n, seed, words=words),
              max_action_tokens=len(wordle_lib.format_guess("a" * wordle_lib.N_LETTERS)))


TASKS: dict[str, Callable[..., Task]] = {  # env -> Task of a tokenizer level (and options)
    "maze_fo": functools.partial(_maze_task, True),
    "maze_po": functools.partial(_maze_task, False),
    "wordle": _wordle_task,
}
TOKENIZERS = {"maze_fo": ("phrase", "word"), "maze_po": ("phrase", "word"), "wordle": ("char",)}


def _check_wordle_words(env: str, wordle_words: int) -> None:
  """Raises if `wordle_words` is set for another game or is not a valid subset size."""
  if not wordle_words:
    return
  if env != "wordle":
    raise ValueError(f"wordle_words={wordle_words} applies to env='wordle' only, not "
                     f"env={env!r}; leave it 0")
  try:
    wordle_lib.word_subset(wordle_words)
  except ValueError as e:
    raise ValueError(f"wordle_words={wordle_words!r}: {e}") from None


def make_task(env: str, tokenizer: str = "", wordle_words: int = 0) -> Task:
  """The task `env` with its tokenizer level (first of TOKENIZERS[env] when empty).

  `wordle_words` > 0 plays Wordle on a subset of the word list (`OfflineConfig.wordle_words`).
  """
  _check_wordle_words(env, wordle_words)
  options = {"num_words": wordle_words} if wordle_words else {}
  return TASKS[env](tokenizer or TOKENIZERS[env][0], **options)


def load_dataset(config: OfflineConfig, task: Task, workdir: str | None) -> list[TextTrajectory]:
  """The task's offline episodes (cached as JSONL in `workdir`), filtered by return."""
  path = workdir and os.path.join(workdir, f"{task.name}_{config.num_trajectories}_"
                                  f"{config.seed}.jsonl")
  if path and os.path.exists(path):
    trajectories = read_jsonl(path)
  else:
    t0 = time.perf_counter()
    trajectories = task.build_dataset(config.num_trajectories, config.seed)
    logging.info("built %d %s episodes in %.1fs", len(trajectories), task.name,
                 time.perf_counter() - t0)
    if path:
      os.makedirs(workdir, exist_ok=True)
      tmp = f"{path}.{os.getpid()}.tmp"  # private to this process: concurrent runs may race
      write_jsonl(tmp, trajectories)
      os.replace(tmp, path)  # atomic: a killed run never leaves a half-written dataset
  if config.filter_fraction < 1:
    trajectories = top_fraction_by_return(trajectories, config.filter_fraction)
  return trajectories


@functools.lru_cache(maxsize=2)  # full and filtered data of one experiment
def _task_and_batch(env: str, tokenizer: str, wordle_words: int, hf_model: str,
                    num_trajectories: int, seed: int, filter_fraction: float, max_len: int,
                    gamma: float, transitions: int, workdir: str | None):
  task = make_task(env, tokenizer, wordle_words)
  if hf_model:
    from transformers import AutoTokenizer  # pylint: disable=g-import-not-at-top
    task = dataclasses.replace(task, tokenizer=HFTokenizer(AutoTokenizer.from_pretrained(
        hf_model)))
  config = OfflineConfig(env=env, num_trajectories=num_trajectories, seed=seed,
                         filter_fraction=filter_fraction, wordle_words=wordle_words)
  batch = to_rl_batch(load_dataset(config, task, workdir), task.tokenizer, max_len=max_len,
                      gamma=gamma, transitions=transitions)
  return task, batch


def task_and_batch(config: OfflineConfig, workdir: str | None) -> tuple[Task, RLBatch]:
  """The task and its tokenised offline data; built once per data setting and reused by the
  algorithms of one experiment (BC, filtered BC, MC and ILQL share it)."""
  return _task_and_batch(config.env, config.tokenizer, config.wordle_words, config.hf_model,
                         config.num_trajectories, config.seed,
                         config.filter_fraction, config.max_len, config.gamma,
                         config.window_transitions, workdir)


@functools.lru_cache(maxsize=1)
def _pretrained(hf_model: str) -> tuple[TransformerConfig, Any]:
  return convert.from_hf(hf_model)


def model_config(config: OfflineConfig, task: Task) -> TransformerConfig:
  """The transformer of every network: `config.model` sized to the task, or the checkpoint's."""
  if config.hf_model:
    mcfg = _pretrained(config.hf_model)[0]
    if mcfg.pos == "learned" and config.max_len > mcfg.max_len:
      raise ValueError(f"max_len={config.max_len} exceeds {config.hf_model}'s position table "
                       f"({mcfg.max_len})")
    return mcfg
  return config.model.replace(vocab_size=task.tokenizer.vocab_size, max_len=config.max_len)


def pretrained_params(config: OfflineConfig) -> Any:
  """The checkpoint's transformer params (None without `hf_model`); see `bc.lm_networks`."""
  return _pretrained(config.hf_model)[1] if config.hf_model else None


# ---------------------------------------------------------------------------------------------
# Data and training.


class RandomBatches:
  """Minibatches of windows; batch `i` depends only on (seed, i), so its state is one int.

  With `with_next`, each item is `(windows, successors)`: the same episode's next window of
  every sampled row (the row itself where the episode ends; `jaxlm.data.next_window_rows`),
  for losses that bootstrap from the next window's value (ILQL). Such a loss reads the
  successor's value at its first trained action only, and a causal model's output there does
  not depend on later tokens, so successors are cut after the latest first trained action of
  the dataset (rounded up to a multiple of 8): the same values for a fraction of the compute.
  """

  def __init__(self, batch: RLBatch, batch_size: int, seed: int, with_next: bool = False):
    self.batch, self.batch_size, self.seed, self.index = batch, batch_size, seed, 0
    self.size, length = batch.tokens.shape
    self.next_rows, self.next_len = None, length
    if with_next:
      nxt = next_window_rows(batch)
      self.next_rows = np.where(nxt < 0, np.arange(self.size), nxt)
      trained = np.asarray(batch.action_mask if batch.loss_mask is None else batch.loss_mask)
      first = int(np.argmax(trained > 0, axis=1).max())
      self.next_len = min(length, -(-(first + 1) // 8) * 8)

  def __iter__(self):
    return self

  def __next__(self) -> RLBatch | tuple[RLBatch, RLBatch]:
    rows = np.random.default_rng((self.seed, self.index)).integers(0, self.size,
                                                                   self.batch_size)
    self.index += 1
    take = lambda r, n: jax.tree.map(lambda x: x[r, :n] if x.ndim == 2 else x[r], self.batch)
    windows = take(rows, None)
    if self.next_rows is None:
      return windows
    return windows, take(self.next_rows[rows], self.next_len)

  def get_state(self) -> dict[str, int]:
    return {"index": self.index}

  def set_state(self, state: dict[str, int]) -> None:
    self.index = int(state["index"])


def fit(name: str, config: OfflineConfig, workdir: str, init_fn: Callable[[jax.Array], Any],
        loss_fn: train_lib.LossFn, data: RandomBatches, *, resume: bool = False,
        target_update: float | None = None, extra: Any = None) -> train_lib.TrainState:
  """Trains `init_fn`'s params with `loss_fn`; checkpoints in `workdir/name`, resumable.

  With `resume`, a finished run is loaded rather than retrained, and an unfinished one continues
  from its last checkpoint bit-identically (the rng lives in the state, the data position is
  checkpointed). `extra` (e.g. a frozen policy) is carried in `TrainState.extra`.
  """
  run_dir = os.path.join(workdir, name)
  ckpt_dir = os.path.join(run_dir, "checkpoints")
  has_ckpt = os.path.isdir(ckpt_dir) and bool(os.listdir(ckpt_dir))
  if has_ckpt and not resume:
    raise ValueError(f"{ckpt_dir} already holds checkpoints; pass --resume or use a fresh "
                     "workdir")
  mesh = sharding_lib.make_mesh(*config.mesh)
  optimizer, schedule = train_lib.make_optimizer(config.lr, config.warmup, config.num_steps,
                                                 config.clip, config.weight_decay)

  def state_fn(key):
    init_key, state_key = jax.random.split(key)
    return train_lib.TrainState.create(init_fn(init_key), optimizer, state_key,
                                       with_target=target_update is not None, extra=extra)

  state, shardings = sharding_lib.init_sharded(state_fn, mesh,
                                               jax.random.PRNGKey(config.seed))
  step_fn = train_lib.make_train_step(loss_fn, optimizer, schedule=schedule, mesh=mesh,
                                      state_shardings=shardings, target_update=target_update)
  checkpointer = checkpoint_lib.Checkpointer(ckpt_dir, keep=2)
  if has_ckpt:
    state, data_state, _ = checkpointer.restore(state, shardings)
    data.set_state(data_state)
    logging.info("%s: resumed at step %d", name, int(state.step))
  state, _ = train_lib.train(
      state, step_fn, data, num_steps=config.num_steps, workdir=run_dir,
      log_every=config.log_every, checkpointer=checkpointer,
      checkpoint_every=config.checkpoint_every, config=config,
      put_batch=lambda b: sharding_lib.shard_batch(b, mesh),
      tokens_per_batch=lambda b: sum(int(x.attention_mask.sum()) for x in
                                     (b if isinstance(b, tuple) else (b,))))
  checkpointer.close()
  return state


# ---------------------------------------------------------------------------------------------
# Policies and evaluation.


def _prompt_ids(history: envs_base.History, tokenizer, transitions: int) -> list[int]:
  """BOS + the context a training window holds before the next action.

  Windows hold `transitions` (action, observation) chunks each (`to_rl_batch(...,
  transitions=)`), so decision k is preceded by observations k - k % transitions .. k.
  """
  k = len(history) // 2  # decisions already taken
  first = 2 * (k - k % transitions)
  return [tokenizer.bos_id] + [t for text, _ in history[first:] for t in tokenizer.encode(text)]


def make_candidate_scorer(scorer: Scorer, betas: Sequence[float], temperature: float,
                          adv_clip: float | None = None):
  """Jitted: (params, tokens_RxT, mask_RxT, cand_mask_RxT) -> log-prob per row and beta [K, R].

  Row r is a prompt followed by one candidate action; cand_mask marks the candidate's tokens.
  The score of beta_k is sum over the candidate's tokens of log softmax(logits + beta_k * adv)
  (the token-level extracted policy), divided by the sampling temperature.
  """
  betas_K = jnp.asarray(betas, jnp.float32)

  @jax.jit
  def score(params, tokens_RxT, mask_RxT, cand_mask_RxT):
    logits_RxTxV, adv_RxTxV = scorer(params, tokens_RxT, mask_RxT)
    next_RxT = jnp.concatenate([tokens_RxT[:, 1:], tokens_RxT[:, :1]], axis=1)
    on_RxT = jnp.concatenate([cand_mask_RxT[:, 1:], jnp.zeros_like(cand_mask_RxT[:, :1])],
                             axis=1)

    def one(beta):
      x = logits_RxTxV
      if adv_RxTxV is not None:
        adv = adv_RxTxV if adv_clip is None else jnp.clip(adv_RxTxV, -adv_clip, adv_clip)
        x = x + beta * adv
      logp_RxT = jnp.take_along_axis(jax.nn.log_softmax(x), next_RxT[..., None], -1)[..., 0]
      return (logp_RxT * on_RxT).sum(-1)

    return jax.vmap(one)(betas_K) / max(temperature, 1e-6)
  return score


def rerank_policy(score_fn, params, task: Task, max_len: int, transitions: int,
                  temperature: float, rng: np.random.Generator, num_variants: int):
  """Policy over `task.candidates` for each (history, variant) pair; see make_candidate_scorer.

  Returns `policy(histories, variants) -> actions` where variants[i] picks the beta index.
  """
  tok = task.tokenizer
  cands = [tok.encode(c) for c in task.candidates]
  c_max = max(len(c) for c in cands)

  def policy(histories, variants):
    # Episodes in the same state share a prompt (fully observed Maze has 25 states): score
    # each distinct prompt once.
    prompts = [tuple(_prompt_ids(h, tok, transitions)) for h in histories]
    index = {p: i for i, p in enumerate(dict.fromkeys(prompts))}
    unique, which = list(index), np.array([index[p] for p in prompts])
    u, c = len(unique), len(cands)
    # Power-of-two rows and multiple-of-16 columns: few shapes, so few recompiles.
    rows = 1 << max(0, (u * c - 1).bit_length())
    cols = min(max_len, -(-(max(map(len, unique)) + c_max) // 16) * 16)
    tokens = np.full((rows, cols), tok.pad_id, np.int32)
    mask, cmask = np.zeros((2, rows, cols), np.int32)
    for i, prompt in enumerate(unique):
      for j, cand in enumerate(cands):
        row, seq = i * c + j, list(prompt) + cand
        tokens[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
        cmask[row, len(prompt):len(seq)] = 1
    scores_KxUxC = np.asarray(score_fn(params, tokens, mask, cmask))[:, :u * c].reshape(
        num_variants, u, c)
    scores_NxC = scores_KxUxC[np.asarray(variants), which]
    if temperature == 0:
      choice = scores_NxC.argmax(-1)
    else:
      p = np.exp(scores_NxC - scores_NxC.max(-1, keepdims=True))
      p /= p.sum(-1, keepdims=True)
      choice = (p.cumsum(-1) < rng.random((len(p), 1))).sum(-1).clip(max=c - 1)
    return [task.candidates[k] for k in choice]
  return policy


_MIN_COLS = 64  # Narrowest prompt: padding a short prompt costs less than another compile.


def generation_policy(policy: decoding.Policy, params, task: Task, betas: Sequence[float],
                      transitions: int, temperature: float, seed: int,
                      adv_clip: float | None = None):
  """Free-text policy: each action decoded token by token by `jaxlm.generate`.

  Prompts are the training windows' context (`_prompt_ids`), left-padded. One `generate` call
  per environment step decodes every (history, variant) row through `policy.decoder`, with the
  row's beta as data, so one compiled loop serves the whole sweep. A row stops at
  `task.action_end` or after `task.max_action_tokens` tokens; a row cut by the cap is returned
  as it is (the environment judges it). Rows are padded to a power of two (padding rows
  generate nothing) and prompt columns to a power of two >= _MIN_COLS (capped by the position
  table), so an evaluation compiles a handful of loops.

  Returns:
    `act(histories, variants) -> action texts`, variants[i] picking the beta index of row i;
    `act.stats` counts actions and cut actions per variant ({"actions": [K], "cut": [K]}).
  """
  tok = task.tokenizer
  if task.max_action_tokens is None or task.max_action_tokens < 1:
    raise ValueError(f"{task.name}: free-text decoding needs Task.max_action_tokens >= 1 (the "
                     f"cap on an action's tokens), got {task.max_action_tokens}")
  stop = tok.encode(task.action_end)
  if len(stop) != 1:
    raise ValueError(f"{task.name}: action_end {task.action_end!r} must be one token, the "
                     f"tokenizer gives {stop}")
  n_new, mcfg = task.max_action_tokens, policy.decoder.cfg
  betas_K = np.asarray(betas, np.float32)
  key, calls = jax.random.key(seed), itertools.count()
  stats = {"actions": np.zeros(len(betas_K), np.int64), "cut": np.zeros(len(betas_K), np.int64)}

  def act(histories, variants):
    prompts = [_prompt_ids(h, tok, transitions) for h in histories]
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
    beta_B[:n], limit_B[:n] = betas_K[variants], n_new
    out = generation.generate(
        policy.decoder, policy.step_params(params, beta_B, adv_clip), tokens, mask,
        rng=jax.random.fold_in(key, next(calls)), max_new_tokens=n_new, temperature=temperature,
        stop_tokens=stop, max_lengths_B=limit_B, pad_id=tok.pad_id, config=mcfg)
    new_BxN, lengths_B = np.asarray(out.tokens_BxN), np.asarray(out.lengths_B)
    np.add.at(stats["actions"], variants, 1)
    np.add.at(stats["cut"], variants, ~np.asarray(out.done_B)[:n])
    return [tok.decode(new_BxN[i, :lengths_B[i]].tolist()) for i in range(n)]

  act.stats = stats
  return act


def evaluate(policy, task: Task, num_variants: int, episodes: int, seed: int
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
    out.append({"return": ret, "return_ci": ret_ci, "normalized": norm, "normalized_ci": norm_ci,
                "success": float(success), "episodes": len(mine)})
  return out


def write_json(path: str, obj: Any) -> None:
  """Atomic JSON write (temp file + rename), process 0 only."""
  if jax.process_index() != 0:
    return
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2)
  os.replace(tmp, path)


def evaluate_scorer(scorer: Scorer | decoding.Policy, params: Any, task: Task,
                    config: OfflineConfig, betas: Sequence[float], name: str,
                    adv_clip: float | None = None) -> list[dict[str, float]]:
  """Evaluates the extracted policy for each beta (one batched rollout); logs a table row each.

  Tasks with a fixed action set rerank `task.candidates` with the full-sequence scorer
  (`rerank_policy`); free-text tasks (`task.candidates is None`) decode each action with
  `generation_policy`, which needs the `decoding.Policy` that the algorithms' `train` returns,
  and report the fraction of actions cut by the token cap ("cut_actions").
  """
  if task.candidates is None:
    if not isinstance(scorer, decoding.Policy):
      raise TypeError(f"{task.name} has free-text actions: evaluating them decodes with "
                      "jaxlm.generate and needs a decoding.Policy (what bc/mc/ilql.train "
                      f"return), got {type(scorer).__name__}")
    policy = generation_policy(scorer, params, task, betas, config.window_transitions,
                               config.eval_temperature, config.seed, adv_clip)
  else:
    score_fn = make_candidate_scorer(scorer, betas, config.eval_temperature, adv_clip)
    policy = rerank_policy(score_fn, params, task, config.max_len, config.window_transitions,
                           config.eval_temperature, np.random.default_rng(config.seed),
                           len(betas))
  t0 = time.perf_counter()
  rows = evaluate(policy, task, len(betas), config.eval_episodes, config.seed)
  for k, (beta, row) in enumerate(zip(betas, rows)):
    row["beta"] = float(beta)
    if hasattr(policy, "stats"):
      row["cut_actions"] = float(policy.stats["cut"][k] / max(policy.stats["actions"][k], 1))
    logging.info("%s beta=%g: return %.2f +- %.2f, normalized %.1f, success %.2f (%.0fs)", name,
                 beta, row["return"], row["return_ci"], row["normalized"], row["success"],
                 time.perf_counter() - t0)
  return rows


def results_table(results: dict[str, dict[str, float]]) -> str:
  """A plain-text table: algo, return +- CI, normalised score +- CI, success, episodes."""
  lines = [f"{'algo':<12} {'return':>16} {'normalized':>16} {'success':>8} {'episodes':>8}"]
  for algo, r in results.items():
    lines.append(f"{algo:<12} {r['return']:>9.2f} +- {r['return_ci']:<4.2f} "
                 f"{r['normalized']:>9.1f} +- {r['normalized_ci']:<4.1f} {r['success']:>8.2f} "
                 f"{r['episodes']:>8d}")
  return "\n".join(lines)


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_beta_sweep(sweeps: dict[str, list[dict[str, float]]], path: str, title: str) -> None:
  """Normalised score (with 95% CI) against beta, one line per algorithm."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for algo, rows in sweeps.items():
    rows = sorted(rows, key=lambda r: r["beta"])
    x = [max(r["beta"], 0.1) for r in rows]
    ax.errorbar(x, [r["normalized"] for r in rows], [r["normalized_ci"] for r in rows],
                marker="o", capsize=3, label=algo)
  ax.set_xscale("log")
  ax.set_xlabel("beta (0 plotted at 0.1)")
  ax.set_ylabel("normalized score")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_learning_curves(workdir: str, names: Sequence[str], path: str) -> None:
  """Training loss of each run (from `<workdir>/<name>/metrics.jsonl`) on one figure."""
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3), squeeze=False)
  for ax, name in zip(axes[0], names):
    metrics = os.path.join(workdir, name, "metrics.jsonl")
    if not os.path.exists(metrics):
      continue
    rows = train_lib.read_metrics(os.path.join(workdir, name))
    for key in ("loss", "bc_loss", "q_loss", "v_loss"):
      pts = [(r["step"], r[key]) for r in rows if key in r]
      if pts and (key == "loss" or name in ("ilql", "mc")):
        ax.plot(*zip(*pts), label=key)
    ax.set_yscale("log")
    ax.set_title(name)
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def run_experiment(algo, config_dict: dict[str, Any], workdir: str, resume: bool
                   ) -> dict[str, dict[str, float]]:
  """What `python -m experiments.<algo>` does: config dict -> algo.Config -> results table."""
  results = algo.train_and_evaluate(config_from_dict(algo.Config, config_dict), workdir,
                                    resume=resume)
  print(results_table(results))
  print(f"results: {workdir}")
  return results
