"""The experiments of Snell, Klein & Zhong 2022 on `jaxlm.algos.context_distill`.

(1) "instruction": one rule is distilled into a model meta-trained to follow rules in its context,
then a second rule over the first (composition); (2) "scratchpad": a scratchpad adder is distilled
into direct answers, against direct fine-tuning on the same number of true (x, answer) pairs;
(3) "examples": k in-context examples of a new rule are distilled, against gradient descent on
the same k examples. Accuracy is the exact match of the greedy answer on held-out inputs, with
and without the context. `train_and_evaluate` runs them (`experiments.context_distill`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Sequence

from absl import logging
import numpy as np

from jaxlm import files
from jaxlm import plots
from jaxlm.algos.context_distill import (
    accuracy, distill_context, example_ids, replay_sample, same_params, sft_batch)
from jaxlm.algos.test_time.models import fit_lm
from jaxlm.config import TrainConfig
from jaxlm.envs.context_tasks import (
    ANSWER, SCRATCHPAD, VOCAB_SIZE, Example, addition_example, addition_pairs, all_words,
    cipher_corpus, cipher_example, examples_context, parse_answer, random_rule, rule_context,
    tokenizer)
from jaxlm.models import TransformerConfig

EXPERIMENTS = ("instruction", "scratchpad", "examples")


def _model() -> TransformerConfig:
  return TransformerConfig(vocab_size=VOCAB_SIZE, d_model=128, n_layers=2, n_heads=4, d_ff=512,
                           max_len=48)


def _run(steps: int, **kw) -> TrainConfig:
  return TrainConfig(**{"num_steps": steps, "batch_size": 64, "lr": 1e-3, "warmup": 20,
                        "log_every": 50, "checkpoint_every": 0, "keep_checkpoints": 1, **kw})


@dataclasses.dataclass(frozen=True)
class Config:
  """Context-distillation experiments.

  Attributes:
    model: the transformer (vocab_size must be VOCAB_SIZE; max_len must hold the longest row).
    experiments: which of "instruction", "scratchpad", "examples" to run ("examples" reuses the
      meta-trained cipher model of "instruction").
    letters: cipher alphabet size (the first `letters` of LETTERS).
    word_len: letters per cipher word.
    num_examples: k, worked examples in an example context (meta-training and experiment 3).
    context_mix: meta-training probabilities of (rule, examples, no) context.
    identity_fraction: meta-training rows with a context whose rule is the identity
      (`cipher_corpus`: a curriculum that breaks the loss plateau of the two-hop lookup).
    meta_rows, meta_train: meta-training corpus size and run (cipher model).
    digits: addition operand digits.
    addition_rows, addition_train: scratchpad pretraining corpus size and run.
    distill_inputs, distill_train: unlabeled cipher words per distillation, and each cipher
      distillation run (also the GD-on-k baseline: same steps and batch).
    replay_share: the expected fraction of each distillation batch that replays pretraining
      rows with their contexts (meta-training rows that have a context; scratchpad rows):
      `distill_context(replay=...)`. 0 turns replay off.
    scratchpad_inputs, scratchpad_train: unlabeled addition inputs of the scratchpad
      distillation (and the true pairs of its direct fine-tuning baseline, which replays the
      same rows) and both runs.
    eval_size: held-out inputs per accuracy (cipher words outside every training input).
    teacher_temperature: 0 = greedy teacher answers.
    seed: rules, words, corpora and evaluation sets.
  """
  model: TransformerConfig = _model()
  experiments: tuple[str, ...] = ("instruction", "scratchpad")
  letters: int = 6
  word_len: int = 4
  num_examples: int = 3
  context_mix: tuple[float, float, float] = (0.8, 0.0, 0.2)
  identity_fraction: float = 0.3
  meta_rows: int = 20000
  meta_train: TrainConfig = _run(1500, lr=3e-3, warmup=100)
  digits: int = 2
  addition_rows: int = 20000
  addition_train: TrainConfig = _run(400, lr=3e-3, warmup=50)
  distill_inputs: int = 512
  distill_train: TrainConfig = _run(400, lr=3e-3)
  replay_share: float = 0.5
  scratchpad_inputs: int = 2048
  scratchpad_train: TrainConfig = _run(600)
  eval_size: int = 256
  teacher_temperature: float = 0.0
  seed: int = 0

  def __post_init__(self):
    if self.model.vocab_size != VOCAB_SIZE:
      raise ValueError(f"Config.model.vocab_size={self.model.vocab_size} must be {VOCAB_SIZE}")
    unknown = sorted(set(self.experiments) - set(EXPERIMENTS))
    if unknown:
      raise ValueError(f"Config.experiments has unknown names {unknown}; known {EXPERIMENTS}")
    if len(self.context_mix) != 3 or min(self.context_mix) < 0 or sum(self.context_mix) <= 0:
      raise ValueError(f"Config.context_mix={self.context_mix} must be 3 probabilities")
    if "examples" in self.experiments and not self.context_mix[1] > 0:
      raise ValueError(f"Config.experiments has 'examples' but context_mix={self.context_mix} "
                       "never meta-trains on example contexts (its second entry is 0)")
    need = (max(self.num_examples * (2 * self.word_len + 2), self.letters + 1)
            + 2 * self.word_len + 2)
    need_add = 1 + 2 * self.digits + 2 + 9 * self.digits + self.digits + 3
    if max(need, need_add) > self.model.max_len:
      raise ValueError(f"Config.model.max_len={self.model.max_len} is shorter than the longest "
                       f"row ({max(need, need_add)} tokens)")
    if not 0.0 <= self.replay_share < 1.0:
      raise ValueError(f"Config.replay_share={self.replay_share} must be in [0, 1)")
    if self.eval_size + self.distill_inputs + self.num_examples > self.letters ** self.word_len:
      raise ValueError(f"Config.eval_size + distill_inputs + num_examples exceeds the "
                       f"{self.letters ** self.word_len} distinct cipher words")


def _meta_model(config: Config, workdir: str, words: list[str], resume: bool
                ) -> tuple[Any, list[Example]]:
  """(meta-trained params, its training rows that have a context: the replay pool)."""
  tok = tokenizer()
  rng = np.random.default_rng((config.seed, 1))
  corpus = cipher_corpus(rng, config.meta_rows, config.letters, words, config.num_examples,
                         config.context_mix, config.identity_fraction)
  batch = sft_batch([example_ids(tok, e) for e in corpus], tok.pad_id)
  params = fit_lm(os.path.join(workdir, "meta"), config.model, config.meta_train, batch,
                  resume=resume)
  return params, [e for e in corpus if e.context]


def _cipher_acc(config: Config, params, rule: str, words: Sequence[str], context: str
                ) -> dict[str, float]:
  """Exact-match and per-letter accuracy on `words` under `rule`, with `context` and without:
  {"with_context", "without_context", "with_context_chars", "without_context_chars"}."""
  examples = [cipher_example(rule, w, context) for w in words]
  acc = functools.partial(accuracy, config.model, params, examples,
                          max_new_tokens=config.word_len + 1)
  out = {}
  for name, with_context in (("with_context", True), ("without_context", False)):
    a = acc(with_context=with_context)
    out[name], out[name + "_chars"] = a["accuracy"], a["char_accuracy"]
  return out


def instruction_experiment(config: Config, workdir: str, meta_params, eval_words, pool,
                           resume: bool = False, replay_pool: Sequence[Example] = ()
                           ) -> dict[str, Any]:
  """(1) Distil rule 1 (then rule 2 over it, the rule-1 student being the teacher) into the
  meta-trained model, replaying `replay_pool` rows (`Config.replay_share`)."""
  rng = np.random.default_rng((config.seed, 2))
  rule1, rule2 = random_rule(rng, config.letters), random_rule(rng, config.letters)
  inputs = [w + "=" for w in rng.choice(pool, config.distill_inputs, replace=False)]
  distill = functools.partial(distill_context, model_config=config.model,
                              train=config.distill_train, max_new_tokens=config.word_len + 1,
                              temperature=config.teacher_temperature, resume=resume)
  before = _cipher_acc(config, meta_params, rule1, eval_words, rule_context(rule1))
  d1 = distill(os.path.join(workdir, "instruction_rule1"), params=meta_params,
               context=rule_context(rule1), inputs=inputs,
               replay=replay_sample(rng, replay_pool, len(inputs), config.replay_share))
  after = _cipher_acc(config, d1.params, rule1, eval_words, rule_context(rule1))
  d2 = distill(os.path.join(workdir, "instruction_rule2"), params=d1.params,
               context=rule_context(rule2), inputs=inputs,
               replay=replay_sample(rng, replay_pool, len(inputs), config.replay_share))
  rule2_after = _cipher_acc(config, d2.params, rule2, eval_words, rule_context(rule2))
  rule1_after2 = _cipher_acc(config, d2.params, rule1, eval_words, rule_context(rule1))
  return {
      "rules": [rule1, rule2],
      "with_context": before["with_context"],
      "no_context_before": before["without_context"],
      "with_context_after": after["with_context"],
      "no_context_after": after["without_context"],
      "then_rule2_with_context": rule2_after["with_context"],
      "then_rule2_no_context": rule2_after["without_context"],
      "then_rule1_no_context": rule1_after2["without_context"],
      "then_rule1_with_context": rule1_after2["with_context"],
      "rule2_teacher_is_rule1_student": same_params(d2.teacher_params, d1.params),
  }


def examples_experiment(config: Config, workdir: str, meta_params, eval_words, pool,
                        resume: bool = False, replay_pool: Sequence[Example] = ()
                        ) -> dict[str, Any]:
  """(3) Distil k in-context examples of a new rule vs gradient descent on the same k."""
  rng = np.random.default_rng((config.seed, 3))
  rule = random_rule(rng, config.letters)
  picks = list(rng.choice(pool, config.num_examples + config.distill_inputs, replace=False))
  shots, inputs = picks[:config.num_examples], [w + "=" for w in picks[config.num_examples:]]
  context = examples_context(rule, shots)
  before = _cipher_acc(config, meta_params, rule, eval_words, context)
  d = distill_context(os.path.join(workdir, "examples_distill"), config.model, meta_params,
                      context, inputs, config.distill_train, max_new_tokens=config.word_len + 1,
                      temperature=config.teacher_temperature, resume=resume,
                      replay=replay_sample(rng, replay_pool, len(inputs), config.replay_share))
  tok = tokenizer()
  shot_rows = [example_ids(tok, cipher_example(rule, w)) for w in shots]
  gd = fit_lm(os.path.join(workdir, "examples_gd"), config.model, config.distill_train,
              sft_batch(shot_rows, tok.pad_id), resume=resume,
              pretrained=meta_params)
  after = _cipher_acc(config, d.params, rule, eval_words, context)
  gd_acc = _cipher_acc(config, gd, rule, eval_words, context)
  out = {"rule": rule, "examples": context,
         # the same meta-model reading the rule itself: does it follow contexts at all?
         "rule_context_before": _cipher_acc(config, meta_params, rule, eval_words,
                                            rule_context(rule))["with_context"],
         "covered_by_examples": float(np.mean([set(w) <= set("".join(shots))
                                               for w in eval_words]))}
  for suffix in ("", "_chars"):  # exact match, then the share of answer letters right
    out.update({
        "with_context" + suffix: before["with_context" + suffix],
        "no_context_before" + suffix: before["without_context" + suffix],
        "with_context_after" + suffix: after["with_context" + suffix],
        "no_context_after" + suffix: after["without_context" + suffix],
        "gd_on_k_with_context" + suffix: gd_acc["with_context" + suffix],
        "gd_on_k_no_context" + suffix: gd_acc["without_context" + suffix]})
  return out


def scratchpad_experiment(config: Config, workdir: str, resume: bool = False) -> dict[str, Any]:
  """(2) Distil the scratchpad into direct answers vs direct fine-tuning on true pairs."""
  tok, d = tokenizer(), config.digits
  rng = np.random.default_rng((config.seed, 4))
  eval_pairs = addition_pairs(rng, config.eval_size, d)
  held_out = set(eval_pairs)  # no training row (scratchpad, distillation, baseline) has these

  def train_pairs(n):
    return [p for p in addition_pairs(rng, 2 * n, d) if p not in held_out][:n]

  corpus = [addition_example(a, b, d, True) for a, b in train_pairs(config.addition_rows)]
  batch = sft_batch([example_ids(tok, e) for e in corpus], tok.pad_id)
  params = fit_lm(os.path.join(workdir, "adder"), config.model, config.addition_train, batch,
                  resume=resume)
  evals = [addition_example(a, b, d, True) for a, b in eval_pairs]
  direct = [addition_example(int(e.prompt[:d]), int(e.prompt[d + 1:2 * d + 1]), d, False)
            for e in evals]
  pad_len = len(evals[0].completion) + 1

  def measure(p):
    return {"with_context": accuracy(config.model, p, evals, with_context=True,
                                     max_new_tokens=pad_len, delimiter=ANSWER)["accuracy"],
            "without_context": accuracy(config.model, p, direct, with_context=False,
                                        max_new_tokens=pad_len)["accuracy"]}

  before = measure(params)
  pairs = train_pairs(config.scratchpad_inputs)
  inputs = [f"{a:0{d}d}+{b:0{d}d}=" for a, b in pairs]
  replay = replay_sample(rng, corpus, len(inputs), config.replay_share)
  distilled = distill_context(
      os.path.join(workdir, "scratchpad_distill"), config.model, params, SCRATCHPAD, inputs,
      config.scratchpad_train, variant="sampled", max_new_tokens=pad_len, delimiter=ANSWER,
      temperature=config.teacher_temperature, replay=replay, resume=resume)
  teacher_right = [parse_answer(t, ANSWER) == f"{a + b:0{d + 1}d}"
                   for t, (a, b) in zip(distilled.completions, pairs)]
  after = measure(distilled.params)
  true_rows = [example_ids(tok, addition_example(a, b, d, False)) for a, b in pairs]
  finetuned = fit_lm(os.path.join(workdir, "scratchpad_direct_ft"), config.model,
                     config.scratchpad_train,
                     sft_batch(true_rows + [example_ids(tok, e) for e in replay], tok.pad_id),
                     resume=resume, pretrained=params)
  ft = measure(finetuned)
  return {
      "with_context": before["with_context"],
      "no_context_before": before["without_context"],
      "with_context_after": after["with_context"],
      "no_context_after": after["without_context"],
      "direct_finetune_no_context": ft["without_context"],
      "direct_finetune_with_context": ft["with_context"],
      "teacher_answers_correct": float(np.mean(teacher_right)),
      "distill_rows": distilled.rows,
  }


BARS = {  # results key -> bar label
    "with_context": "context, before", "no_context_before": "no context, before",
    "with_context_after": "context, after", "no_context_after": "no context, after",
    "direct_finetune_no_context": "direct FT (true pairs)",
    "gd_on_k_no_context": "GD on k examples",
    "gd_on_k_with_context": "GD on k, context",
    "then_rule2_no_context": "+ rule 2: rule 2, no context",
    "then_rule1_no_context": "+ rule 2: rule 1, no context",
    "then_rule1_with_context": "+ rule 2: rule 1, context",
}


def plot_results(results: dict[str, dict[str, Any]], path: str) -> None:
  """One bar panel of accuracies per experiment (PNG)."""
  names = [n for n in EXPERIMENTS if n in results]
  fig, axes = plots.pyplot().subplots(1, len(names), figsize=(4.2 * len(names), 3.6),
                                      squeeze=False)
  for ax, name in zip(axes[0], names):
    keys = [k for k in BARS if k in results[name]]
    bars = ax.bar(range(len(keys)), [results[name][k] for k in keys], color="C0")
    ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([BARS[k] for k in keys], rotation=45, ha="right", fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("exact-match accuracy")
    ax.set_title(name)
    ax.grid(axis="y", alpha=0.3)
  plots.save(fig, path)


def train_and_evaluate(config: Config, workdir: str, resume: bool = False) -> dict[str, Any]:
  """Runs `config.experiments`; writes results.json and accuracy.png in `workdir`.

  results.json has one entry per experiment ("instruction", "scratchpad", "examples"), each
  with "with_context" (the model before distillation, its context given), "no_context_before",
  "no_context_after" and "with_context_after" exact-match accuracies, plus the experiment's
  baseline ("direct_finetune_no_context" for the scratchpad, "gd_on_k_no_context" for the
  examples) and its own extras.

  Every training run has its own directory under `workdir` (meta/, instruction_rule1/, ...);
  `resume` continues each from its checkpoints (finished runs are loaded, not retrained).
  """
  results = {}
  if {"instruction", "examples"} & set(config.experiments):
    words = all_words(config.letters, config.word_len)
    np.random.default_rng((config.seed, 0)).shuffle(words)
    eval_words, pool = words[:config.eval_size], words[config.eval_size:]
    meta, replay_pool = _meta_model(config, workdir, pool, resume)
    if "instruction" in config.experiments:
      results["instruction"] = instruction_experiment(config, workdir, meta, eval_words, pool,
                                                      resume, replay_pool)
      logging.info("instruction: %s", results["instruction"])
    if "examples" in config.experiments:
      results["examples"] = examples_experiment(config, workdir, meta, eval_words, pool, resume,
                                                replay_pool)
      logging.info("examples: %s", results["examples"])
  if "scratchpad" in config.experiments:
    results["scratchpad"] = scratchpad_experiment(config, workdir, resume)
    logging.info("scratchpad: %s", results["scratchpad"])
  files.write_json(os.path.join(workdir, "results.json"), results)
  plot_results(results, os.path.join(workdir, "accuracy.png"))
  return results


def summary(results: dict[str, Any]) -> str:
  """One line per experiment: its accuracies."""
  return "\n".join(f"{name}: " + " ".join(f"{k}={v:.3f}" for k, v in r.items()
                                          if isinstance(v, float)) for name, r in results.items())
