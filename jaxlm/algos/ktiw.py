"""How single-head attention learns: KTIW before attention (Snell, Zhong, Klein, Steinhardt 2021).

"Approximating How Single Head Attention Learns" (arXiv:2103.07601) splits training into two
stages: while attention is still near uniform, the model learns to translate individual words
(KTIW: input word i -> output word o) from co-occurrence statistics; the gradient that then
sharpens attention onto i when o is the answer is proportional to that knowledge. So KTIW rises
before attention does, and a distribution whose co-occurrences carry no word-level signal stalls
a single head, while several heads escape by better learning dynamics, not expressiveness.

Task (word-level translation, the paper's toy set-up, in a decoder-only layout):

    x_1 ... x_n  SEP  y_1 ... y_n,     y_t = f(x_t) for one fixed random bijection f

over `num_words` source words and as many target words (separate token ids: SEP = 0, source
word w = 1 + w, target word v = 1 + num_words + v). Distributions of the source:
  * "iid" (easy): each x_t uniform and independent.
  * "permutation" (hard): x is a uniformly random permutation of all the words (n =
    num_words), so every source word co-occurs with every target word in every sequence: a
    model with uniform attention sees the same bag of words each time and cannot learn f.

The model is the library's decoder (`jaxlm.models.Transformer`, 1 layer by default, n_heads=1
or `multi_heads`). y_t is predicted at position n + t - 1 and its aligned source position is
t - 1; the learned positional table lets one head attend there. Every query sees the source
keys only (`source_only_inputs`: SEP and the outputs are masked as keys), which is the paper's
encoder-decoder attention in a decoder-only layout. Why: with the outputs as keys, a single
head solves permutations by elimination (it attends to the words already written and avoids
them; measured: token accuracy 1.0 with attention accuracy and KTIW at 0), which is a
different task from the one the paper studies.

Measurements (on a fixed held-out set of the run's own distribution; logged as `eval/...`):
  * token_accuracy: argmax prediction of y_t equals f(x_t), over all t.
  * attention_accuracy: the argmax of the attention row predicting y_t is the aligned source
    position t - 1; computed per head (every layer) and the best head reported.
  * ktiw_accuracy / ktiw_probability (the KTIW probe): for every source word w, the decoder is
    run on the source "w w ... w SEP" with uniform attention (the query projections zeroed, so
    every attention logit is 0 and the first output position averages over the n copies of
    w). KTIW accuracy is the fraction of words w whose argmax prediction is f(w); KTIW
    probability the mean probability of f(w). Uniform attention over a source made of w alone
    is attention put on w, so the probe reads the paper's KTIW -- "if the model attends to i,
    it outputs o" -- from the value/output path, independent of where the head currently
    looks.

Uniform-attention warm-up (`uniform_warmup` steps): the query projections are multiplied by 0
inside the loss, so every attention logit is 0 (uniform over the source) and neither queries
nor keys learn until the warm-up ends; the value/output path trains as in the paper's
uniform-attention stage. (Attention accuracy during the warm-up reads the frozen initial
queries, i.e. stays at its step-0 value.)
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

from absl import logging
import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxlm import checkpoint as checkpoint_lib
from jaxlm import files
from jaxlm import metrics as metrics_lib
from jaxlm import plots
from jaxlm import train as train_lib
from jaxlm.config import TrainConfig
from jaxlm.data.iterators import IndexedBatches
from jaxlm.models import Transformer, TransformerConfig

SEP = 0
DISTRIBUTIONS = ("iid", "permutation")
# Run name -> (source distribution, multi-head?).
RUNS = {"easy": ("iid", False), "permutation": ("permutation", False),
        "permutation_multihead": ("permutation", True)}
METRICS = ("ktiw_accuracy", "attention_accuracy", "token_accuracy")


@dataclasses.dataclass(frozen=True)
class Config:
  """KTIW experiment: one training run per entry of `runs`, each in `<workdir>/<run>/`.

  Attributes:
    model: the single-head decoder (vocab_size must be 2 * num_words + 1, max_len >=
      2 * num_words); the multi-head run replaces n_heads by `multi_heads`.
    num_words: source (and target) vocabulary; also the sequence length n, since a
      permutation of the vocabulary has exactly num_words words.
    runs: names from RUNS ("easy", "permutation", "permutation_multihead").
    multi_heads: heads of the multi-head run.
    uniform_warmup: steps with attention logits forced to 0 (uniform attention).
    train: the training run of each model (`jaxlm.config.TrainConfig`); `train.seed` also seeds
      f, the data and the held-out set.
    eval_every: steps between measurements.
    eval_size: held-out sequences per measurement.
    threshold: the level whose first crossing results.json reports.
  """
  model: TransformerConfig = TransformerConfig(
      vocab_size=21, d_model=64, n_layers=1, n_heads=1, d_ff=128, max_len=20)
  num_words: int = 10
  runs: tuple[str, ...] = ("easy", "permutation", "permutation_multihead")
  multi_heads: int = 8
  uniform_warmup: int = 0
  train: TrainConfig = TrainConfig(num_steps=1000, batch_size=64, lr=3e-3, warmup=50,
                                   weight_decay=0.0, log_every=50, checkpoint_every=500,
                                   keep_checkpoints=1)
  eval_every: int = 10
  eval_size: int = 256
  threshold: float = 0.9

  def __post_init__(self):
    m, n = self.model, self.num_words
    unknown = [r for r in self.runs if r not in RUNS]
    checks = (
        (n < 2, f"Config.num_words={n} must be >= 2"),
        (m.vocab_size != 2 * n + 1,
         f"model.vocab_size={m.vocab_size} must be 2 * num_words + 1 = {2 * n + 1}"),
        (m.max_len < 2 * n, f"model.max_len={m.max_len} must be >= 2 * num_words = {2 * n}"),
        (unknown or not self.runs,
         f"Config.runs={self.runs}: unknown run(s) {unknown}; choose from {tuple(RUNS)}"),
        (self.multi_heads < 2 or (m.d_model % self.multi_heads and not m.head_dim),
         f"Config.multi_heads={self.multi_heads} must be >= 2 and divide model.d_model="
         f"{m.d_model} (or set model.head_dim)"),
        (self.uniform_warmup < 0, f"Config.uniform_warmup={self.uniform_warmup} must be >= 0"),
        (self.eval_every < 1 or self.eval_size < 1,
         f"Config.eval_every={self.eval_every} and eval_size={self.eval_size} must be >= 1"),
    )
    for bad, message in checks:
      if bad:
        raise ValueError(message)


# ---------------------------------------------------------------------------------------------
# Data.


def make_bijection(num_words: int, seed: int) -> np.ndarray:
  """The fixed translation f as an int32 array: f_V[w] is the target word of source word w."""
  return np.random.default_rng((seed, 17)).permutation(num_words).astype(np.int32)


def sample_sources(rng: np.random.Generator, batch_size: int, num_words: int,
                   distribution: str) -> np.ndarray:
  """[B, n] source words (n = num_words): i.i.d. uniform ("iid") or a permutation each row."""
  if distribution == "iid":
    return rng.integers(0, num_words, (batch_size, num_words)).astype(np.int32)
  if distribution == "permutation":
    return rng.permuted(np.tile(np.arange(num_words, dtype=np.int32), (batch_size, 1)), axis=1)
  raise ValueError(f"distribution={distribution!r}; expected one of {DISTRIBUTIONS}")


def encode(x_BxN: np.ndarray, f_V: np.ndarray) -> np.ndarray:
  """Token rows `x_1..x_n SEP f(x_1)..f(x_n)` -> [B, 2n + 1] int32 (ids: module docstring)."""
  num_words = f_V.shape[0]
  sep_Bx1 = np.full((x_BxN.shape[0], 1), SEP, np.int32)
  return np.concatenate([1 + x_BxN, sep_Bx1, 1 + num_words + f_V[x_BxN]], axis=1)


def probe_tokens(num_words: int) -> np.ndarray:
  """The KTIW probe inputs: row w is `w w ... w SEP` (num_words copies) -> [W, n + 1]."""
  words_W = np.arange(num_words, dtype=np.int32)
  return np.concatenate([np.repeat(1 + words_W[:, None], num_words, axis=1),
                         np.full((num_words, 1), SEP, np.int32)], axis=1)


class TranslationData(IndexedBatches):
  """Batches {"tokens": [B, 2n + 1]} of one distribution; batch i depends only on (seed, i)."""

  def __init__(self, f_V: np.ndarray, batch_size: int, distribution: str, seed: int):
    if distribution not in DISTRIBUTIONS:
      raise ValueError(f"distribution={distribution!r}; expected one of {DISTRIBUTIONS}")
    super().__init__(seed)
    self.f_V, self.batch_size, self.distribution = f_V, batch_size, distribution

  def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
    x_BxN = sample_sources(rng, self.batch_size, self.f_V.shape[0], self.distribution)
    return {"tokens": encode(x_BxN, self.f_V)}

  def num_tokens(self, batch: dict[str, np.ndarray]) -> int:
    return int(batch["tokens"].size)


# ---------------------------------------------------------------------------------------------
# Loss and measurements (pure).


def translation_loss(logits_BxTxV: jax.Array, tokens_BxL: jax.Array
                     ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Cross-entropy of the output words only (Snell et al. 2021, Sec. 2: maximum likelihood
  of o given i, -sum_t log p(o_t | i, o_<t), here averaged over t and the batch).

  Args:
    logits_BxTxV: decoder logits on `tokens_BxL[:, :2n]` (position p scores token p + 1).
    tokens_BxL: full rows `x_1..x_n SEP y_1..y_n`, L = 2n + 1.

  Returns:
    (mean NLL of y_1..y_n, {"token_accuracy": argmax hits over y_1..y_n}).
  """
  chex.assert_rank([logits_BxTxV, tokens_BxL], [3, 2])
  length = tokens_BxL.shape[1]
  if length % 2 != 1 or logits_BxTxV.shape[1] != length - 1:
    raise ValueError(f"translation_loss: tokens_BxL length {length} must be odd (2n + 1) and "
                     f"logits_BxTxV must cover its first 2n tokens, got {logits_BxTxV.shape}")
  n = length // 2
  out_logits_BxNxV = logits_BxTxV[:, n:].astype(jnp.float32)
  targets_BxN = tokens_BxL[:, n + 1:]
  nll_BxN = optax.softmax_cross_entropy_with_integer_labels(out_logits_BxNxV, targets_BxN)
  accuracy = jnp.mean(out_logits_BxNxV.argmax(-1) == targets_BxN)
  return nll_BxN.mean(), {"token_accuracy": accuracy}


