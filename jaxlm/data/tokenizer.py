"""Tokenizers for the token-level RL batch.

`SimpleTokenizer` is a tiny deterministic tokenizer for tests and for small from-scratch models
on Maze and Wordle: character level (`SimpleTokenizer.chars()`), word level
(`SimpleTokenizer.words(texts)`: runs of letters, single digits and single punctuation marks,
each with an optional leading space, and single whitespace characters, so decoding is lossless)
or phrase level (`SimpleTokenizer.phrases(phrases, texts)`: given multi-word phrases are one
token each, matched longest first, the rest is split into words). Phrase tokens play the role of
BPE merges for a task's fixed sentences: a Maze move is one token, so one environment step is one
Bellman backup instead of three, and an observation is ~16 tokens instead of ~30.
`HFTokenizer` adapts a Hugging Face tokenizer object to the same interface. Both encode one text
segment at a time without adding special tokens; `to_rl_batch` adds BOS itself.
"""

import re
import string
from typing import Any, Protocol, Sequence

SPECIAL_PIECES = ("<pad>", "<eos>", "<bos>")
DEFAULT_ALPHABET = string.ascii_letters + string.digits + string.punctuation + " \n\t"
_WORD_RE = re.compile(r" ?[A-Za-z]+| ?\d| ?[^A-Za-z\d\s]|\s")


class Tokenizer(Protocol):
  """What `to_rl_batch` and generation need from a tokenizer."""
  vocab_size: int
  pad_id: int
  eos_id: int
  bos_id: int

  def encode(self, text: str) -> list[int]: ...

  def decode(self, ids: Sequence[int]) -> str: ...


class SimpleTokenizer:
  """Deterministic char-, word- or phrase-level tokenizer; ids 0, 1, 2 are pad, eos, bos."""

  def __init__(self, pieces: Sequence[str], level: str, phrases: Sequence[str] = ()):
    if level not in ("char", "word"):
      raise ValueError(f"level must be 'char' or 'word', got {level!r}")
    if len(set(pieces)) != len(pieces):
      raise ValueError("pieces contain duplicates")
    clash = set(pieces) & set(SPECIAL_PIECES)
    if clash:
      raise ValueError(f"pieces {sorted(clash)} clash with the special tokens")
    missing = sorted(set(phrases) - set(pieces))
    if missing or (phrases and level != "word"):
      raise ValueError(f"phrases must be word-level pieces; not in the vocabulary: {missing}")
    self.level = level
    # Phrases first (longest first: regex alternation takes the first match), then words.
    self._split_re = re.compile("|".join(
        [re.escape(p) for p in sorted(phrases, key=len, reverse=True)] + [_WORD_RE.pattern]))
    self.pieces = tuple(SPECIAL_PIECES) + tuple(pieces)
    self._ids = {p: i for i, p in enumerate(self.pieces)}
    self.pad_id, self.eos_id, self.bos_id = 0, 1, 2
    self.vocab_size = len(self.pieces)

  @classmethod
  def chars(cls, alphabet: str = DEFAULT_ALPHABET) -> "SimpleTokenizer":
    """One token per character of `alphabet` (kept in the given order)."""
    return cls(list(dict.fromkeys(alphabet)), level="char")

  @classmethod
  def words(cls, texts: Sequence[str], extra: str = DEFAULT_ALPHABET) -> "SimpleTokenizer":
    """Word-level vocabulary: every piece of `texts` plus each character c of `extra` and " c".

    Pieces are sorted, so the same corpus always gives the same ids. Including the single
    characters means any text over `extra` can still be encoded (letter by letter if needed).
    """
    pieces = {p for t in texts for p in _WORD_RE.findall(t)} | set(extra)
    pieces |= {" " + c for c in extra if not c.isspace()}
    return cls(sorted(pieces), level="word")

  @classmethod
  def phrases(cls, phrases: Sequence[str], texts: Sequence[str] = (),
              extra: str = DEFAULT_ALPHABET) -> "SimpleTokenizer":
    """`words(texts, extra)` plus each of `phrases` as a single token (matched first, longest
    first, anywhere in a text: include a phrase's leading space if it has one)."""
    phrases = sorted(set(phrases))
    if not phrases or not all(phrases):
      raise ValueError("phrases must be non-empty strings")
    words = cls.words(texts, extra).pieces[len(SPECIAL_PIECES):]
    return cls(sorted(set(words) | set(phrases)), level="word", phrases=phrases)

  def split(self, text: str) -> list[str]:
    if self.level == "char":
      return list(text)
    pieces = []
    for word in self._split_re.findall(text):  # unknown words fall back to characters
      pieces.extend([word] if word in self._ids else list(word))
    return pieces

  def encode(self, text: str) -> list[int]:
    ids = []
    for piece in self.split(text):
      if piece not in self._ids:
        raise ValueError(f"piece {piece!r} of text {text[:40]!r} is not in the vocabulary")
      ids.append(self._ids[piece])
    return ids

  def decode(self, ids: Sequence[int]) -> str:
    """Concatenates pieces, dropping pad/eos/bos; raises on ids outside the vocabulary."""
    out = []
    for i in ids:
      i = int(i)
      if not 0 <= i < self.vocab_size:
        raise ValueError(f"token id {i} is outside the vocabulary of size {self.vocab_size}")
      if i >= len(SPECIAL_PIECES):
        out.append(self.pieces[i])
    return "".join(out)


class HFTokenizer:
  """Adapter for a Hugging Face tokenizer object (anything with encode/decode/len)."""

  def __init__(self, hf_tokenizer: Any):
    self.hf = hf_tokenizer
    eos = hf_tokenizer.eos_token_id
    if eos is None:
      raise ValueError("the HF tokenizer has no eos_token_id")
    self.eos_id = int(eos)
    pad, bos = hf_tokenizer.pad_token_id, hf_tokenizer.bos_token_id
    self.pad_id = self.eos_id if pad is None else int(pad)
    self.bos_id = self.eos_id if bos is None else int(bos)
    self.vocab_size = len(hf_tokenizer)

  def encode(self, text: str) -> list[int]:
    return list(self.hf.encode(text, add_special_tokens=False))

  def decode(self, ids: Sequence[int]) -> str:
    return self.hf.decode([int(i) for i in ids], skip_special_tokens=True)


def as_tokenizer(tokenizer: Any) -> Tokenizer:
  """Returns `tokenizer` if it already has our interface, else wraps it with `HFTokenizer`."""
  if all(hasattr(tokenizer, a) for a in ("pad_id", "eos_id", "bos_id", "vocab_size")):
    return tokenizer
  return HFTokenizer(tokenizer)
