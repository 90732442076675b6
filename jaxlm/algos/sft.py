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
import json
import math
import os
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlm import checkpoint as checkpoint_lib
from jaxlm import sharding as sharding_lib
from jaxlm import train as train_lib
from jaxlm.algos import offline
from jaxlm.models import Transformer, TransformerConfig

ALPHABET = "\n0123456789+-*=."  # id 0 ("\n") separates lines.
OPS = "+-*"


@dataclasses.dataclass(frozen=True)
class Config:
  """SFT run configuration.

  Attributes:
    seed: seeds the corpus, data order, init and dropout-free step rngs.
    model: the transformer (vocab_size must be len(ALPHABET)).
    seq_len: tokens per training window.
    batch_size: windows per update (global, over all devices).
    accum_steps: microbatches per update (gradient accumulation inside the step).
    num_steps: optimizer updates.
    lr, warmup, weight_decay, clip: AdamW + warmup/cosine schedule, global-norm clip.
    max_operand: operands are drawn from [0, max_operand].
    train_lines, eval_lines: corpus sizes (eval lines use a different seed).
    eval_every: steps between perplexity evaluations.
    eval_batches: held-out batches per evaluation.
    log_every: steps between metric logs.
    checkpoint_every: steps between checkpoints; keep_checkpoints: how many are kept.
    mesh: (data, fsdp, tensor) sizes; -1 fills with the remaining devices.
    sharding_rules: logical-axis -> mesh-axes table (see jaxlm.sharding.DEFAULT_RULES).
    transfer_guard: run the step under jax.transfer_guard("disallow").
  """
  seed: int = 0
  model: TransformerConfig = TransformerConfig(
      vocab_size=len(ALPHABET), d_model=128, n_layers=2, n_heads=4, d_ff=512, max_len=64)
  seq_len: int = 64
  batch_size: int = 32
  accum_steps: int = 1
  num_steps: int = 600
  lr: float = 3e-3
  warmup: int = 50
  weight_decay: float = 0.1
  clip: float = 1.0
  max_operand: int = 99
  train_lines: int = 20000
  eval_lines: int = 1000
  eval_every: int = 100
  eval_batches: int = 4
  log_every: int = 20
  checkpoint_every: int = 200
  keep_checkpoints: int = 3
  mesh: tuple[int, int, int] = (-1, 1, 1)
  sharding_rules: tuple[tuple[str, Any], ...] = sharding_lib.DEFAULT_RULES
  transfer_guard: bool = True

  def __post_init__(self):
    if self.model.vocab_size != len(ALPHABET):
      raise ValueError(f"model.vocab_size={self.model.vocab_size} must equal the alphabet "
                       f"size {len(ALPHABET)}")
    if self.seq_len > self.model.max_len:
      raise ValueError(f"seq_len={self.seq_len} exceeds model.max_len={self.model.max_len}")
    for name in ("batch_size", "num_steps", "seq_len", "accum_steps", "log_every"):
      if getattr(self, name) < 1:
        raise ValueError(f"Config.{name}={getattr(self, name)} must be >= 1")

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "Config":
    """From a (ConfigDict-style) nested dict; unknown keys raise ValueError naming them."""
    d = dict(d)
    if isinstance(d.get("mesh"), dict):
      d["mesh"] = tuple(d["mesh"][k] for k in sharding_lib.MESH_AXES)
    if "sharding_rules" in d:
      d["sharding_rules"] = sharding_lib.rules_from_config(d["sharding_rules"])
    return offline.config_from_dict(cls, d)


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


class WindowIterator:
  """Random windows of a token stream; batch `i` depends only on (seed, i).

  Yields {"inputs": [B, T], "targets": [B, T]} int32 (targets = inputs shifted by one).
  `get_state()` / `set_state()` save and restore the position (an int) for resumption.
  """

  def __init__(self, tokens: np.ndarray, batch_size: int, seq_len: int, seed: int):
    if tokens.size < seq_len + 2:
      raise ValueError(f"corpus of {tokens.size} tokens is shorter than seq_len+2={seq_len + 2}")
    self.tokens, self.batch_size, self.seq_len, self.seed = tokens, batch_size, seq_len, seed
    self.index = 0

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    rng = np.random.default_rng((self.seed, self.index))
    self.index += 1
    starts_B = rng.integers(0, self.tokens.size - self.seq_len - 1, self.batch_size)
    window_BxT1 = self.tokens[starts_B[:, None] + np.arange(self.seq_len + 1)]
    return {"inputs": window_BxT1[:, :-1], "targets": window_BxT1[:, 1:]}

  def get_state(self) -> dict[str, int]:
    return {"index": self.index}

  def set_state(self, state: dict[str, int]) -> None:
    if "index" not in state:
      raise ValueError(f"data state {state} has no 'index'")
    self.index = int(state["index"])