def attention_accuracy(attn_BxHxTxS: jax.Array, n: int) -> jax.Array:
  """Per-head fraction of output rows whose attention argmax is the aligned source position.

  The row predicting y_t is query position n + t - 1 (t = 1..n); its aligned key is t - 1.

  Args:
    attn_BxHxTxS: attention probabilities (T, S >= 2n) of H heads.
    n: source length.

  Returns:
    accuracy_H in [0, 1].
  """
  chex.assert_rank(attn_BxHxTxS, 4)
  if attn_BxHxTxS.shape[2] < 2 * n or attn_BxHxTxS.shape[3] < 2 * n:
    raise ValueError(f"attention_accuracy: attn_BxHxTxS {attn_BxHxTxS.shape} must cover 2n = "
                     f"{2 * n} query and key positions")
  rows_BxHxNxS = attn_BxHxTxS[:, :, n:2 * n]
  hits_BxHxN = rows_BxHxNxS.argmax(-1) == jnp.arange(n)
  return hits_BxHxN.mean(axis=(0, 2))


def ktiw_scores(probe_logits_WxV: jax.Array, targets_W: jax.Array) -> dict[str, jax.Array]:
  """KTIW probe scores: argmax accuracy and mean probability of each word's translation.

  Args:
    probe_logits_WxV: logits of the first output position on the probe input of word w
      (`probe_tokens`, uniform attention).
    targets_W: token id of f(w).

  Returns:
    {"ktiw_accuracy", "ktiw_probability"} scalars in [0, 1].
  """
  chex.assert_rank([probe_logits_WxV, targets_W], [2, 1])
  chex.assert_equal_shape_prefix([probe_logits_WxV, targets_W], 1)
  logp_WxV = jax.nn.log_softmax(probe_logits_WxV.astype(jnp.float32), axis=-1)
  logp_W = jnp.take_along_axis(logp_WxV, targets_W[:, None], axis=-1)[:, 0]
  return {"ktiw_accuracy": jnp.mean(probe_logits_WxV.argmax(-1) == targets_W),
          "ktiw_probability": jnp.mean(jnp.exp(logp_W))}


