"""Wordle as a text environment, with scripted policies and an offline dataset builder.

Semantics follow LMRL-Gym (Abdulhai et al. 2023, Sec. 4 "Wordle"): a hidden 5-letter word,
at most 6 guesses, per-letter feedback, reward -1 for every guess that does not win and 0 for
the winning guess, so returns lie in [-6, 0]. An invalid guess (not 5 letters a-z, or not in the
word list) costs `invalid_reward`, uses up a guess and gets an empty feedback line. One
difference: LMRL-Gym resamples the hidden word among the words consistent with the feedback so
far at every step; here the word is fixed at reset (the standard game; same distribution of
feedback when the word is uniform over the list).

Text format (LMRL-Gym's reformatted variant, spaced letters so every tokenizer sees letters):
  reset -> "Wordle:\\n";  action "c r a n e\\n";  feedback "b y g b b\\n" (g = right letter
  right place, y = in the word elsewhere, b = not in the word; repeated letters are marked
  yellow only as many times as they occur in the hidden word beyond the greens).

The word list ships in jaxlm/envs/data/wordle_words.txt (2,943 words from Debian's wamerican,
see the file header). `word_subset(n)` plays on n evenly spaced words of it (a difficulty knob
for small from-scratch models, not LMRL-Gym's game), normalised by that subset's own constants
(`wordle_scores`; `SUBSET_SCORES` holds the measured ones).
"""

import functools
import pathlib
from typing import Sequence

import numpy as np
from tqdm import tqdm

from jaxlm.data.trajectory import TextTrajectory
from jaxlm.envs.base import History, PolicyFn, ScoreConstants, rollout

WORDS_PATH = pathlib.Path(__file__).parent / "data" / "wordle_words.txt"
N_LETTERS = 5
MAX_GUESSES = 6
_COLORS = "byg"  # code digit 0, 1, 2


@functools.cache
def load_words(path: str | None = None) -> tuple[str, ...]:
  """The shipped word list (or one word per line from `path`; '#' lines are comments)."""
  lines = pathlib.Path(path or WORDS_PATH).read_text().splitlines()
  words = tuple(w.strip() for w in lines if w.strip() and not w.startswith("#"))
  bad = [w for w in words if len(w) != N_LETTERS or not (w.isascii() and w.isalpha()
                                                         and w.islower())]
  if bad:
    raise ValueError(f"word list {path or WORDS_PATH} has invalid entries, e.g. {bad[:3]}")
  return words


def feedback(guess: str, answer: str) -> str:
  """Reference per-letter feedback, e.g. feedback('speed', 'abide') == 'bbyby'."""
  out = ["g" if g == a else "b" for g, a in zip(guess, answer)]
  left = {}
  for g, a in zip(guess, answer):
    if g != a:
      left[a] = left.get(a, 0) + 1
  for i, g in enumerate(guess):
    if out[i] == "b" and left.get(g, 0) > 0:
      out[i] = "y"
      left[g] -= 1
  return "".join(out)


def _letters(words: Sequence[str]) -> np.ndarray:
  return np.array([[ord(c) - 97 for c in w] for w in words], np.int8).reshape(-1, N_LETTERS)


def feedback_codes(guesses: np.ndarray, answers: np.ndarray, block: int = 128) -> np.ndarray:
  """Vectorised `feedback` as base-3 codes: [G,5] x [A,5] letter ids -> [G,A] uint8.

  Position i of a guess is green if it matches, else yellow when the answer has more copies of
  the letter at non-green positions than the guess used at earlier non-green positions.
  """
  out = np.empty((len(guesses), len(answers)), np.uint8)
  for s in range(0, len(guesses), block):
    g = guesses[s:s + block]
    green = g[:, None, :] == answers[None, :, :]                                 # [g,a,5]
    code = np.zeros(green.shape[:2], np.int32)
    for i in range(N_LETTERS):
      avail = np.sum((answers[None] == g[:, i, None, None]) & ~green, axis=-1)  # [g,a]
      used = sum(((g[:, j] == g[:, i])[:, None] & ~green[:, :, j]).astype(np.int8)
                 for j in range(i))
      code += 3 ** i * np.where(green[:, :, i], 2, avail > used)
    out[s:s + block] = code
  return out


