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
their contexts, into the training set (a share of each batch in expectation: `replay_sample`).

Tasks: `jaxlm.envs.context_tasks` (a cipher with a rule or worked examples as its context,
addition with a scratchpad).

The paper's three experiments (a rule, a scratchpad, in-context examples) are
`jaxlm.algos.context_distill_experiments`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from absl import logging
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import generation
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
