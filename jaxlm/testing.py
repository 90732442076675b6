"""Tiny configs and fake batches the tests share (CPU-sized; seconds per test)."""

from __future__ import annotations

import contextlib
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import train
from jaxlm.config import TrainConfig
from jaxlm.data import RLBatch
from jaxlm.data.iterators import IndexedBatches
from jaxlm.models import TransformerConfig


def tiny_model(**overrides) -> TransformerConfig:
  """A 1-layer, 2-head, d=32 transformer (vocab and length from `overrides` or defaults)."""
  return TransformerConfig(**{"d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 64,
                              **overrides})


def tiny_train(**overrides) -> TrainConfig:
  """A few-step training run: 6 updates of 8 rows, logged every 2, checkpointed every 3."""
  return TrainConfig(**{"num_steps": 6, "batch_size": 8, "log_every": 2, "checkpoint_every": 3,
                        **overrides})


def fake_rl_batch(batch_size: int = 4, length: int = 12, vocab_size: int = 16, seed: int = 0
                  ) -> RLBatch:
  """Random tokens with alternating observation / action spans and a reward at each row's end.

  Rows have random lengths in [length // 2, length]; actions are every other 3-token span after
  the first token; the last action token carries reward 1 and done.
  """
  rng = np.random.default_rng(seed)
  tokens = rng.integers(1, vocab_size, (batch_size, length)).astype(np.int32)
  attn, act = np.zeros((2, batch_size, length), np.float32)
  rewards, dones = np.zeros((2, batch_size, length), np.float32)
  for b, n in enumerate(rng.integers(length // 2, length + 1, batch_size)):
    attn[b, :n] = 1.0
    spans = (np.arange(n) - 1) // 3
    act[b, :n] = (np.arange(n) >= 1) & (spans % 2 == 1)
    last = np.flatnonzero(act[b])
    if last.size:
      rewards[b, last[-1]], dones[b, last[-1]] = 1.0, 1.0
  tokens[attn == 0] = 0
  return RLBatch(tokens, attn, act, rewards, dones).validate(vocab_size)


class LinearData(IndexedBatches):
  """Regression batches {"x": [8,3], "y": [8,2]} (y = x @ ones + noise) for `linear_init` and
  `linear_loss`: the cheapest run `jaxlm.train.fit` can train (use `tiny_train()`).

  Batch `nan_at` (consumed by step nan_at + 1) has a NaN target: that step's loss is NaN.
  """

  def __init__(self, seed: int = 0, nan_at: int | None = None):
    super().__init__(seed)
    self.nan_at = nan_at

  def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
    x_Nx3 = rng.normal(size=(8, 3)).astype(np.float32)
    y_Nx2 = x_Nx3 @ np.ones((3, 2), np.float32) + 0.1 * rng.normal(size=(8, 2)).astype(np.float32)
    if self.index == self.nan_at:
      y_Nx2[0, 0] = np.nan
    return {"x": x_Nx3, "y": y_Nx2}

  def num_tokens(self, batch: dict[str, np.ndarray]) -> int:
    return batch["x"].shape[0]


def linear_init(key: jax.Array) -> dict[str, jax.Array]:
  return {"w": jax.random.normal(key, (3, 2)), "b": jnp.zeros((2,))}


def linear_loss(params, batch, rng, *, state):
  """Mean squared error of `x @ w + b` (a `jaxlm.train` loss)."""
  del rng, state
  return jnp.mean((batch["x"] @ params["w"] + params["b"] - batch["y"]) ** 2), {}


def linear_state(config: TrainConfig) -> train.TrainState:
  """The abstract state `train.fit(..., config, linear_init, ...)` builds (a restore target)."""
  opt, _ = train.make_optimizer(config.lr, config.warmup, config.num_steps, config.clip,
                                config.weight_decay)
  return jax.eval_shape(lambda k: train.TrainState.create(linear_init(k), opt, k),
                        jax.random.PRNGKey(config.seed))


class Interrupt(Exception):
  """Raised by `killed_at` in place of a batch: a run killed between two steps."""


@contextlib.contextmanager
def killed_at(iterator_cls: type, index: int, method: str = "__next__"):
  """Within the block, `iterator_cls.<method>` (`__next__`, or `__call__` of online data)
  raises `Interrupt` when asked for batch `index`.

  With `checkpoint_every=3`, index 4 kills a run after steps 1-3 ran and step 3 was saved.
  """
  next_batch = getattr(iterator_cls, method)

  def dies(self, *args):
    if self.index == index:
      raise Interrupt()
    return next_batch(self, *args)

  with mock.patch.object(iterator_cls, method, dies):
    yield


class ScriptedDecoder:
  """A `jaxlm.search.threads` decoder that replays known thread texts: a context must be a
  prefix of exactly one of them (else the orchestrator built a context the serialiser never
  wrote); it continues that text up to the first stop id (an <eos> after the text's end)
  within the row's budget. `calls` records the batch size of every call."""

  def __init__(self, texts, tokenizer):
    self.texts, self.tok, self.calls = list(texts), tokenizer, []

  def __call__(self, prompts, max_new_tokens, stop_ids, key):
    del key
    self.calls.append(len(prompts))
    outs = []
    for ids, budget in zip(prompts, max_new_tokens):
      assert ids[0] == self.tok.bos_id
      context = self.tok.decode(ids)
      matches = [t for t in self.texts if t.startswith(context)]
      assert len(matches) == 1, f"no scripted thread continues {context!r}"
      rest = self.tok.encode(matches[0][len(context):]) + [self.tok.eos_id]
      end = next((i + 1 for i, t in enumerate(rest) if t in stop_ids), len(rest))
      outs.append(rest[:min(end, budget)])
    return outs