def scale_queries(params: Any, scale: jax.Array | float) -> Any:
  """`params` with every attention query projection (kernel and bias) multiplied by `scale`.

  Scale 0 makes every attention logit q.k / sqrt(d) zero: uniform attention over the allowed
  (causal, unpadded) keys; the gradient reaching queries and keys is then zero too.
  """
  def maybe_scale(path, x):
    keys = [getattr(k, "key", None) for k in path]
    is_query = any(a == "attn" and b == "q" for a, b in zip(keys, keys[1:]))
    return (x * jnp.asarray(scale, x.dtype)) if is_query else x
  return jax.tree_util.tree_map_with_path(maybe_scale, params)


def attention_maps(intermediates: Any) -> jax.Array:
  """The sown attention of every layer as [B, L*H, T, S] (unrolled or scanned layers)."""
  maps = []
  for probs in jax.tree.leaves(intermediates):
    per_layer = probs if probs.ndim == 6 else probs[None]  # [L, B, G, R, T, S]
    for layer_probs in per_layer:
      b, g, r, t, s = layer_probs.shape
      maps.append(layer_probs.reshape(b, g * r, t, s))
  if not maps:
    raise ValueError("no sown attention in the intermediates; apply the Transformer with "
                     "mutable=['intermediates']")
  return jnp.concatenate(maps, axis=1)


