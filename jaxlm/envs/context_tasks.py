"""Synthetic tasks for context distillation (Snell, Klein & Zhong 2022, "Learning by Distilling
Context"; used by `jaxlm.algos.context_distill` and its experiments).

Both are character level (`SimpleTokenizer.chars(ALPHABET)`) with deterministic generators:

* cipher: a word over the first `letters` letters, e.g. "bead=", answered by a letter
  substitution: "fcad". The rule is written either as the permutation, "cadbfe|" (letter i maps
  to rule[i]), or as k worked examples, "abba=cffc;dcea=bdfc;...". Meta-training mixes rule
  contexts, example contexts and no context (a fresh random rule: the prior without a context).
* addition: "347+285=" with context "#" (use a scratchpad) is answered
  "7+5+0=12,4+8+1=13,3+2+1=06,>0632": per digit, least significant first, a_i + b_i + carry =
  (carry out, digit), then ">" and the D + 1 digit sum. The direct form is "347+285=0632".
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import numpy as np

from jaxlm.data import SimpleTokenizer

LETTERS = "abcdefgh"
ALPHABET = LETTERS + "0123456789+=>,;|#"
RULE_END, EXAMPLE_END, SCRATCHPAD, ANSWER = "|", ";", "#", ">"


def tokenizer() -> SimpleTokenizer:
  """Character-level tokenizer over ALPHABET (ids 0, 1, 2 are pad, eos, bos)."""
  return SimpleTokenizer.chars(ALPHABET)


VOCAB_SIZE = tokenizer().vocab_size


@dataclasses.dataclass(frozen=True)
class Example:
  """One task instance: the model reads context + prompt and writes completion (+ eos).

  `answer` is what is graded: the completion itself, or its part after ANSWER."""
  context: str
  prompt: str
  completion: str
  answer: str


def random_rule(rng: np.random.Generator, letters: int) -> str:
  """A random substitution of the first `letters` letters, written as their images."""
  if not 2 <= letters <= len(LETTERS):
    raise ValueError(f"letters={letters} must be in [2, {len(LETTERS)}]")
  return "".join(rng.permutation(list(LETTERS[:letters])))


def apply_rule(rule: str, word: str) -> str:
  """The substitution `rule` (letter i -> rule[i]) applied to `word`."""
  table = dict(zip(LETTERS, rule))
  try:
    return "".join(table[ch] for ch in word)
  except KeyError as e:
    raise ValueError(f"letter {e.args[0]!r} of {word!r} is outside the rule {rule!r}") from None


def all_words(letters: int, length: int) -> list[str]:
  """Every word of `length` over the first `letters` letters, in lexicographic order."""
  return ["".join(w) for w in itertools.product(LETTERS[:letters], repeat=length)]


def rule_context(rule: str) -> str:
  return rule + RULE_END


def examples_context(rule: str, words: Sequence[str]) -> str:
  return "".join(f"{w}={apply_rule(rule, w)}{EXAMPLE_END}" for w in words)


def cipher_example(rule: str, word: str, context: str = "") -> Example:
  """`word` to encipher with `rule`, after `context` (rule_context, examples_context or "")."""
  answer = apply_rule(rule, word)
  return Example(context, word + "=", answer, answer)


def addition_scratchpad(a: int, b: int, digits: int) -> str:
  """Per digit, least significant first: "a_i+b_i+carry=" then carry out and digit, then ","."""
  if not (0 <= a < 10 ** digits and 0 <= b < 10 ** digits):
    raise ValueError(f"operands {a}, {b} must have at most digits={digits} digits")
  steps, carry = [], 0
  for i in range(digits):
    da, db = a // 10 ** i % 10, b // 10 ** i % 10
    total = da + db + carry
    steps.append(f"{da}+{db}+{carry}={total // 10}{total % 10},")
    carry = total // 10
  return "".join(steps)


def addition_example(a: int, b: int, digits: int, scratchpad: bool) -> Example:
  """a + b, zero-padded to `digits` digits, the sum to digits + 1; with the scratchpad context
  "#" the completion is scratchpad + ">" + sum, without it the sum alone."""
  prompt, answer = f"{a:0{digits}d}+{b:0{digits}d}=", f"{a + b:0{digits + 1}d}"
  if scratchpad:
    return Example(SCRATCHPAD, prompt, addition_scratchpad(a, b, digits) + ANSWER + answer, answer)
  return Example("", prompt, answer, answer)


def parse_answer(completion: str, delimiter: str | None = None) -> str | None:
  """The graded part of a completion: after the last `delimiter` (None if there is none), or
  the whole completion when `delimiter` is None."""
  if delimiter is None:
    return completion
  head, sep, tail = completion.rpartition(delimiter)
  del head
  return tail if sep else None


def cipher_corpus(rng: np.random.Generator, n: int, letters: int, words: Sequence[str],
                  num_examples: int, mix: Sequence[float], identity: float = 0.0
                  ) -> list[Example]:
  """Meta-training rows: each a fresh random rule, written as the rule, as `num_examples`
  examples, or not at all, with probabilities `mix`; query and example words from `words`.

  A row with a context has the identity rule with probability `identity` (a curriculum: copying
  the query letters needs only the attention hop that fetches them, so that hop is learned
  first, after which the lookup of each letter in the rule gets a gradient)."""
  kinds = rng.choice(3, size=n, p=np.asarray(mix) / np.sum(mix))
  out = []
  for kind in kinds:
    rule = random_rule(rng, letters)
    if kind < 2 and rng.random() < identity:
      rule = LETTERS[:letters]
    picks = [words[i] for i in rng.choice(len(words), num_examples + 1, replace=False)]
    context = (rule_context(rule), examples_context(rule, picks[1:]), "")[kind]
    out.append(cipher_example(rule, picks[0], context))
  return out


def addition_pairs(rng: np.random.Generator, n: int, digits: int) -> list[tuple[int, int]]:
  return [tuple(map(int, ab)) for ab in rng.integers(0, 10 ** digits, (n, 2))]