def make_loss_fn(model: Transformer):
  """Mean next-token cross-entropy: `loss_fn(params, batch, rng, *, state) -> (loss, aux)`."""
  def loss_fn(params, batch, rng, *, state):
    del rng, state  # Deterministic model, no target network.
    logits_BxTxV = model.apply({"params": params}, batch["inputs"]).logits
    nll_BxT = optax.softmax_cross_entropy_with_integer_labels(logits_BxTxV, batch["targets"])
    accuracy = (logits_BxTxV.argmax(-1) == batch["targets"]).mean()
    return nll_BxT.mean(), {"accuracy": accuracy}
  return loss_fn


def _eval_batches(tokens: np.ndarray, config: Config) -> list[dict[str, np.ndarray]]:
  """Fixed held-out batches: consecutive non-overlapping windows."""
  t, b = config.seq_len, config.batch_size
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
  ckpt_dir = os.path.join(workdir, "checkpoints")
  if resume:
    checkpoint_lib.require_checkpoint(ckpt_dir)
  elif os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
    raise ValueError(f"{ckpt_dir} already holds checkpoints; pass resume=True (--resume) or "
                     "use a fresh workdir")
  mesh = sharding_lib.make_mesh(*config.mesh)
  model = Transformer(config.model)
  optimizer, schedule = train_lib.make_optimizer(
      config.lr, config.warmup, config.num_steps, config.clip, config.weight_decay)

  def init_fn(key):
    init_key, state_key = jax.random.split(key)
    dummy_BxT = jnp.zeros((1, config.seq_len), jnp.int32)
    params = model.init(init_key, dummy_BxT)["params"]
    return train_lib.TrainState.create(params, optimizer, state_key)

  state, shardings = sharding_lib.init_sharded(init_fn, mesh, jax.random.PRNGKey(config.seed),
                                               rules=config.sharding_rules)
  step_fn = train_lib.make_train_step(make_loss_fn(model), optimizer, schedule=schedule,
                                      mesh=mesh, state_shardings=shardings,
                                      accum_steps=config.accum_steps)
  train_tokens = encode(make_corpus(config.train_lines, config.max_operand, config.seed))
  eval_tokens = encode(make_corpus(config.eval_lines, config.max_operand, config.seed + 1))
  data = WindowIterator(train_tokens, config.batch_size, config.seq_len, config.seed)
  eval_data = [sharding_lib.shard_batch(b, mesh) for b in _eval_batches(eval_tokens, config)]
  loss_fn = make_loss_fn(model)
  eval_loss = jax.jit(lambda params, batch: loss_fn(params, batch, None, state=None)[0])

  def eval_fn(st):
    loss = float(np.mean([eval_loss(st.params, b) for b in eval_data]))
    return {"loss": loss, "perplexity": math.exp(loss)}

  checkpointer = checkpoint_lib.Checkpointer(ckpt_dir, keep=config.keep_checkpoints)
  if resume:
    state, data_state, _ = checkpointer.restore(state, shardings)
    data.set_state(data_state)
    logging.info("resumed from step %d", int(state.step))
  state, history = train_lib.train(
      state, step_fn, data, num_steps=config.num_steps, workdir=workdir,
      log_every=config.log_every, eval_every=config.eval_every, eval_fn=eval_fn,
      checkpointer=checkpointer, checkpoint_every=config.checkpoint_every, config=config,
      put_batch=lambda b: sharding_lib.shard_batch(b, mesh),
      tokens_per_batch=lambda b: b["inputs"].size,
      transfer_guard="disallow" if config.transfer_guard else None)
  checkpointer.close()
  evals = [r for r in history if "eval/perplexity" in r] or [{"step": -1,
                                                               "eval/perplexity": math.nan}]
  train_rows = [r for r in history if "loss" in r]
  results = {
      "initial_perplexity": evals[0]["eval/perplexity"] if evals[0]["step"] == 0 else None,
      "final_perplexity": evals[-1]["eval/perplexity"],
      "final_train_loss": train_rows[-1]["loss"] if train_rows else None,
      "steps": int(state.step),
      "tokens_per_s": float(np.median([r["tokens_per_s"] for r in train_rows[1:]]))
                      if len(train_rows) > 1 else None,
  }
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "results.json"), "w") as f:
      json.dump(results, f, indent=2)
  logging.info("sft results: %s", results)
  return results