# ---------------------------------------------------------------------------------------------
# Training and evaluation.


def source_only_inputs(tokens_BxT: jax.Array, n: int) -> dict[str, jax.Array]:
  """Keyword arguments of the decoder that let every query see the source keys only.

  The keys of SEP and of the outputs are masked (attention_mask 0) and the positions are
  explicit (0..T-1), so the rows predicting outputs attend over x_1..x_n alone, as the
  encoder-decoder attention of the paper does (the decoder's own outputs are not keys: in
  a decoder-only layout, attending to the outputs already written would let a permutation be
  completed by elimination, without any word-level translation).
  """
  b, t = tokens_BxT.shape
  mask_BxT = jnp.broadcast_to(jnp.arange(t) < n, (b, t)).astype(jnp.int32)
  positions_BxT = jnp.broadcast_to(jnp.arange(t), (b, t))
  return {"tokens_BxT": tokens_BxT, "attention_mask_BxT": mask_BxT,
          "positions_BxT": positions_BxT}


def make_loss_fn(model: Transformer, uniform_warmup: int):
  """`loss_fn(params, batch, rng, *, state)`: translation loss, uniform attention while
  `state.step < uniform_warmup`."""
  def loss_fn(params, batch, rng, *, state):
    del rng  # Deterministic model.
    tokens_BxL = batch["tokens"]
    if uniform_warmup:
      params = scale_queries(params, (state.step >= uniform_warmup).astype(jnp.float32))
    n = tokens_BxL.shape[1] // 2
    logits_BxTxV = model.apply({"params": params}, **source_only_inputs(tokens_BxL[:, :-1], n)
                               ).logits
    return translation_loss(logits_BxTxV, tokens_BxL)
  return loss_fn


