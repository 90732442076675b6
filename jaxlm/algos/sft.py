"""Supervised next-token training (SFT / language modelling) on a generated arithmetic corpus.

The corpus is produced locally and deterministically (no downloads): lines such as `37+48=85`
or `9*7=63`, with operands drawn uniformly. Operands are unpredictable, results are a function
of them, so a model that learns arithmetic drives the per-character perplexity well below its
start (about the alphabet size, 16) while never reaching 1. The tokenizer is character-level
over a fixed 16-symbol alphabet.

The data iterator draws batch `i` from a numpy generator seeded by (seed, i): its whole state is
the integer `i`, which is checkpointed with the train state, so `--resume` continues
bit-identically. The loss is the mean next-token cross-entropy (Shannon; perplexity = exp).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import checkpoint as checkpoint_lib
from jaxlm import files
from jaxlm import metrics as metrics_lib
from jaxlm import sharding as sharding_lib
from jaxlm import train as train_lib
from jaxlm.config import TrainConfig
from jaxlm.data.iterators import IndexedBatches
from jaxlm.losses.lm import fused_next_token_loss
from jaxlm.models import Transformer, TransformerConfig
from jaxlm.models.transformer import output_matrix

ALPHABET = "\n0123456789+-*=."  # id 0 ("\n") separates lines.
OPS = "+-*"


@dataclasses.dataclass(frozen=True)
class Config:
  """SFT run configuration.

  Attributes:
    model: the transformer (vocab_size must be len(ALPHABET)).
    seq_len: tokens per training window.
    train: the training run (`jaxlm.config.TrainConfig`); `train.seed` also seeds the corpus.
    max_operand: operands are drawn from [0, max_operand].
    train_lines, eval_lines: corpus sizes (eval lines use a different seed).
    eval_every: steps between perplexity evaluations.
    eval_batches: held-out batches per evaluation.
  """
  model: TransformerConfig = TransformerConfig(
      vocab_size=len(ALPHABET), d_model=128, n_layers=2, n_heads=4, d_ff=512, max_len=64)
  seq_len: int = 64
  train: TrainConfig = TrainConfig(num_steps=400, batch_size=32, lr=3e-3, warmup=40,
                                   weight_decay=0.1,
                                   log_every=20, checkpoint_every=200, keep_checkpoints=3,
                                   transfer_guard=True)
  max_operand: int = 99
  train_lines: int = 20000
  eval_lines: int = 1000
  eval_every: int = 100
  eval_batches: int = 4

  def __post_init__(self):
    if self.model.vocab_size != len(ALPHABET):
      raise ValueError(f"model.vocab_size={self.model.vocab_size} must equal the alphabet "
                       f"size {len(ALPHABET)}")
    if self.seq_len > self.model.max_len:
      raise ValueError(f"seq_len={self.seq_len} exceeds model.max_len={self.model.max_len}")
    if self.seq_len < 1:
      raise ValueError(f"Config.seq_len={self.seq_len} must be >= 1")


def encode(text: str) -> np.ndarray:
  """Characters -> int32 ids; a character outside ALPHABET is a ValueError naming it."""
  table = {c: i for i, c in enumerate(ALPHABET)}
  try:
    return np.array([table[c] for c in text], np.int32)
  except KeyError as e:
    raise ValueError(f"character {e.args[0]!r} is not in the alphabet {ALPHABET!r}") from None


def decode(ids) -> str:
  return "".join(ALPHABET[int(i)] for i in ids)


def make_corpus(num_lines: int, max_operand: int, seed: int) -> str:
  """`num_lines` arithmetic facts `a<op>b=c`, one per line, deterministic in `seed`."""
  rng = np.random.default_rng(seed)
  a_N, b_N = rng.integers(0, max_operand + 1, (2, num_lines))
  ops = rng.integers(0, len(OPS), num_lines)
  results = {"+": a_N + b_N, "-": a_N - b_N, "*": a_N * b_N}
  return "".join(f"{a}{OPS[o]}{b}={results[OPS[o]][i]}\n"
                 for i, (a, b, o) in enumerate(zip(a_N, b_N, ops)))


class WindowIterator(IndexedBatches):
  """Random windows of a token stream; batch `i` depends only on (seed, i).

  Yields {"inputs": [B, T], "targets": [B, T]} int32 (targets = inputs shifted by one).
  """

  def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int):
    if tokens.size < seq_len + 2:
      raise ValueError(f"corpus of {tokens.size} tokens is shorter than seq_len+2={seq_len + 2}")
    super().__init__(seed)
    self.tokens, self.batch_size, self.seq_len = tokens, batch_size, seq_len

  def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
    starts_B = rng.integers(0, self.tokens.size - self.seq_len - 1, self.batch_size)
    window_BxT1 = self.tokens[starts_B[:, None] + np.arange(self.seq_len + 1)]
    return {"inputs": window_BxT1[:, :-1], "targets": window_BxT1[:, 1:]}

  def num_tokens(self, batch: dict[str, np.ndarray]) -> int:
    return int(batch["inputs"].size)


def make_loss_fn(model: Transformer):
  """Mean next-token cross-entropy: `loss_fn(params, batch, rng, *, state) -> (loss, aux)`.

  The output projection and the cross-entropy run fused (`jaxlm.losses.xent`): no [B, T, V]
  logits.
  """
  def loss_fn(params, batch, rng, *, state):
    del rng, state  # Deterministic model, no target network.
    hidden_BxTxD = model.apply({"params": params}, batch["inputs"], with_logits=False).hidden
    return fused_next_token_loss(hidden_BxTxD, output_matrix(params, model.cfg),
                                 batch["targets"])
  return loss_fn


def _eval_batches(tokens: np.ndarray, config: Config) -> list[dict[str, np.ndarray]]:
  """Fixed held-out batches: consecutive non-overlapping windows."""
  t, b = config.seq_len, config.train.batch_size
  n = min(config.eval_batches, (tokens.size - 1) // (t * b))
  if n < 1:
    raise ValueError(f"eval corpus ({tokens.size} tokens) is smaller than one batch; "
                     "raise eval_lines")
  out = []
  for i in range(n):
    seg = tokens[i * t * b: (i + 1) * t * b + 1]
    out.append({"inputs": seg[:-1].reshape(b, t), "targets": seg[1:].reshape(b, t)})
  return out


def train_and_evaluate(config: Config, workdir: str, resume: bool = False) -> dict[str, Any]:
  """Trains on the generated corpus, evaluates held-out perplexity, checkpoints, plots.

  Args:
    config: run configuration.
    workdir: output directory (metrics.jsonl, tb/, learning_curve.png, checkpoints/,
      results.json).
    resume: continue from the latest checkpoint in `workdir/checkpoints` (error if none).

  Returns:
    dict with initial/final eval perplexity, final train loss, steps and tokens/s.
  """
  if resume:
    checkpoint_lib.require_checkpoint(os.path.join(workdir, "checkpoints"))
  train = config.train
  model = Transformer(config.model)
  mesh = sharding_lib.make_mesh(*train.mesh)
  train_tokens = encode(make_corpus(config.train_lines, config.max_operand, train.seed))
  eval_tokens = encode(make_corpus(config.eval_lines, config.max_operand, train.seed + 1))
  eval_data = [sharding_lib.shard_batch(b, mesh) for b in _eval_batches(eval_tokens, config)]
  loss_fn = make_loss_fn(model)
  eval_loss = jax.jit(lambda params, batch: loss_fn(params, batch, None, state=None)[0])

  def eval_fn(st):
    loss = float(np.mean([eval_loss(st.params, b) for b in eval_data]))
    return {"loss": loss, "perplexity": math.exp(loss)}

  init_fn = lambda key: model.init(key, jnp.zeros((1, config.seq_len), jnp.int32))["params"]
  state, history = train_lib.fit(
      workdir, train, init_fn, loss_fn,
      WindowIterator(train_tokens, train.batch_size, config.seq_len, train.seed),
      resume=resume, eval_fn=eval_fn, eval_every=config.eval_every, saved_config=config)
  # The whole run's rows (a resumed run's history holds only the steps it trained itself).
  if os.path.exists(os.path.join(workdir, "metrics.jsonl")):
    history = metrics_lib.read_metrics(workdir)
  evals = [r for r in history if "eval/perplexity" in r]
  train_rows = [r for r in history if "loss" in r]
  results = {
      "initial_perplexity": evals[0]["eval/perplexity"] if evals and evals[0]["step"] == 0
                            else None,
      "final_perplexity": evals[-1]["eval/perplexity"] if evals else None,
      "final_train_loss": train_rows[-1]["loss"] if train_rows else None,
      "steps": int(state.step),
      "tokens_per_s": float(np.median([r["tokens_per_s"] for r in train_rows[1:]]))
                      if len(train_rows) > 1 else None,
  }
  files.write_json(os.path.join(workdir, "results.json"), results)
  logging.info("sft results: %s", results)
  return results


def summary(results: dict[str, Any]) -> str:
  """One line: key=value for each result."""
  return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                  for k, v in results.items())
