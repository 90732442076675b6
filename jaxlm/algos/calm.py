"""CALM: context-aware language modelling for goal-oriented dialogue (Snell, Yang, Fu, Su, Levine
2022, "Context-Aware Language Modeling for Goal-Oriented Dialogue Systems"), on the synthetic
flight-booking task of `jaxlm.envs.dialogue`.

A transformer LM is trained on logged dialogues conditioned on their context (the flight
table): the LM loss covers every dialogue token after the table (customer and agent turns: the
LM models both the policy and the customer). The logged agent is noisy (a share of wrong final
actions). CALM adds two things to this conditional behaviour cloning (BC):

* Task relabeling (Sec. 4): `relabel` resamples a logged dialogue's context until its logged
  final action is correct under it (keeping the original with a small probability; a retry
  cap), so wrong demonstrations become correct ones for another table, and every draw of a
  dialogue sees a fresh table. Relabeling happens when a batch is drawn (batch i depends only
  on (seed, i), so resume is exact).
* An auxiliary head (`jaxlm.losses.calm`) on the LM's hidden states predicting the final action
  (factored status x flight slot) at every position before it, trained with -log of the summed
  probability of the valid actions, weighted into the LM loss. The valid set comes from the
  logged customer goal and the (possibly relabeled) table.

`train_and_evaluate` trains the ablation (`VARIANTS`: bc, relabel, aux, calm) with the same
steps, batches and seed through `jaxlm.train.fit`, in `Config.seeds` independent replicates
(results: mean and standard error over replicates, and the paired calm - bc difference), and
evaluates on held-out dialogues (fresh tables and goals, the same for every replicate): the
agent's final action decoded greedily with `jaxlm.generate` after the table, the customer
turns and "agent:" (success = the parsed action is valid), and the aux head's accuracy by
dialogue position (table, turn 1..3, "agent:").
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, TypeVar

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import checkpoint as checkpoint_lib
from jaxlm import files
from jaxlm import metrics as metrics_lib
from jaxlm import plots
from jaxlm import train as train_lib
from jaxlm.config import TrainConfig
from jaxlm.data.iterators import IndexedBatches
from jaxlm.envs import dialogue as dlg
from jaxlm.envs.base import mean_confidence_interval
from jaxlm.generation import generate
from jaxlm.losses.calm import calm_aux_loss, calm_aux_terms
from jaxlm.losses.lm import masked_mean, token_nll
from jaxlm.models import MLPHead, Transformer, TransformerConfig

C = TypeVar("C")
D = TypeVar("D")
A = TypeVar("A")

# variant -> (relabel contexts, auxiliary head)
VARIANTS = {"bc": (False, False), "relabel": (True, False), "aux": (False, True),
            "calm": (True, True)}
NUM_TURNS = len(dlg.ATTRIBUTES)
POSITIONS = ("table",) + tuple(f"turn {j + 1}" for j in range(NUM_TURNS)) + ("agent:",)
_ACTION_SEGMENT = NUM_TURNS + 2  # segment ids: 0 table, 1..3 turns, 4 "agent:", 5 the action


def relabel(context: C, dialogue: D, action: A, rng: np.random.Generator,
            sample_context: Callable[[np.random.Generator], C],
            is_correct: Callable[[C, D, A], bool], *, keep_prob: float, max_tries: int
            ) -> tuple[C, bool]:
  """Task relabeling (Snell et al. 2022, Sec. 4): a context under which `action` is correct.

  Draws u ~ U[0, 1) from `rng` first. If u < keep_prob the original `context` is kept (even when
  the action is wrong under it: the model still sees the logged distribution). Otherwise up to
  `max_tries` contexts are drawn with `sample_context(rng)` and the first one for which
  `is_correct(context, dialogue, action)` holds is returned; after `max_tries` failures the
  original context is returned.

  Returns:
    (context, ok): the context to train on, and whether `action` is correct under it.
  """
  if not 0.0 <= keep_prob <= 1.0 or max_tries < 0:
    raise ValueError(f"relabel: need keep_prob in [0, 1] and max_tries >= 0, got "
                     f"keep_prob={keep_prob}, max_tries={max_tries}")
  if rng.random() < keep_prob:
    return context, bool(is_correct(context, dialogue, action))
  for _ in range(max_tries):
    candidate = sample_context(rng)
    if is_correct(candidate, dialogue, action):
      return candidate, True
  return context, bool(is_correct(context, dialogue, action))


def relabel_dialogue(d: dlg.Dialogue, rng: np.random.Generator, *, keep_prob: float,
                     max_tries: int) -> tuple[dlg.Table, bool]:
  """`relabel` of a logged flight dialogue: a table under which its logged action is valid."""
  return relabel(d.table, d, d.action, rng,
                 lambda r: dlg.sample_table(r, len(d.table)),
                 lambda table, x, a: dlg.is_success(table, x.constraints, a),
                 keep_prob=keep_prob, max_tries=max_tries)


@dataclasses.dataclass(frozen=True)
class Config:
  """CALM ablation configuration.

  Attributes:
    model: the transformer trunk (vocab_size must be the task tokenizer's).
    task: the dialogue distribution and the logger's noise (`jaxlm.envs.dialogue`).
    train: the training run of each variant (`jaxlm.config.TrainConfig`); replicate r trains
      with seed `train.seed + r`, which also seeds its logged data and relabeling.
    variants: which of `VARIANTS` to train (bc, relabel, aux, calm), in this order.
    num_dialogues: logged training dialogues.
    eval_dialogues: held-out dialogues (fresh tables and goals).
    aux_weight: weight of the auxiliary loss in the variants with the aux head.
    keep_prob: relabeling keeps the original table with this probability.
    max_tries: relabeling draws at most this many tables per dialogue.
    head_mult: hidden width of the aux head's MLP, in multiples of d_model.
    eval_every: steps between held-out success evaluations (0 = start and end only).
    seeds: independent replicates (logged data, init, batches, relabeling) of the whole
      ablation; every replicate is scored on the same held-out dialogues (seeded by
      (train.seed, 1), a stream no replicate's logged data uses).
  """
  model: TransformerConfig = TransformerConfig(
      vocab_size=40, d_model=64, n_layers=3, n_heads=4, d_ff=256, max_len=32)
  task: dlg.DialogueConfig = dlg.DialogueConfig()
  train: TrainConfig = TrainConfig(num_steps=1200, batch_size=32, lr=3e-3, warmup=50,
                                   weight_decay=0.1, log_every=100, checkpoint_every=600,
                                   keep_checkpoints=1)
  variants: tuple[str, ...] = ("bc", "relabel", "aux", "calm")
  num_dialogues: int = 2000
  eval_dialogues: int = 500
  aux_weight: float = 1.0
  keep_prob: float = 0.1
  max_tries: int = 100
  head_mult: int = 1
  eval_every: int = 200
  seeds: int = 1

  def __post_init__(self):
    tok = dlg.make_tokenizer(self.task.num_flights)
    if self.model.vocab_size != tok.vocab_size:
      raise ValueError(f"model.vocab_size={self.model.vocab_size} must equal the task "
                       f"tokenizer's {tok.vocab_size}")
    need = dlg.max_tokens(self.task, tok)
    if self.model.max_len < need:
      raise ValueError(f"model.max_len={self.model.max_len} is shorter than the longest "
                       f"dialogue ({need} tokens)")
    unknown = [v for v in self.variants if v not in VARIANTS]
    if unknown or not self.variants:
      raise ValueError(f"Config.variants={self.variants}: unknown {unknown}; choose from "
                       f"{tuple(VARIANTS)}")
    for name in ("num_dialogues", "eval_dialogues", "head_mult", "seeds"):
      if getattr(self, name) < 1:
        raise ValueError(f"Config.{name}={getattr(self, name)} must be >= 1")
    if self.aux_weight < 0 or self.eval_every < 0:
      raise ValueError(f"Config.aux_weight={self.aux_weight} and eval_every={self.eval_every} "
                       "must be >= 0")
    if not 0.0 <= self.keep_prob <= 1.0 or self.max_tries < 0:
      raise ValueError(f"Config.keep_prob={self.keep_prob} must be in [0, 1] and max_tries="
                       f"{self.max_tries} >= 0")


# ---------------------------------------------------------------------------------------------
# Data.


def make_batch(encoded: list[tuple[list[int], list[int]]], valid: list[tuple[int, ...]],
               max_len: int, num_actions: int, pad_id: int) -> dict[str, np.ndarray]:
  """Right-padded arrays of encoded dialogues (`dlg.encode`) and their valid action sets.

  Masks are in the decision frame (position t scores token t + 1): `lm_mask` where token t + 1
  is a dialogue token (after the table), `action_mask` where it is the final action, `aux_mask`
  at every token before the final action; `segment` is -1 on padding.
  """
  b = len(encoded)
  tokens = np.full((b, max_len), pad_id, np.int32)
  segment = np.full((b, max_len), -1, np.int32)
  for i, (ids, seg) in enumerate(encoded):
    if len(ids) > max_len:
      raise ValueError(f"dialogue {i} has {len(ids)} tokens > max_len={max_len}")
    tokens[i, :len(ids)], segment[i, :len(ids)] = ids, seg
  next_seg = np.concatenate([segment[:, 1:], np.full((b, 1), -1, np.int32)], axis=1)
  valid_BxA = np.zeros((b, num_actions), np.float32)
  for i, v in enumerate(valid):
    valid_BxA[i, list(v)] = 1.0
  f32 = lambda x: x.astype(np.float32)
  return {"tokens": tokens, "attention_mask": f32(segment >= 0), "lm_mask": f32(next_seg >= 1),
          "action_mask": f32(next_seg == _ACTION_SEGMENT),
          "aux_mask": f32((segment >= 0) & (segment < _ACTION_SEGMENT)), "valid": valid_BxA,
          "segment": segment}


def encode_dialogues(dialogues: list[dlg.Dialogue], tables: list[dlg.Table], config: Config
                     ) -> dict[str, np.ndarray]:
  """`make_batch` of `dialogues`, each with the context `tables[i]` (original or relabeled)."""
  tok = dlg.make_tokenizer(config.task.num_flights)
  encoded = [dlg.encode(d, tok, t) for d, t in zip(dialogues, tables)]
  valid = [dlg.valid_actions(t, d.constraints) for d, t in zip(dialogues, tables)]
  return make_batch(encoded, valid, config.model.max_len, config.task.num_actions, tok.pad_id)


class DialogueBatches(IndexedBatches):
  """Rows of the logged dialogues drawn with replacement; relabeled when `relabel_contexts`."""

  def __init__(self, logged: list[dlg.Dialogue], config: Config, relabel_contexts: bool):
    super().__init__(config.train.seed)
    self.logged, self.config, self.relabel_contexts = logged, config, relabel_contexts

  def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
    rows = [self.logged[i] for i in rng.integers(0, len(self.logged),
                                                 self.config.train.batch_size)]
    tables = [d.table for d in rows]
    if self.relabel_contexts:
      tables = [relabel_dialogue(d, rng, keep_prob=self.config.keep_prob,
                                 max_tries=self.config.max_tries)[0] for d in rows]
    return encode_dialogues(rows, tables, self.config)

  def num_tokens(self, batch: dict[str, np.ndarray]) -> int:
    return int(batch["attention_mask"].sum())


# ---------------------------------------------------------------------------------------------
# Networks and loss.


def networks(config: Config):
  """(init_fn, outputs_fn): the trunk with the aux head (status x slot logits) on its hidden
  states. `outputs_fn(params, tokens, mask) -> (logits_BxTxV, status_BxTxS, slot_BxTxK)`."""
  model = Transformer(config.model)
  s = len(dlg.STATUSES)
  head = MLPHead(s + config.task.num_flights, hidden_mult=config.head_mult, out_axis=None)

  def init_fn(key):
    k1, k2 = jax.random.split(key)
    return {"lm": model.init(k1, jnp.zeros((1, 8), jnp.int32))["params"],
            "aux": head.init(k2, jnp.zeros((1, 1, config.model.d_model)))["params"]}

  def outputs_fn(params, tokens_BxT, mask_BxT):
    out = model.apply({"params": params["lm"]}, tokens_BxT, attention_mask_BxT=mask_BxT)
    z_BxTxO = head.apply({"params": params["aux"]}, out.hidden)
    return out.logits, z_BxTxO[..., :s], z_BxTxO[..., s:]

  return model, init_fn, outputs_fn


def make_loss_fn(outputs_fn, aux_weight: float):
  """LM loss on the dialogue tokens (+ aux_weight * L_aux when aux_weight > 0)."""
  def loss_fn(params, batch, rng, *, state):
    del rng, state
    tokens_BxT = batch["tokens"]
    logits_BxTxV, status_BxTxS, slot_BxTxK = outputs_fn(params, tokens_BxT,
                                                        batch["attention_mask"])
    targets_BxT = jnp.concatenate([tokens_BxT[:, 1:], jnp.zeros_like(tokens_BxT[:, :1])], 1)
    nll_BxT = jax.vmap(token_nll)(logits_BxTxV, targets_BxT)
    lm = masked_mean(nll_BxT, batch["lm_mask"])
    metrics = {"lm_loss": lm, "action_nll": masked_mean(nll_BxT, batch["action_mask"])}
    if not aux_weight:
      return lm, metrics
    aux, aux_metrics = calm_aux_loss(status_BxTxS, slot_BxTxK, batch["valid"],
                                     batch["aux_mask"], slotted=dlg.SLOTTED)
    return lm + aux_weight * aux, {**metrics, **aux_metrics}
  return loss_fn


# ---------------------------------------------------------------------------------------------
# Evaluation.


def prompts(batch: dict[str, np.ndarray], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  """Left-padded prompts: each row up to and including "agent:" (no action)."""
  keep_BxT = (batch["segment"] >= 0) & (batch["segment"] < _ACTION_SEGMENT)
  lengths_B = keep_BxT.sum(1)
  p = int(lengths_B.max())
  tokens = np.full((len(lengths_B), p), pad_id, np.int32)
  mask = np.zeros((len(lengths_B), p), np.int32)
  for i, n in enumerate(lengths_B):
    tokens[i, p - n:], mask[i, p - n:] = batch["tokens"][i, :n], 1
  return tokens, mask


class Evaluator:
  """Held-out success (greedy `jaxlm.generate`) and aux accuracy by dialogue position."""

  def __init__(self, config: Config, model: Transformer, outputs_fn):
    self.config, self.model = config, model
    self.tok = dlg.make_tokenizer(config.task.num_flights)
    clean = dataclasses.replace(config.task, noise=0.0)
    self.dialogues = dlg.log_dialogues(config.eval_dialogues, (config.train.seed, 1), clean)
    self.batch = encode_dialogues(self.dialogues, [d.table for d in self.dialogues], config)
    self.prompt, self.prompt_mask = prompts(self.batch, self.tok.pad_id)
    self.newline = dlg.action_tokens(self.tok, ["\n"])
    self._correct = jax.jit(lambda params, b: calm_aux_terms(
        *outputs_fn(params, b["tokens"], b["attention_mask"])[1:], b["valid"],
        slotted=dlg.SLOTTED)[1])

  def actions(self, params) -> list[int | None]:
    out = generate(self.model, params["lm"], jnp.asarray(self.prompt),
                   jnp.asarray(self.prompt_mask), max_new_tokens=4, temperature=0.0,
                   stop_tokens=self.newline, pad_id=self.tok.pad_id)
    k = self.config.task.num_flights
    return [dlg.parse_action(self.tok.decode(row), k)
            for row in np.asarray(jax.device_get(out.tokens_BxN))]

  def best_constant_success(self) -> float:
    """Held-out success of the best fixed final action (e.g. always "no flight")."""
    k = self.config.task.num_flights
    return max(float(np.mean([dlg.is_success(d.table, d.constraints, a) for d in self.dialogues]))
               for a in range(k + 1))

  def success(self, params) -> np.ndarray:
    """Per held-out dialogue, 1.0 if the decoded final action is valid."""
    return np.array([dlg.is_success(d.table, d.constraints, a)
                     for d, a in zip(self.dialogues, self.actions(params))], np.float64)

  def aux_accuracy_by_position(self, params) -> list[float]:
    """Mean aux-head accuracy over the tokens of each of `POSITIONS`."""
    correct = np.asarray(self._correct(params, self.batch))
    seg = self.batch["segment"]
    return [float(correct[seg == j].mean()) for j in range(len(POSITIONS))]


# ---------------------------------------------------------------------------------------------
# The ablation.


def relabel_stats(logged: list[dlg.Dialogue], config: Config) -> dict[str, float]:
  """Share of logged dialogues whose action is valid before and after one `relabel` pass."""
  rng = np.random.default_rng((config.train.seed, 2))
  after = [relabel_dialogue(d, rng, keep_prob=config.keep_prob, max_tries=config.max_tries)[1]
           for d in logged]
  before = [dlg.is_success(d.table, d.constraints, d.action) for d in logged]
  return {"logged_success": float(np.mean(before)), "relabeled_success": float(np.mean(after))}


def train_variant(name: str, config: Config, logged: list[dlg.Dialogue], evaluator: Evaluator,
                  init_fn, outputs_fn, run_dir: str, resume: bool) -> dict[str, Any]:
  """Trains one variant in `run_dir` and evaluates it on the held-out dialogues."""
  relabel_contexts, aux = VARIANTS[name]
  loss_fn = make_loss_fn(outputs_fn, config.aux_weight if aux else 0.0)
  state, _ = train_lib.fit(
      run_dir, config.train, init_fn, loss_fn, DialogueBatches(logged, config, relabel_contexts),
      resume=resume, eval_fn=lambda st: {"success": evaluator.success(st.params).mean()},
      eval_every=config.eval_every, saved_config=config, show=("loss", "action_nll"))
  success = evaluator.success(state.params)
  mean, ci = mean_confidence_interval(success)
  rows = metrics_lib.read_metrics(run_dir)
  train_rows = [r for r in rows if "loss" in r]
  return {
      "relabel": relabel_contexts, "aux": aux, "success": mean, "success_ci95": ci,
      "aux_accuracy_by_position": (evaluator.aux_accuracy_by_position(state.params) if aux
                                   else None),
      "success_curve": [[int(r["step"]), r["eval/success"]] for r in rows
                        if "eval/success" in r],
      "final_action_nll": train_rows[-1]["action_nll"] if train_rows else None,
      "steps": int(state.step),
  }


def mean_se(values) -> tuple[float, float | None]:
  """Mean and standard error over replicates (None with a single replicate)."""
  x = np.asarray(values, np.float64)
  return float(x.mean()), (float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else None)


def combine_replicates(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
  """One ablation row from its replicates: means (and the SE of the success) over seeds."""
  first = per_seed[0]
  success, se = mean_se([r["success"] for r in per_seed])
  acc = [r["aux_accuracy_by_position"] for r in per_seed]
  curves = [r["success_curve"] for r in per_seed]
  return {
      "relabel": first["relabel"], "aux": first["aux"], "success": success, "success_se": se,
      "success_per_seed": [r["success"] for r in per_seed],
      "success_ci95_per_seed": [r["success_ci95"] for r in per_seed],
      "aux_accuracy_by_position": (np.mean(acc, axis=0).tolist() if first["aux"] else None),
      "success_curve": [[c[0][0], float(np.mean([x[1] for x in c]))] for c in zip(*curves)],
      "final_action_nll": (float(np.mean([r["final_action_nll"] for r in per_seed]))
                           if first["final_action_nll"] is not None else None),
      "steps": first["steps"],
  }


def train_and_evaluate(config: Config, workdir: str, resume: bool = False) -> dict[str, Any]:
  """Trains every variant in each of `config.seeds` replicates, evaluates them on the shared
  held-out dialogues, writes results.json and calm.png in `workdir`.

  Returns:
    {"variants": {name: row}, "logged_success", "relabeled_success",
    "best_constant_success", "calm_minus_bc", "calm_minus_bc_se", ...};
    a row holds held-out success (mean over replicates, its standard error and the per-seed
    values with their 95% CIs over held-out dialogues), the aux accuracy by position (aux
    variants), the success curve over training and the final train NLL of the action tokens
    (means over replicates). `calm_minus_bc` is the mean paired (same seed) difference.
  """
  seeds = [config.train.seed + r for r in range(config.seeds)]
  run_dir = lambda seed, name: os.path.join(workdir, f"seed{seed}", name)
  if resume:
    checkpoint_lib.require_checkpoint(os.path.join(run_dir(seeds[0], config.variants[0]),
                                                   "checkpoints"))
  model, init_fn, outputs_fn = networks(config)
  evaluator = Evaluator(config, model, outputs_fn)
  per_seed = {name: [] for name in config.variants}
  stats = []
  for i, seed in enumerate(seeds):
    replicate = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=seed))
    logged = dlg.log_dialogues(config.num_dialogues, seed, config.task)
    stats.append(relabel_stats(logged, replicate))
    for j, name in enumerate(config.variants):
      logging.info("calm: seed %d (%d/%d), variant %s (%d/%d)", seed, i + 1, len(seeds), name,
                   j + 1, len(config.variants))
      row = train_variant(name, replicate, logged, evaluator, init_fn, outputs_fn,
                          run_dir(seed, name), resume)
      per_seed[name].append(row)
      logging.info("calm: seed %d %s held-out success %.3f", seed, name, row["success"])
  rows = {name: combine_replicates(r) for name, r in per_seed.items()}
  results = {"variants": rows, "seeds": seeds,
             **{k: float(np.mean([s[k] for s in stats])) for k in stats[0]},
             "best_constant_success": evaluator.best_constant_success(),
             "positions": list(POSITIONS)}
  if "bc" in rows and "calm" in rows:
    diff = [c["success"] - b["success"] for c, b in zip(per_seed["calm"], per_seed["bc"])]
    results["calm_minus_bc"], results["calm_minus_bc_se"] = mean_se(diff)
  acc = (rows.get("calm") or rows.get("aux") or {}).get("aux_accuracy_by_position")
  if acc:
    results["aux_accuracy_rises"] = bool(acc[-1] > acc[0])
  files.write_json(os.path.join(workdir, "results.json"), results)
  plot(results, os.path.join(workdir, "calm.png"))
  return results


def plot(results: dict[str, Any], path: str) -> None:
  """Held-out success by variant, aux accuracy by dialogue position, success over training."""
  rows = results["variants"]
  fig, axes = plots.pyplot().subplots(1, 3, figsize=(13, 3.8))
  names = list(rows)
  axes[0].bar(names, [rows[n]["success"] for n in names],
              yerr=[rows[n]["success_se"] or 0.0 for n in names], capsize=4, alpha=0.7)
  for i, n in enumerate(names):  # the replicates
    axes[0].plot([i] * len(rows[n]["success_per_seed"]), rows[n]["success_per_seed"], "k.")
  axes[0].axhline(results["logged_success"], color="k", ls="--", lw=1, label="logged data")
  axes[0].axhline(results["best_constant_success"], color="gray", ls=":", lw=1,
                  label="best fixed action")
  axes[0].set_ylabel(f"held-out task success (mean +- SE, {len(results['seeds'])} seeds)")
  axes[0].set_ylim(0, 1)
  axes[0].legend(fontsize=8)
  for n in names:
    if rows[n]["aux_accuracy_by_position"]:
      axes[1].plot(results["positions"], rows[n]["aux_accuracy_by_position"], marker="o",
                   label=n)
    if rows[n]["success_curve"]:
      axes[2].plot(*zip(*rows[n]["success_curve"]), marker=".", label=n)
  axes[1].set_ylabel("aux head accuracy")
  axes[1].set_xlabel("dialogue position")
  axes[2].set_xlabel("step")
  axes[2].set_ylabel("held-out success")
  for ax in axes[1:]:
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  plots.save(fig, path)


def summary(results: dict[str, Any]) -> str:
  """One line: held-out success per variant and the relabeling statistics."""
  se = lambda x: "" if x is None else f"+-{x:.3f}"
  parts = [f"{n}={r['success']:.3f}{se(r['success_se'])}"
           for n, r in results["variants"].items()]
  if "calm_minus_bc" in results:
    parts.append(f"calm-bc={results['calm_minus_bc']:+.3f}{se(results['calm_minus_bc_se'])}")
  parts.append(f"logged={results['logged_success']:.3f}")
  parts.append(f"relabeled={results['relabeled_success']:.3f}")
  parts.append(f"best_fixed_action={results['best_constant_success']:.3f}")
  return f"success ({len(results['seeds'])} seeds, mean+-SE): " + " ".join(parts)