def make_eval_fn(model: Transformer, f_V: np.ndarray, eval_tokens: np.ndarray):
  """Jitted `params -> metrics` on the held-out rows and the KTIW probe (module docstring)."""
  n = f_V.shape[0]
  eval_tokens = jnp.asarray(eval_tokens)
  probe = jnp.asarray(probe_tokens(n))
  targets_W = jnp.asarray(1 + n + f_V)

  @jax.jit
  def metrics(params):
    out, inter = model.apply({"params": params}, **source_only_inputs(eval_tokens[:, :-1], n),
                             mutable=["intermediates"])
    loss, aux = translation_loss(out.logits, eval_tokens)
    attn_acc_H = attention_accuracy(attention_maps(inter["intermediates"]), n)
    probe_logits = model.apply({"params": scale_queries(params, 0.0)},
                               **source_only_inputs(probe, n)).logits
    return {"loss": loss, **aux, "attention_accuracy": attn_acc_H.max(),
            **ktiw_scores(probe_logits[:, n], targets_W)}

  return lambda state: {k: float(v) for k, v in jax.device_get(metrics(state.params)).items()}


def run_model(config: Config, name: str) -> TransformerConfig:
  """The decoder of run `name` (n_heads = multi_heads for the multi-head run)."""
  return config.model.replace(n_heads=config.multi_heads) if RUNS[name][1] else config.model


def first_steps(rows: list[dict[str, float]], threshold: float) -> dict[str, int | None]:
  """First logged step at which each of METRICS reaches `threshold` (None: never)."""
  out = {}
  for key in METRICS:
    pts = [(r["step"], r[f"eval/{key}"]) for r in rows if f"eval/{key}" in r]
    if not pts:
      out[key] = None
      continue
    steps_T, values_T = (np.asarray(a) for a in zip(*pts))
    hit_T = values_T >= threshold
    out[key] = int(steps_T[hit_T.argmax()]) if hit_T.any() else None
  return out


def train_run(config: Config, name: str, run_dir: str, resume: bool
              ) -> list[dict[str, float]]:
  """Trains run `name` through `jaxlm.train.fit`; returns the run's metric rows."""
  distribution = RUNS[name][0]
  train = config.train
  model = Transformer(run_model(config, name))
  f_V = make_bijection(config.num_words, train.seed)
  # A seed sequence no training batch (seed, i) uses.
  held_out = sample_sources(np.random.default_rng((train.seed, 0, 1)), config.eval_size,
                            config.num_words, distribution)
  n2 = 2 * config.num_words
  init_fn = lambda key: model.init(key, jnp.zeros((1, n2), jnp.int32))["params"]
  train_lib.fit(run_dir, train, init_fn, make_loss_fn(model, config.uniform_warmup),
                TranslationData(f_V, train.batch_size, distribution, train.seed),
                resume=resume, eval_fn=make_eval_fn(model, f_V, encode(held_out, f_V)),
                eval_every=config.eval_every, saved_config=config,
                show=("loss", "token_accuracy"))
  return metrics_lib.read_metrics(run_dir)


def plot_curves(histories: dict[str, list[dict[str, float]]], path: str,
                threshold: float) -> None:
  """KTIW (accuracy and probability), attention and token accuracy against step, a panel
  per run."""
  plt = plots.pyplot()
  fig, axes = plt.subplots(1, len(histories), figsize=(4 * len(histories), 3.4),
                           squeeze=False, sharey=True)
  for ax, (name, rows) in zip(axes[0], histories.items()):
    for key in METRICS + ("ktiw_probability",):
      pts = [(r["step"], r[f"eval/{key}"]) for r in rows if f"eval/{key}" in r]
      if pts:
        ax.plot(*zip(*pts), label=key.replace("_accuracy", ""),
                ls="--" if key == "ktiw_probability" else "-")
    ax.axhline(threshold, color="gray", lw=0.8, ls=":")
    ax.set_xscale("symlog", linthresh=100)  # Linear to step 100, where easy runs learn.
    ax.set_xlim(left=0)
    ax.set_title(name)
    ax.set_xlabel("step (linear to 100, log after)")
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel("accuracy")
  axes[0][0].legend(fontsize=8)
  plots.save(fig, path)


