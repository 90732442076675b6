"""Tiny configs and fake batches the tests share (CPU-sized; seconds per test)."""

from __future__ import annotations

import contextlib
from unittest import mock

import numpy as np

from jaxlm.config import TrainConfig
from jaxlm.data import RLBatch
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
  return RLBatch(tokens, attn, act, rewards, dones).validate()


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
