"""What the offline RL algorithms (BC, filtered BC, MC returns, ILQL) share: config and data.

An offline algorithm module supplies its networks, a pure loss (`jaxlm.losses`) and its
extracted policy (`jaxlm.models.policy.Policy`); it trains through the one driver
(`jaxlm.train.fit`) on `OfflineData` prepared here and is evaluated by `jaxlm.evaluation`:

    data = offline.prepare(config, workdir)          # task, tokenised windows, transformer
    params, policy = bc.train(config, data, workdir)
    rows = offline.evaluate(policy, params, data.task, config, betas=(0.0,), name="bc")

The extracted policy is softmax(logits + beta * advantage) at every position (Snell et al. 2022,
Eq. 6; `jaxlm.models.policy.perturb`): BC has no advantage, MC returns use Q, ILQL uses Q - V.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

from jaxlm import checkpoint
from jaxlm import evaluation
from jaxlm.config import TrainConfig
from jaxlm.data import HFTokenizer, RLBatch, to_rl_batch, top_fraction_by_return
from jaxlm.envs import tasks
from jaxlm.models import TransformerConfig
from jaxlm.models import convert


@dataclasses.dataclass(frozen=True)
class OfflineConfig:
  """Fields every offline RL algorithm shares.

  Attributes:
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
    train: the training run (`jaxlm.config.TrainConfig`); `train.seed` also seeds the dataset
      and the evaluation episodes.
    eval_episodes: episodes per evaluated policy.
    eval_temperature: sampling temperature of the extracted policy (0 = greedy).
    hf_model: a local Hugging Face checkpoint directory (config.json, *.safetensors and tokenizer
      files, e.g. `save_pretrained` of "gpt2"); when set, every transformer (policy LM and value
      trunks) starts from its weights (`jaxlm.models.from_hf`), its tokenizer replaces the
      task's, and `model` is ignored (value heads stay freshly initialised). Needs the `hf`
      extra; meant for accelerators (LMRL-Gym's GPT-2 setup).
    wordle_words: Wordle only: play on `jaxlm.envs.wordle.word_subset(wordle_words)`, a
      deterministic subset of the shipped list (answers and valid guesses), scored against that
      subset's own constants (`wordle_scores`); 0 = the whole list (LMRL-Gym's game).
  """
  env: str = "maze_fo"
  tokenizer: str = ""
  num_trajectories: int = 1000
  filter_fraction: float = 1.0
  max_len: int = 40
  window_transitions: int = 1
  gamma: float = 0.99
  model: TransformerConfig = TransformerConfig(d_model=64, n_layers=2, n_heads=4, d_ff=256)
  train: TrainConfig = TrainConfig(batch_size=32)
  eval_episodes: int = 64
  eval_temperature: float = 1.0
  hf_model: str = ""
  wordle_words: int = 0

  def __post_init__(self):
    if self.env not in tasks.TASKS:
      raise ValueError(f"env={self.env!r}; expected one of {sorted(tasks.TASKS)}")
    if self.tokenizer and self.tokenizer not in tasks.TOKENIZERS[self.env]:
      raise ValueError(f"tokenizer={self.tokenizer!r} for env={self.env!r}; expected one of "
                       f"{tasks.TOKENIZERS[self.env]}")
    if self.hf_model and not os.path.isfile(os.path.join(self.hf_model, "config.json")):
      raise ValueError(f"hf_model={self.hf_model!r} is not a checkpoint directory with "
                       "config.json (save one with save_pretrained)")
    tasks.check_wordle_words(self.env, self.wordle_words)
    if not 0 < self.filter_fraction <= 1:
      raise ValueError(f"filter_fraction={self.filter_fraction} must be in (0, 1]")
    for name in ("num_trajectories", "max_len", "window_transitions", "eval_episodes"):
      if getattr(self, name) < 1:
        raise ValueError(f"{type(self).__name__}.{name}={getattr(self, name)} must be >= 1")


def require_checkpoint(workdir: str, *runs: str) -> None:
  """For --resume: raises CheckpointNotFoundError unless one of `runs` (subdirectories of
  `workdir`, e.g. "bc", "ilql") holds a complete checkpoint, so that a mistyped or empty workdir
  is an error rather than a fresh run."""
  checkpoint.require_checkpoint(*(os.path.join(workdir, r, "checkpoints") for r in runs))


def shared_fields(config: OfflineConfig) -> dict[str, Any]:
  """The `OfflineConfig` fields of `config` (to build another offline algorithm's config)."""
  return {f.name: getattr(config, f.name) for f in dataclasses.fields(OfflineConfig)}


@dataclasses.dataclass(frozen=True)
class OfflineData:
  """What every network of one offline experiment is built and trained from.

  Attributes:
    task: the environment, tokenizer and score normaliser (`jaxlm.envs.tasks.Task`).
    batch: the tokenised offline windows.
    model: the transformer of every network (the task's vocabulary, or the checkpoint's).
    pretrained: the checkpoint's transformer params (None without `hf_model`).
  """
  task: tasks.Task
  batch: RLBatch
  model: TransformerConfig
  pretrained: Any = None

  def __post_init__(self):
    self.batch.validate(self.model.vocab_size)  # e.g. an HF tokenizer larger than its model


def windows(config: OfflineConfig, task: tasks.Task, workdir: str | None) -> RLBatch:
  """The task's offline episodes (cached as JSONL in `workdir`), filtered, as token windows."""
  episodes = tasks.load_episodes(task, config.num_trajectories, config.train.seed, workdir)
  if config.filter_fraction < 1:
    episodes = top_fraction_by_return(episodes, config.filter_fraction)
  return to_rl_batch(episodes, task.tokenizer, max_len=config.max_len, gamma=config.gamma,
                     transitions=config.window_transitions)


def prepare(config: OfflineConfig, workdir: str | None) -> OfflineData:
  """Task, windows and transformer of `config` (the HF checkpoint is read once, here)."""
  task = tasks.make_task(config.env, config.tokenizer, config.wordle_words)
  if not config.hf_model:
    return OfflineData(task, windows(config, task, workdir),
                       config.model.replace(vocab_size=task.tokenizer.vocab_size,
                                            max_len=config.max_len))
  from transformers import AutoTokenizer  # pylint: disable=g-import-not-at-top
  task = dataclasses.replace(task, tokenizer=HFTokenizer(AutoTokenizer.from_pretrained(
      config.hf_model)))
  mcfg, params = convert.from_hf(config.hf_model)
  if mcfg.pos == "learned" and config.max_len > mcfg.max_len:
    raise ValueError(f"max_len={config.max_len} exceeds {config.hf_model}'s position table "
                     f"({mcfg.max_len})")
  return OfflineData(task, windows(config, task, workdir), mcfg, params)


def evaluate(policy, params: Any, task: tasks.Task, config: OfflineConfig, *,
             betas: Sequence[float], name: str, adv_clip: float | None = None
             ) -> list[dict[str, float]]:
  """`jaxlm.evaluation.evaluate_policy` with the evaluation settings of `config`."""
  return evaluation.evaluate_policy(
      policy, params, task, betas=betas, episodes=config.eval_episodes,
      temperature=config.eval_temperature, transitions=config.window_transitions,
      max_len=config.max_len, seed=config.train.seed, name=name, adv_clip=adv_clip)