def train_and_evaluate(config: Config, workdir: str, resume: bool = False) -> dict[str, Any]:
  """Trains every run of `config.runs`, measures KTIW/attention/token accuracy, plots them.

  Args:
    config: the experiment.
    workdir: `<workdir>/<run>/` holds each run's metrics.jsonl, tb/, checkpoints/;
      `<workdir>/ktiw_curves.png` and `<workdir>/results.json` the comparison.
    resume: continue each run from its latest checkpoint (a finished run is only reloaded).

  Returns:
    {"runs": {run: {"final": metrics, "first_step": {metric: step or None}, ...}},
     "claims": measured booleans of the paper's qualitative result}.
  """
  if resume:
    checkpoint_lib.require_checkpoint(os.path.join(workdir, config.runs[0], "checkpoints"))
  histories, runs, t0 = {}, {}, time.perf_counter()
  for i, name in enumerate(config.runs):
    rows = train_run(config, name, os.path.join(workdir, name), resume)
    histories[name] = rows
    evals = [r for r in rows if "eval/token_accuracy" in r]
    final = {k.removeprefix("eval/"): v for k, v in evals[-1].items() if k != "step"}
    first = first_steps(rows, config.threshold)
    runs[name] = {"final": final, "first_step": first, "steps": int(evals[-1]["step"]),
                  "n_heads": run_model(config, name).n_heads, "distribution": RUNS[name][0]}
    elapsed = time.perf_counter() - t0
    logging.info("ktiw run %d/%d %s done: final %s first>=%.2f %s (%.0f s, ETA %.0f s)",
                 i + 1, len(config.runs), name, final, config.threshold, first, elapsed,
                 elapsed / (i + 1) * (len(config.runs) - i - 1))
  plot_curves(histories, os.path.join(workdir, "ktiw_curves.png"), config.threshold)
  results = {"threshold": config.threshold, "runs": runs, "claims": claims(runs)}
  files.write_json(os.path.join(workdir, "results.json"), results)
  logging.info("ktiw results: %s", results)
  return results


def claims(runs: dict[str, Any]) -> dict[str, bool | None]:
  """The paper's qualitative result, as measured (None where a run is missing).

  easy_ktiw_leads: on the easy run both KTIW and attention accuracy reach the threshold, KTIW
  no later. permutation_single_head_stalls: the single head's token accuracy stays below it.
  multihead_recovers: the multi-head run's token accuracy reaches it.
  """
  first = lambda name, key: runs[name]["first_step"][key]
  out = {"easy_ktiw_leads": None, "permutation_single_head_stalls": None,
         "multihead_recovers": None}
  if "easy" in runs:
    k, a = first("easy", "ktiw_accuracy"), first("easy", "attention_accuracy")
    out["easy_ktiw_leads"] = k is not None and a is not None and k <= a
  if "permutation" in runs:
    out["permutation_single_head_stalls"] = first("permutation", "token_accuracy") is None
  if "permutation_multihead" in runs:
    out["multihead_recovers"] = first("permutation_multihead", "token_accuracy") is not None
  return out


def summary(results: dict[str, Any]) -> str:
  """One line per run (final accuracies and first crossings) and the claims."""
  lines = []
  for name, r in results["runs"].items():
    fin = " ".join(f"{k}={r['final'][k]:.3f}" for k in METRICS)
    lines.append(f"{name}: {fin} first>={results['threshold']}: {r['first_step']}")
  lines.append(f"claims: {results['claims']}")
  return "\n".join(lines)
