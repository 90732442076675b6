"""Context distillation (Snell, Klein & Zhong 2022, "Learning by Distilling Context").

A teacher (a frozen copy of the model) reads [context c; input x]; the student (the same model,
trained) reads only [x] and learns to answer as the teacher does. Two variants:

* "kl": the teacher answers each unlabeled input with `jaxlm.generate`; the student minimises
  the token-level KL(teacher || student) over the full vocabulary at the answer positions
  (`jaxlm.losses.distill`). The teacher's logits are computed INSIDE the train step from the
  frozen copy of the initial params that `jaxlm.train.fit` keeps in `TrainState.extra`
  (`extra_fn`): nothing [N, T, V] is precomputed, and the teacher of a run is, by construction,
  the params the run started from. The batch carries the teacher rows [c; x; y];
  `strip_context` lines the student rows [x; y] up with them.
* "sampled": the teacher generates [scratchpad; delimiter; answer] from [c; x]; the answer
  (after the last delimiter) becomes the student's SFT target on [x] (behaviour cloning through
  `jaxlm.algos.test_time.models.fit_lm`). Inputs whose sample has no delimiter or never ended
  are dropped.

`distill_context(...)` returns new params, so operations compose: distilling c2 into the params
that came out of distilling c1 uses those params both as the student's start and as the teacher.
That needs replay: a student trained only on context-free rows forgets how to read a context
(measured: with-context accuracy 1.00 -> 0.00 after one distillation), and is then a useless
teacher for the next context. `distill_context(replay=...)` mixes pretraining rows, kept WITH
their contexts, into the training set (`Config.replay_share` of each batch in expectation).

Tasks: `jaxlm.envs.context_tasks` (a cipher with a rule or worked examples as its context,
addition with a scratchpad).

Experiments (`train_and_evaluate`): (1) "instruction": one rule is distilled into a model
meta-trained to follow rules in its context, then a second rule over the first (composition);
(2) "scratchpad": a scratchpad adder is distilled into direct answers, against direct
fine-tuning on the same number of true (x, answer) pairs; (3) "examples": k in-context examples
of a new rule are distilled, against gradient descent on the same k examples. Accuracy is the
exact match of the greedy answer on held-out inputs, with and without the context.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Sequence

from absl import logging
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import files
from jaxlm import generation
from jaxlm import plots
from jaxlm import train as train_lib
from jaxlm.algos.test_time.models import fit_lm
from jaxlm.config import TrainConfig
from jaxlm.data import SimpleTokenizer
from jaxlm.data.iterators import RandomBatches
from jaxlm.envs.context_tasks import (  # re-exported: the task is part of this module's API
    ALPHABET, ANSWER, EXAMPLE_END, LETTERS, RULE_END, SCRATCHPAD, VOCAB_SIZE, Example,
    addition_example, addition_pairs, addition_scratchpad, all_words, apply_rule,
    cipher_corpus, cipher_example, examples_context, parse_answer, random_rule, rule_context,
    tokenizer)
from jaxlm.envs.countdown_data import lm_batch
from jaxlm.losses.distill import context_distill_loss, strip_context
from jaxlm.models import Transformer, TransformerConfig, lm_networks
from jaxlm.search.lm import encode_prompts, left_align

EXPERIMENTS = ("instruction", "scratchpad", "examples")
VARIANTS = ("kl", "sampled")


# ---------------------------------------------------------------------------------------------
# Batches.


def sft_batch(rows: Sequence[tuple[list[int], list[int]]], pad_id: int):
  """(prompt, completion) id rows -> an RLBatch as long as its longest row (loss on the
  completions; `jaxlm.envs.countdown_data.lm_batch`)."""
  return lm_batch(rows, max(len(p) + len(c) for p, c in rows), pad_id)


def example_ids(tok: SimpleTokenizer, example: Example, with_context: bool = True
                ) -> tuple[list[int], list[int]]:
  """(prompt ids, completion ids + eos) of one example."""
  context = example.context if with_context else ""
  return tok.encode(context + example.prompt), tok.encode(example.completion) + [tok.eos_id]


# ---------------------------------------------------------------------------------------------
# Decoding and accuracy.


def complete(model_config: TransformerConfig, params: Any, prompts: Sequence[Sequence[int]],
             max_new_tokens: int, *, temperature: float = 0.0, rng: jax.Array | None = None,
             chunk: int = 256) -> list[list[int]]:
  """Completions (ids, eos included when reached) of `prompts` by `jaxlm.generate`, in chunks
  of `chunk` rows (the last one filled with copies so every call has one shape). The prompt
  buffer's width is rounded up to a multiple of 16 where the position table allows, so
  prompts with and without a short context share one compiled program."""
  tok = tokenizer()
  model = Transformer(model_config)
  width = max(map(len, prompts)) + 1
  width = max(width, min(-(-width // 16) * 16, model_config.max_len - max_new_tokens))
  out = []
  for i, start in enumerate(range(0, len(prompts), chunk)):
    part = list(prompts[start:start + chunk])
    fill = part + [part[-1]] * (min(chunk, len(prompts)) - len(part))
    buf = encode_prompts(fill, width, tok.pad_id)
    tokens_BxP, mask_BxP = left_align(jnp.asarray(buf.tokens), jnp.asarray(buf.lengths))
    res = generation.generate(
        model, params, tokens_BxP, mask_BxP, max_new_tokens=max_new_tokens,
        temperature=temperature, rng=None if rng is None else jax.random.fold_in(rng, i),
        stop_tokens=(tok.eos_id,), pad_id=tok.pad_id)
    ids, lengths = np.asarray(res.tokens_BxN), np.asarray(res.lengths_B)
    out += [ids[b, :lengths[b]].tolist() for b in range(len(part))]
  return out


def answers(model_config: TransformerConfig, params: Any, examples: Sequence[Example], *,
            with_context: bool, max_new_tokens: int, delimiter: str | None
            ) -> list[str | None]:
  """Greedy answers to `examples` (with or without their contexts), parsed by `delimiter`;
  None where no answer ended with eos or the delimiter is missing."""
  tok = tokenizer()
  prompts = [example_ids(tok, e, with_context)[0] for e in examples]
  out = []
  for ids in complete(model_config, params, prompts, max_new_tokens):
    out.append(parse_answer(tok.decode(ids), delimiter) if tok.eos_id in ids else None)
  return out


def accuracy(model_config: TransformerConfig, params: Any, examples: Sequence[Example], *,
             with_context: bool, max_new_tokens: int, delimiter: str | None = None
             ) -> dict[str, float]:
  """{"accuracy": exact-match rate, "char_accuracy": fraction of answer characters right}."""
  got = answers(model_config, params, examples, with_context=with_context,
                max_new_tokens=max_new_tokens, delimiter=delimiter)
  exact = [g == e.answer for g, e in zip(got, examples)]
  chars = [np.mean([i < len(g or "") and g[i] == c for i, c in enumerate(e.answer)])
           for g, e in zip(got, examples)]
  return {"accuracy": float(np.mean(exact)), "char_accuracy": float(np.mean(chars))}


# ---------------------------------------------------------------------------------------------
# Distillation.


@flax.struct.dataclass
class TeacherRows:
  """N teacher rows [c; x; y] (right-padded), the batch of the "kl" variant.

  Attributes:
    tokens: [N, T] int32.
    attention_mask: [N, T] float32, 1 on real tokens.
    answer_mask: [N, T] float32, 1 on the teacher's answer tokens y (eos included).
    context_lengths: [N] int32, tokens of c.
  """
  tokens: np.ndarray
  attention_mask: np.ndarray
  answer_mask: np.ndarray
  context_lengths: np.ndarray


def teacher_rows(contexts: Sequence[Sequence[int]], inputs: Sequence[Sequence[int]],
                 completions: Sequence[Sequence[int]], max_len: int, pad_id: int) -> TeacherRows:
  """Right-padded [c; x; y] rows from ids; a row longer than `max_len` is a ValueError."""
  n = len(inputs)
  tokens = np.full((n, max_len), pad_id, np.int32)
  attn, answer = np.zeros((2, n, max_len), np.float32)
  for b, (c, x, y) in enumerate(zip(contexts, inputs, completions)):
    row = list(c) + list(x) + list(y)
    if len(row) > max_len:
      raise ValueError(f"teacher row {b} needs {len(row)} tokens > max_len={max_len}")
    tokens[b, :len(row)] = row
    attn[b, :len(row)] = 1.0
    answer[b, len(row) - len(y):len(row)] = 1.0
  return TeacherRows(tokens, attn, answer, np.array([len(c) for c in contexts], np.int32))


def answer_rows(tok: SimpleTokenizer, inputs: Sequence[Sequence[int]],
                completions: Sequence[Sequence[int]], delimiter: str | None
                ) -> list[tuple[list[int], list[int]]]:
  """The "sampled" variant's SFT rows (x, answer + eos): the part of each teacher completion
  after the last `delimiter`; completions without eos or without the delimiter are dropped."""
  rows = []
  for x, y in zip(inputs, completions):
    answer = parse_answer(tok.decode(y), delimiter)
    if tok.eos_id in y and answer is not None:
      rows.append((list(x), tok.encode(answer) + [tok.eos_id]))
  return rows


def kl_rows(tok: SimpleTokenizer, context: Sequence[int], inputs: Sequence[Sequence[int]],
            completions: Sequence[Sequence[int]], replay: Sequence[Example] = ()
            ) -> TeacherRows:
  """The "kl" variant's rows, as long as the longest: [c; x; y] per input (the student reads
  [x; y]), then each replay example [c'; x'; y' + eos] with context length 0, so the student
  reads the same whole row as the teacher."""
  contexts = [list(context)] * len(inputs) + [tok.encode(e.context) for e in replay]
  prompts = list(inputs) + [tok.encode(e.prompt) for e in replay]
  ys = list(completions) + [example_ids(tok, e)[1] for e in replay]
  longest = max(len(c) + len(x) + len(y) for c, x, y in zip(contexts, prompts, ys))
  rows = teacher_rows(contexts, prompts, ys, longest, tok.pad_id)
  keep = np.arange(len(prompts)) < len(inputs)
  return rows.replace(context_lengths=np.where(keep, rows.context_lengths, 0).astype(np.int32))


def replay_sample(rng: np.random.Generator, pool: Sequence[Example], num_rows: int,
                  share: float) -> list[Example]:
  """The replay rows of a distillation set of `num_rows`: round(num_rows * share / (1 - share))
  examples of `pool` (without replacement while the pool lasts), so that a uniformly drawn
  batch of the union holds a fraction `share` of replay rows in expectation."""
  if not 0.0 <= share < 1.0:
    raise ValueError(f"replay share={share} must be in [0, 1)")
  count = round(num_rows * share / (1.0 - share))
  if count == 0:
    return []
  if not pool:
    raise ValueError(f"replay share={share} > 0 needs a non-empty replay pool")
  picks = rng.choice(len(pool), count, replace=count > len(pool))
  return [pool[i] for i in picks]


def make_distill_loss(logits_fn):
  """`loss_fn(params, batch: TeacherRows, rng, *, state)`: the teacher's logits from the frozen
  params in `state.extra` on [c; x; y], the student's on [x; y], KL at the answer positions."""

  def loss_fn(params, batch, rng, *, state):
    del rng
    teacher_BxTxV = logits_fn(state.extra, batch.tokens, batch.attention_mask)
    align = strip_context(batch.tokens, batch.attention_mask, batch.context_lengths)
    student_BxTxV = logits_fn(params, align.tokens_BxT, align.mask_BxT)
    return context_distill_loss(student_BxTxV, align.gather(teacher_BxTxV),
                                align.decision_mask(batch.answer_mask))
  return loss_fn


def frozen_copy(params: Any) -> Any:
  """The teacher: a copy of the params a distillation run starts from (`TrainState.extra`)."""
  return jax.tree.map(jnp.copy, params)


def same_params(a: Any, b: Any) -> bool:
  """Two param trees hold the same structure and exactly the same values."""
  a, b = nn.meta.unbox(a), nn.meta.unbox(b)
  if jax.tree.structure(a) != jax.tree.structure(b):
    return False
  return all(np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@dataclasses.dataclass(frozen=True)
class Distilled:
  """Result of one distillation: the student's params, the teacher's (for "kl" read back from
  the driver's `TrainState.extra`), the number of training rows and the teacher's completions."""
  params: Any
  teacher_params: Any
  rows: int
  completions: list[str]


def distill_context(run_dir: str, model_config: TransformerConfig, params: Any, context: str,
                    inputs: Sequence[str], train: TrainConfig, *, variant: str = "kl",
                    max_new_tokens: int, delimiter: str | None = None,
                    temperature: float = 0.0, replay: Sequence[Example] = (),
                    resume: bool = False) -> Distilled:
  """Distils `context` into `params`: the student (init `params`) learns to answer each input
  without the context as the teacher (frozen `params`) does with it.

  Args:
    run_dir: the training run's directory (`jaxlm.train.fit`: checkpoints, metrics).
    model_config: the transformer.
    params: teacher and initial student params (e.g. the result of an earlier distillation).
    context: the text c the teacher reads before each input.
    inputs: unlabeled inputs x (prompt text, e.g. "bead=").
    train: the student's training run.
    variant: "kl" (token-level KL on the teacher's answers) or "sampled" (SFT on the answer
      part of the teacher's samples).
    max_new_tokens: longest teacher completion.
    delimiter: "sampled": the answer follows the last delimiter (None: the whole completion).
    temperature: teacher sampling temperature (0 = greedy; > 0 draws from `train.seed`).
    replay: examples (e.g. meta-training rows, `replay_sample`) mixed into the training rows
      WITH their contexts, so the student keeps reading contexts while it learns to do without
      this one (without replay it forgets: with-context accuracy fell 1.00 -> 0.00). "kl": each
      replay row [c'; x'; y'] is kept whole (no context stripped) and trained with the same
      KL to the frozen teacher on the same row: the teacher's logits are computed for every
      batch row anyway (no extra forward pass, one loss, one compiled step), and it preserves
      exactly what the run started from (for a composed distillation, the previous student)
      with the teacher's full next-token distributions rather than one-hot labels. "sampled":
      SFT on the replay rows (the plain LM loss, as the distillation rows themselves).
    resume: continue the run in `run_dir`.

  Returns:
    Distilled.
  """
  if variant not in VARIANTS:
    raise ValueError(f"distill_context: variant={variant!r}; expected one of {VARIANTS}")
  tok = tokenizer()
  c_ids, x_ids = tok.encode(context), [tok.encode(x) for x in inputs]
  rng = jax.random.PRNGKey(train.seed) if temperature > 0 else None
  ys = complete(model_config, params, [c_ids + x for x in x_ids], max_new_tokens,
                temperature=temperature, rng=rng)
  texts = [tok.decode(y) for y in ys]
  if variant == "sampled":
    rows = answer_rows(tok, x_ids, ys, delimiter)
    if not rows:
      logging.warning("distill_context: none of %d teacher samples has an answer after %r and "
                      "an end; the params are returned untrained", len(inputs), delimiter)
      return Distilled(params, params, 0, texts)
    rows_and_replay = rows + [example_ids(tok, e) for e in replay]
    new = fit_lm(run_dir, model_config, train, sft_batch(rows_and_replay, tok.pad_id),
                 resume=resume, pretrained=params)
    return Distilled(new, params, len(rows), texts)
  batch = kl_rows(tok, c_ids, x_ids, ys, replay)
  _, init_fn, logits_fn = lm_networks(model_config, params)
  state, _ = train_lib.fit(run_dir, train, init_fn, make_distill_loss(logits_fn),
                           RandomBatches(batch, train.batch_size, train.seed), resume=resume,
                           extra_fn=frozen_copy, saved_config=train, show=("loss", "agreement"))
  return Distilled(state.params, state.extra, len(x_ids), texts)


# ---------------------------------------------------------------------------------------------
# Experiments.


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
