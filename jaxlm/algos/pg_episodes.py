"""Online RL on multi-turn text games (`jaxlm.envs.tasks.Task`: Maze, Wordle) with `pg.train`.

PPO ("gae", a critic) on per-turn rows (`jaxlm.rl.episodes`): each rollout batch plays
train.batch_size fresh episodes with the current policy, one row per turn (the prompt window of
past turns, then the action the policy sampled), GAE across the turns of each episode; the
sampler's log-probs stay in the rows for the mismatch metric.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import evaluation
from jaxlm import train as train_lib
from jaxlm.algos import pg
from jaxlm.data.iterators import IndexedBatches
from jaxlm.envs import base as envs_base
from jaxlm.envs import tasks as tasks_lib
from jaxlm.models import policy as policy_lib
from jaxlm.rl import episodes as episodes_lib
from jaxlm.rl import rollout as rollout_lib


def episode_sampling(config: pg.Config, task: tasks_lib.Task) -> rollout_lib.Sampling:
  """The config's sampling for a multi-turn task: an action ends at any token whose text ends
  with `task.action_end`, and has at most `task.max_action_tokens` tokens when the task sets
  a cap (else sampling.max_new_tokens)."""
  cap = min(config.sampling.max_new_tokens, task.max_action_tokens or 1 << 30)
  return dataclasses.replace(
      config.sampling, max_new_tokens=cap, pad_id=task.tokenizer.pad_id,
      stop_tokens=episodes_lib.stop_ids(task.tokenizer, task.action_end,
                                        config.model.vocab_size))


class EpisodeRollouts(IndexedBatches):
  """`pg.train`'s data for a multi-turn task (`jaxlm.envs.tasks.Task`): each call plays
  `train.batch_size` episodes from fresh seeds with the current policy and returns their
  per-turn rows scored as an `OnlineBatch` (`jaxlm.rl.episodes`; "gae" only). The episode seeds
  and the sampling key are functions of (train.seed, rollout index), so resume is exact."""

  def __init__(self, config: pg.Config, task: tasks_lib.Task, model: Any, forward: Callable,
               policy_logits: Callable):
    if config.estimator != "gae":
      raise ValueError(f'{task.name} is multi-turn: its advantages need estimator "gae" (a '
                       f'critic), not "{config.estimator}"')
    super().__init__(config.train.seed)
    self.config, self.task = config, task
    sampling = episode_sampling(config, task)
    self.prompt_width = config.model.max_len - sampling.max_new_tokens
    self._sample = jax.jit(functools.partial(rollout_lib.sample, model, sampling=sampling,
                                             group_size=1))
    self._score = jax.jit(functools.partial(pg.score_rows, config, forward, policy_logits))

  def __call__(self, state: train_lib.TrainState) -> pg.OnlineBatch:
    rng, key = self.next_seeds()
    e = self.config.train.batch_size
    sampler = episodes_lib.TurnSampler(self._sample, state.params["policy"],
                                       self.task.tokenizer, e, self.prompt_width,
                                       self.config.transitions, key)
    trajectories = envs_base.rollout(self.task.make_env, sampler, rng.integers(2**31 - 1, size=e),
                                     self.task.max_steps, env_tags=np.arange(e))
    eb = episodes_lib.episode_rows(sampler, trajectories, self.config.model.max_len, e)
    rows = eb.rl.tokens.shape[0]
    return self._score(state.params, state.extra, jax.tree.map(jnp.asarray, eb.rl),
                       jnp.asarray(eb.sampler_logp), bootstrap_B=jnp.asarray(eb.bootstrap),
                       outcome_B=None, reward=jnp.full((rows,), eb.returns.mean()),
                       length=jnp.full((rows,), eb.action_tokens.mean()))

  def num_tokens(self, batch: pg.OnlineBatch) -> int:
    return int(jnp.sum(batch.rl.attention_mask))


def evaluate_episodes(model: Any, policy_logits: Callable, policy_params: Any,
                      task: tasks_lib.Task, config: pg.Config, *, name: str = "policy"
                      ) -> dict[str, float]:
  """A multi-turn policy in its environment, as the offline algorithms are evaluated
  (`jaxlm.evaluation.evaluate_policy`: `eval_episodes` episodes on the seeds of train.seed,
  sampled at the rollout temperature): return, normalised score (95% CIs), success."""
  return evaluation.evaluate_policy(
      policy_lib.lm_policy(model, policy_logits), policy_params, task, betas=(0.0,),
      episodes=config.eval_episodes, temperature=config.sampling.temperature,
      transitions=config.transitions, max_len=config.model.max_len, seed=config.train.seed,
      name=name)[0]


def train(config: pg.Config, task: tasks_lib.Task, workdir: str, *, pretrained: Any = None,
          resume: bool = False, evaluate_fn: Callable[[Any], dict[str, float]] | None = None
          ) -> tuple[train_lib.TrainState, list[dict[str, float]]]:
  """`pg.train` on a multi-turn game: `EpisodeRollouts`, evaluated by `evaluate_fn` or
  `evaluate_episodes`; the learning curve shows the rollouts' and the evaluations' returns."""
  if evaluate_fn is None:
    model, _, _, policy_logits = pg.networks(config, pretrained)
    evaluate_fn = lambda p: evaluate_episodes(model, policy_logits, p, task, config)
  return pg.train(config, task, workdir, pretrained=pretrained, resume=resume,
                  evaluate_fn=evaluate_fn, rollouts=EpisodeRollouts,
                  curves=(("reward", "eval/return"), "episode return"))