def code_to_str(code: int) -> str:
  return "".join(_COLORS[(int(code) // 3 ** i) % 3] for i in range(N_LETTERS))


def format_guess(word: str) -> str:
  return " ".join(word) + "\n"


class Wordle:
  """Wordle `TextEnv` (module docstring)."""

  def __init__(self, words: Sequence[str] | None = None, max_guesses: int = MAX_GUESSES,
               invalid_reward: float = -1.0):
    self.words = tuple(words) if words is not None else load_words()
    self._vocab = frozenset(self.words)
    self.max_guesses = max_guesses
    self.invalid_reward = invalid_reward
    self.answer, self.guesses, self.done = None, 0, True

  def reset(self, seed: int) -> str:
    self.answer = self.words[np.random.default_rng(seed).integers(len(self.words))]
    self.guesses, self.done = 0, False
    return "Wordle:\n"

  def step(self, action: str) -> tuple[str, float, bool]:
    if self.done:
      raise ValueError("step() called on a finished episode; call reset(seed) first")
    word = "".join(action.split())
    self.guesses += 1
    self.done = word == self.answer or self.guesses >= self.max_guesses
    if word not in self._vocab:
      return "\n", float(self.invalid_reward), self.done
    if word == self.answer:
      return format_guess("g" * N_LETTERS), 0.0, True
    return format_guess(feedback(word, self.answer)), -1.0, self.done


def parse_history(history: History) -> list[tuple[str, str]]:
  """(guess, feedback) pairs of the valid guesses in a Wordle text history."""
  pairs = []
  for (text, is_action), (obs, _) in zip(history, history[1:]):
    fb = "".join(obs.split())
    if is_action and len(fb) == N_LETTERS:
      pairs.append(("".join(text.split()), fb))
  return pairs


class WordleSolver:
  """Information-gain scripted player over a word list (guesses and answers = the list).

  The next guess maximises the entropy of the feedback over the words still consistent with the
  history (answers uniform); ties go to consistent words, then to list order. The full
  feedback table (N x N uint8) is computed once, so each decision is a lookup and a bincount.
  """

  def __init__(self, words: Sequence[str] | None = None):
    self.words = tuple(words) if words is not None else load_words()
    self.index = {w: i for i, w in enumerate(self.words)}
    letters = _letters(self.words)
    self.codes = feedback_codes(letters, letters)
    self._cache = {}

  def candidates(self, history: History) -> np.ndarray:
    """Indices of the words consistent with every (guess, feedback) pair in `history`."""
    keep = np.ones(len(self.words), bool)
    for guess, fb in parse_history(history):
      code = sum(_COLORS.index(c) * 3 ** i for i, c in enumerate(fb))
      if guess in self.index:
        keep &= self.codes[self.index[guess]] == code
      else:  # a guess outside the list: compute its feedback row directly
        keep &= feedback_codes(_letters([guess]), _letters(self.words))[0] == code
    return np.flatnonzero(keep)

  def best_guess(self, cands: np.ndarray) -> str:
    if len(cands) <= 2:  # a consistent word is optimal; empty = inconsistent history
      return self.words[cands[0] if len(cands) else 0]
    key = cands.tobytes()
    if key not in self._cache:
      m = self.codes[:, cands].astype(np.int64)
      counts = np.bincount((m + 243 * np.arange(len(m))[:, None]).ravel(),
                           minlength=243 * len(m)).reshape(len(m), 243)
      p = counts / len(cands)
      entropy = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)
      is_cand = np.zeros(len(m), bool)
      is_cand[cands] = True
      order = np.lexsort((np.arange(len(m)), ~is_cand, -np.round(entropy, 9)))
      self._cache[key] = self.words[order[0]]
    return self._cache[key]

  def act(self, history: History) -> str:
    return format_guess(self.best_guess(self.candidates(history)))


def info_gain_policy(solver: WordleSolver) -> PolicyFn:
  """The scripted "optimal" player as a batched policy."""
  return lambda histories: [solver.act(h) for h in histories]


def random_mixture_policy(solver: WordleSolver, prob_smart: float,
                          rng: np.random.Generator) -> PolicyFn:
  """Each guess: the info-gain guess with probability prob_smart, else a uniform random word."""
  def policy(histories):
    return [solver.act(h) if rng.random() < prob_smart
            else format_guess(solver.words[rng.integers(len(solver.words))]) for h in histories]
  return policy


def wordle_dataset(n: int, seed: int, *, words: Sequence[str] | None = None,
                   prob_smart_levels: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
                   solver: WordleSolver | None = None) -> list[TextTrajectory]:
  """N episodes, split evenly over random-mixture policies with the given prob_smart levels.

  Deterministic in `seed` (episode seeds and policy coin flips both derive from it).
  """
  solver = solver or WordleSolver(words)
  rng = np.random.default_rng(seed)
  env_seeds = rng.integers(2**31 - 1, size=n)
  level_of = np.arange(n) % len(prob_smart_levels)
  out = [None] * n
  for lvl, prob in enumerate(tqdm(prob_smart_levels, desc="wordle dataset", leave=False)):
    idx = np.flatnonzero(level_of == lvl)
    trajs = rollout(lambda: Wordle(solver.words), random_mixture_policy(solver, prob, rng),
                    env_seeds[idx], MAX_GUESSES)
    for i, t in zip(idx, trajs):
      out[i] = t
  return out


# Shipped word list: min = six failed guesses; mean = wordle_dataset defaults (3,000 episodes,
# seed 0, -4.19 +- 0.06); max = info-gain solver (3,000 episodes, -2.58 +- 0.02, always wins).
WORDLE_SCORES = ScoreConstants(min=-6.0, mean=-4.19, max=-2.58)


def word_subset(n: int, words: Sequence[str] | None = None) -> tuple[str, ...]:
  """`n` words evenly spaced through `words` (default: the shipped list): a smaller game.

  A difficulty knob, not part of LMRL-Gym: word i * len(words) // n for i < n, so the subset is
  deterministic, keeps the list's (alphabetical) spread of letters, and n = len(words) is the
  whole list. Answers and valid guesses both come from the subset.
  """
  words = tuple(words) if words is not None else load_words()
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= len(words):
    raise ValueError(f"a Wordle word list of n={n!r} words: n must be an int in "
                     f"[1, {len(words)}] (the size of the list it is drawn from)")
  return tuple(words[i * len(words) // n] for i in range(n))


def score_constants(words: Sequence[str], episodes: int = 3000, seed: int = 0
                    ) -> ScoreConstants:
  """Normalisation of a word list, computed like `WORDLE_SCORES`.

  min = six failed guesses; mean = the `wordle_dataset` default recipe (`episodes`, `seed`);
  max = the info-gain solver on the list (`episodes` games with seeds drawn from `seed`).
  """
  solver = WordleSolver(words)
  seeds = np.random.default_rng(seed).integers(2**31 - 1, size=episodes)
  best = rollout(lambda: Wordle(solver.words), info_gain_policy(solver), seeds, MAX_GUESSES)
  data = wordle_dataset(episodes, seed, solver=solver)
  mean = lambda trajs: round(float(np.mean([t.total_return for t in trajs])), 2)
  return ScoreConstants(min=-float(MAX_GUESSES), mean=mean(data), max=mean(best))


# `score_constants(word_subset(n))` (3,000 episodes, seed 0) of the subsets the presets use.
SUBSET_SCORES = {
    50: ScoreConstants(min=-6.0, mean=-3.0, max=-1.39),
    100: ScoreConstants(min=-6.0, mean=-3.28, max=-1.62),
    200: ScoreConstants(min=-6.0, mean=-3.44, max=-1.74),
}


def wordle_scores(num_words: int = 0) -> ScoreConstants:
  """Score constants of the shipped list (num_words 0) or of `word_subset(num_words)`.

  Sizes in `SUBSET_SCORES` are looked up; other sizes are computed (`score_constants`, seconds
  for a few hundred words).
  """
  if num_words in (0, len(load_words())):
    return WORDLE_SCORES
  if num_words in SUBSET_SCORES:
    return SUBSET_SCORES[num_words]
  return score_constants(word_subset(num_words))
