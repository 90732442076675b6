"""Training data iterators with a saveable position (the protocol `jaxlm.train.fit` reads).

Batch `i` of an `IndexedBatches` depends only on `(seed, i)`: its whole state is the integer
`i`, saved with every checkpoint, so a resumed run draws exactly the batches it would have drawn.
A subclass says how to draw one batch from a generator and how many tokens a batch holds.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxlm.data.batch import RLBatch, next_window_rows


class IndexedBatches:
  """Base class: `next()` draws batch `index` from `np.random.default_rng((seed, index))`."""

  def __init__(self, seed: int):
    self.seed, self.index = seed, 0

  def draw(self, rng: np.random.Generator) -> Any:
    """One host batch (numpy leaves)."""
    raise NotImplementedError

  def num_tokens(self, batch: Any) -> int:
    """Tokens in `batch` (for the loop's tokens/s)."""
    raise NotImplementedError

  def __iter__(self):
    return self

  def __next__(self) -> Any:
    batch = self.draw(np.random.default_rng((self.seed, self.index)))
    self.index += 1
    return batch

  def next_seeds(self) -> tuple[np.random.Generator, jax.Array]:
    """(numpy generator, JAX key) of batch `index`, a function of (seed, index) only; advances
    the index. For batches drawn from a live policy (online RL rollouts)."""
    rng = np.random.default_rng((self.seed, self.index))
    key = jax.random.fold_in(jax.random.key(self.seed), self.index)
    self.index += 1
    return rng, key

  def get_state(self) -> dict[str, int]:
    return {"index": self.index}

  def set_state(self, state: dict[str, int]) -> None:
    if "index" not in state:
      raise ValueError(f"data state {state} has no 'index'")
    self.index = int(state["index"])


class RandomBatches(IndexedBatches):
  """Minibatches of an `RLBatch`'s rows, drawn uniformly with replacement.

  With `with_next`, each item is `(windows, successors)`: the same episode's next window of
  every sampled row (the row itself where the episode ends; `jaxlm.data.next_window_rows`),
  for losses that bootstrap from the next window's value (ILQL). Such a loss reads the
  successor's value at its first trained action only, and a causal model's output there does
  not depend on later tokens, so successors are cut after the latest first trained action of
  the dataset (rounded up to a multiple of 8): the same values for a fraction of the compute.

  With `length_buckets` (increasing lengths, e.g. (256, 512)), rows are grouped by their
  length (attended tokens) into the shortest bucket that holds them (the batch's own length
  for the longest rows); a draw picks a bucket with probability proportional to its rows, then
  all rows from it, and cuts the batch to the bucket's length. Every row is still drawn with
  probability 1/rows per slot, but a batch of short rows costs a short batch (one compiled
  shape per bucket); a token-mean loss then weighs each batch's tokens by that batch's count.
  """

  def __init__(self, batch: RLBatch, batch_size: int, seed: int, with_next: bool = False,
               length_buckets: tuple[int, ...] = ()):
    super().__init__(seed)
    self.batch, self.batch_size = batch, batch_size
    self.size, length = batch.tokens.shape
    self.next_rows, self.next_len = None, length
    if list(length_buckets) != sorted(set(length_buckets)) or min(length_buckets, default=1) < 1:
      raise ValueError(f"length_buckets must be increasing positive lengths: {length_buckets}")
    if length_buckets and with_next:
      raise ValueError("RandomBatches: length_buckets do not combine with with_next")
    edges = [e for e in length_buckets if e < length] + [length]
    lengths = np.asarray(batch.attention_mask).sum(axis=1)
    which = np.searchsorted(edges, lengths)  # the first edge >= the row's length
    self.buckets = [(e, rows) for b, e in enumerate(edges)
                    if len(rows := np.flatnonzero(which == b))]
    self.bucket_p = np.array([len(rows) for _, rows in self.buckets]) / self.size
    if with_next:
      nxt = next_window_rows(batch)
      self.next_rows = np.where(nxt < 0, np.arange(self.size), nxt)
      trained = np.asarray(batch.action_mask if batch.loss_mask is None else batch.loss_mask)
      first = int(np.argmax(trained > 0, axis=1).max())
      self.next_len = min(length, -(-(first + 1) // 8) * 8)

  def draw(self, rng: np.random.Generator) -> RLBatch | tuple[RLBatch, RLBatch]:
    take = lambda r, n: jax.tree.map(lambda x: x[r, :n] if x.ndim == 2 else x[r], self.batch)
    if len(self.buckets) > 1:
      edge, rows = self.buckets[rng.choice(len(self.buckets), p=self.bucket_p)]
      return take(rng.choice(rows, self.batch_size), edge)
    rows = rng.integers(0, self.size, self.batch_size)
    windows = take(rows, None)
    if self.next_rows is None:
      return windows
    return windows, take(self.next_rows[rows], self.next_len)

  def num_tokens(self, batch: RLBatch | tuple[RLBatch, RLBatch]) -> int:
    parts = batch if isinstance(batch, tuple) else (batch,)
    return sum(int(x.attention_mask.sum()) for x in parts)
