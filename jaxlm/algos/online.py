"""Online RL experiments: a prompt task, its starting policy, `pg.train`, before/after tables.

Tasks:
  "countdown"  Countdown (Gandhi et al. 2024 / TinyZero): the direct-answer policy of the
               test-time-compute experiment (`jaxlm.algos.test_time`, trained here by behaviour
               cloning on solver solutions, or loaded with --resume) is the start; RL prompts
               are its training questions, evaluation is on the disjoint validation split, the
               reward is 1 for a verified solution (`jaxlm.envs.countdown.verify`) and
               `format_reward` for a completion whose every line is a well-formed step.
  "bandit"     the prompt -> 3-token bandit (`jaxlm.envs.bandit`) from a random init.
  "env"        a multi-turn text game of `jaxlm.envs.tasks` (`bc.env`: FO / PO Maze, Wordle):
               the start is the offline pipeline's BC policy (`jaxlm.algos.bc`, trained here
               on `bc`'s offline episodes, or loaded with --resume), RL plays fresh episodes
               (`pg_episodes`, estimator "gae"), and both policies are evaluated by
               `offline.evaluate` with `bc`'s settings: the same episode seeds, temperature
               and context, the ILQL job's table (return, normalized, success, episodes).

`train_and_evaluate` writes results.json {"sft": {...}, "<name>": {...}} (pass@1 sampled at the
training temperature, greedy pass@1, mean reward, mean completion length; "sft" is the starting
policy; for "env" {"bc": {...}, "<name>": {...}} with the offline table's fields) and the RL
run's metrics, learning_curve.png and length_curve.png under `<name>/`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal

from absl import logging
import jax

from jaxlm import files
from jaxlm import evaluation
from jaxlm.algos import bc as bc_lib
from jaxlm.algos import offline
from jaxlm.algos import pg
from jaxlm.algos import pg_episodes
from jaxlm.algos import test_time
from jaxlm.algos.test_time import models as test_time_models
from jaxlm.envs import bandit
from jaxlm.envs import countdown
from jaxlm.envs import countdown_data
from jaxlm.envs.base import PromptTask
from jaxlm.models import policy as policy_lib

TASKS = ("countdown", "bandit", "env")


@dataclasses.dataclass(frozen=True)
class Config:
  """An online RL experiment.

  Attributes:
    task: one of TASKS.
    name: the RL run's name (its subdirectory and results key).
    rl: the algorithm (`jaxlm.algos.pg.Config`); for Countdown its `model` is replaced by the
      starting policy's.
    countdown: problems and the starting policy (`jaxlm.algos.test_time.Config`: num_numbers,
      max_number, targets, train_problems, eval_problems, policy training, model).
    rl_problems: training questions used as RL prompts (the first ones of the policy's).
    format_reward: Countdown reward of a well-formed but wrong solution (< 1).
    bandit_prompts, bandit_symbols: the bandit's size.
    bc: "env": the game, its offline data, the BC start and the evaluation settings
      (`jaxlm.algos.bc.Config`); the RL policy reads `bc.window_transitions` turns of context.
  """
  task: Literal["countdown", "bandit", "env"] = "countdown"
  name: str = "grpo"
  rl: pg.Config = pg.Config()
  countdown: test_time.Config = test_time.Config(strategies=())
  rl_problems: int = 4000
  format_reward: float = 0.1
  bandit_prompts: int = 4
  bandit_symbols: int = 6
  bc: bc_lib.Config = bc_lib.Config()

  def __post_init__(self):
    if self.task not in TASKS:
      raise ValueError(f"online.Config.task must be one of {TASKS}, got {self.task!r}")
    if not 0 <= self.format_reward < 1:
      raise ValueError(f"online.Config.format_reward={self.format_reward} must be in [0, 1)")


def countdown_task(problems: list[countdown.Problem], val: list[countdown.Problem],
                   format_reward: float) -> PromptTask:
  """Countdown as a `PromptTask` (character tokens; a completion stops at eos)."""
  tok = countdown_data.tokenizer()
  splits = {"train": problems, "eval": val}

  def reward(split, i, ids):
    text = tok.decode(ids)
    solved, why = countdown.verify(splits[split][i], text)
    if solved:
      return 1.0
    malformed = why == "empty solution" or "cannot parse" in why
    return 0.0 if malformed else format_reward

  return PromptTask(
      train_prompts=[countdown_data.encode_prompt(tok, p) for p in problems],
      eval_prompts=[countdown_data.encode_prompt(tok, p) for p in val], reward=reward,
      stop_tokens=(tok.eos_id,), pad_id=tok.pad_id)


def prepare(config: Config, workdir: str, *, resume: bool = False
            ) -> tuple[pg.Config, PromptTask, Any]:
  """(the RL config, the task, the starting policy params or None)."""
  if config.task == "bandit":
    task = bandit.task(config.bandit_prompts, config.bandit_symbols)
    model = dataclasses.replace(config.rl.model, vocab_size=bandit.vocab_size(
        config.bandit_symbols))
    return dataclasses.replace(config.rl, model=model), task, None
  cd = config.countdown
  train_problems, _, val = test_time_models.problem_sets(cd)
  params = test_time.train_policy(cd, train_problems, workdir, resume=resume)
  task = countdown_task(train_problems[:config.rl_problems], val, config.format_reward)
  model = cd.model_config()
  sampling = dataclasses.replace(config.rl.sampling,
                                 max_new_tokens=min(config.rl.sampling.max_new_tokens,
                                                    model.max_len - task.prompt_len))
  return dataclasses.replace(config.rl, model=model, sampling=sampling), task, params


def train_and_evaluate(config: Config, workdir: str, *, resume: bool = False
                       ) -> dict[str, dict[str, float]]:
  """Starting policy -> RL -> both evaluated on the held-out prompts (module docstring)."""
  if resume:  # an empty or mistyped workdir is an error, not a fresh run
    start = {"countdown": ("policy",), "env": ("bc",), "bandit": ()}[config.task]
    offline.require_checkpoint(workdir, *start, config.name)
  if config.task == "env":
    return _train_and_evaluate_env(config, workdir, resume=resume)
  rl, task, start = prepare(config, workdir, resume=resume)
  model, init_fn, _, _ = pg.networks(rl, start)
  evaluate_fn = lambda params: pg.evaluate(model, params, task, rl)
  state, _ = pg.train(rl, task, os.path.join(workdir, config.name), pretrained=start,
                      resume=resume, evaluate_fn=evaluate_fn)
  start_params = init_fn(jax.random.PRNGKey(rl.train.seed))["policy"] if start is None else start
  return _results(workdir, config.name, "sft", start_params, state, evaluate_fn)


def _train_and_evaluate_env(config: Config, workdir: str, *, resume: bool
                            ) -> dict[str, dict[str, float]]:
  """BC on the game's offline episodes, then RL from it; both evaluated alike."""
  bc = config.bc
  data = offline.prepare(bc, workdir)
  params, _ = bc_lib.train(bc, data, workdir, resume=resume, name="bc")
  rl = dataclasses.replace(config.rl, model=data.model, transitions=bc.window_transitions)
  model, _, _, policy_logits = pg.networks(rl)
  policy = policy_lib.lm_policy(model, policy_logits)
  evaluate_fn = lambda p: offline.evaluate(policy, p, data.task, bc, betas=(0.0,),
                                           name=config.name)[0]
  state, _ = pg_episodes.train(rl, data.task, os.path.join(workdir, config.name),
                               pretrained=params, resume=resume, evaluate_fn=evaluate_fn)
  return _results(workdir, config.name, "bc", params, state, evaluate_fn)


def _results(workdir: str, name: str, start_name: str, start_params: Any, state: Any,
             evaluate_fn) -> dict[str, dict[str, float]]:
  """{start_name: the starting policy's evaluation, name: the final policy's} written to
  results.json: the RL run's own step-0 and last evaluations (metrics.jsonl), each run anew
  only when the run did not log it (e.g. resumed past step 0 with the rows lost)."""
  rows = pg.eval_rows(os.path.join(workdir, name))
  step = int(jax.device_get(state.step))
  results = {start_name: rows.get(0) or evaluate_fn(start_params),
             name: rows.get(step) or evaluate_fn(state.params["policy"])}
  logging.info("online results: %s", results)
  files.write_json(os.path.join(workdir, "results.json"), results)
  return results


def results_table(results: dict[str, dict[str, float]]) -> str:
  if "normalized" in next(iter(results.values())):
    return evaluation.results_table(results)
  keys = ("pass@1", "greedy", "reward", "response_length")
  lines = [f"{'policy':<10}" + "".join(f"{k:>17}" for k in keys)]
  for name, row in results.items():
    lines.append(f"{name:<10}" + "".join(f"{row[k]:>17.3f}" for k in keys))
  return "\n".join(lines)
