"""Countdown arithmetic puzzles as a text environment.

The game of Gandhi et al. 2024 ("Stream of Search") as used by Pan et al. 2025 ("Learning
Adaptive Parallel Reasoning", APR): k starting numbers and a target. An operation takes two
numbers of the pool, removes them and adds the result; allowed are a+b, a*b, larger minus smaller
and exact division (larger by smaller, no remainder). A problem is solved when every number has
been used (k - 1 operations) and the last number left equals the target.

A written solution is one operation per line, ``a op b = c`` (for ``-`` and ``/`` the larger
number comes first), optionally followed by the numbers left after it, ``a op b = c | x y c``
(Stream-of-Search writes the state after every step; the verifier then checks it too). Text
after the last ``Answer:`` marker is the solution when the marker is present, so a model may
write a search trace (``countdown_search.search_trace``) before its answer.
"""

import dataclasses
import hashlib
import itertools
import re
from typing import Iterator, Sequence

import numpy as np

OPS = ("+", "-", "*", "/")
ANSWER_MARKER = "Answer:"
POOL_SEPARATOR = "|"
_STEP_RE = re.compile(r"^\s*(\d+)\s*([-+*/])\s*(\d+)\s*=\s*(\d+)\s*(?:\|([\d ]*))?$")


@dataclasses.dataclass(frozen=True)
class Problem:
  """One puzzle: the starting numbers (sorted ascending) and the target."""
  numbers: tuple[int, ...]
  target: int


@dataclasses.dataclass(frozen=True)
class CountdownConfig:
  """Generator settings.

  Attributes:
    num_numbers: k, the number of starting numbers (3..6); the difficulty knob.
    min_number: smallest starting number.
    max_number: largest starting number.
    min_target: smallest target.
    max_target: largest target.
    validation_fraction: share of all (numbers, target) pairs that belong to validation.
    max_attempts: rejection-sampling attempts per requested problem before giving up.
  """
  num_numbers: int = 4
  min_number: int = 1
  max_number: int = 50
  min_target: int = 10
  max_target: int = 100
  validation_fraction: float = 0.1
  max_attempts: int = 1000

  def __post_init__(self):
    if not 3 <= self.num_numbers <= 6:
      raise ValueError(f"num_numbers must be in 3..6, got {self.num_numbers}")
    if not 1 <= self.min_number <= self.max_number:
      raise ValueError(f"need 1 <= min_number <= max_number, got {self.min_number}, "
                       f"{self.max_number}")
    if not 0 <= self.min_target <= self.max_target:
      raise ValueError(f"need 0 <= min_target <= max_target, got {self.min_target}, "
                       f"{self.max_target}")
    if not 0.0 < self.validation_fraction < 1.0:
      raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction}")


def apply_op(a: int, b: int, op: str) -> int | None:
  """Result of ``a op b`` under Countdown rules (order-free), or None if not allowed."""
  hi, lo = max(a, b), min(a, b)
  if op == "+":
    return a + b
  if op == "*":
    return a * b
  if op == "-":
    return hi - lo
  if op == "/":
    return hi // lo if lo > 0 and hi % lo == 0 else None
  raise ValueError(f"unknown op {op!r}; expected one of {OPS}")


def format_step(a: int, op: str, b: int, result: int | None = None) -> str:
  """The written form of one operation, larger number first, with `result` written (default:
  the true one)."""
  hi, lo = max(a, b), min(a, b)
  return f"{hi}{op}{lo}={apply_op(a, b, op) if result is None else result}"


def format_pool(pool: Sequence[int]) -> str:
  """The numbers left after a step as written after ``POOL_SEPARATOR``: ascending, spaced."""
  return " ".join(map(str, sorted(pool)))


def successors(pool: tuple[int, ...]) -> Iterator[tuple[str, tuple[int, ...]]]:
  """(written step, resulting sorted pool) for every distinct move from a sorted pool."""
  seen = set()
  for i, j in itertools.combinations(range(len(pool)), 2):
    rest = pool[:i] + pool[i + 1:j] + pool[j + 1:]
    for op in OPS:
      value = apply_op(pool[i], pool[j], op)
      if value is None:
        continue
      child = tuple(sorted(rest + (value,)))
      if child not in seen:
        seen.add(child)
        yield format_step(pool[i], op, pool[j]), child


def solve(problem: Problem) -> tuple[str, ...] | None:
  """Exhaustive depth-first solver (memoised on dead pools); a solution path or None."""
  dead = set()

  def dfs(pool):
    if len(pool) == 1:
      return () if pool[0] == problem.target else None
    if pool in dead:
      return None
    for step, child in successors(pool):
      rest = dfs(child)
      if rest is not None:
        return (step,) + rest
    dead.add(pool)
    return None

  return dfs(tuple(sorted(problem.numbers)))


def reachable_targets(numbers: Sequence[int]) -> set[int]:
  """All values reachable using every number exactly once (subset dynamic programme).

  An independent check of ``solve``: any operation sequence forms an expression tree whose root
  splits the numbers into two disjoint non-empty subsets.
  """
  k = len(numbers)
  values = {1 << i: {int(x)} for i, x in enumerate(numbers)}
  for mask in range(1, 1 << k):
    if mask in values:
      continue
    out = set()
    sub = (mask - 1) & mask
    while sub:
      other = mask ^ sub
      if sub < other:
        for a in values[sub]:
          for b in values[other]:
            for op in OPS:
              v = apply_op(a, b, op)
              if v is not None:
                out.add(v)
      sub = (sub - 1) & mask
    values[mask] = out
  return values[(1 << k) - 1]


def split_of(problem: Problem, validation_fraction: float) -> str:
  """'train' or 'validation', a fixed hash of (numbers, target): splits never overlap."""
  key = f"{sorted(problem.numbers)}|{problem.target}".encode()
  u = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2.0**64
  return "validation" if u < validation_fraction else "train"


def generate(config: CountdownConfig, seed: int, count: int,
             split: str = "train") -> list[Problem]:
  """``count`` distinct solvable problems of ``split``, deterministic in ``seed``.

  Numbers and target are drawn uniformly; a draw is kept only if it belongs to ``split`` (by
  ``split_of``), was not drawn before and ``solve`` finds a solution.
  """
  if split not in ("train", "validation"):
    raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
  if count < 0:
    raise ValueError(f"count must be >= 0, got {count}")
  rng = np.random.default_rng(seed)
  problems, seen = [], set()
  for _ in range(count * config.max_attempts):
    if len(problems) == count:
      break
    numbers = rng.integers(config.min_number, config.max_number + 1, size=config.num_numbers)
    target = int(rng.integers(config.min_target, config.max_target + 1))
    problem = Problem(tuple(sorted(int(x) for x in numbers)), target)
    if (problem in seen or split_of(problem, config.validation_fraction) != split
        or solve(problem) is None):
      continue
    seen.add(problem)
    problems.append(problem)
  if len(problems) < count:
    raise ValueError(f"found only {len(problems)} of {count} problems for {config}")
  return problems


def extract_answer(text: str) -> str:
  """The text after the last ``Answer:`` marker, or all of ``text`` if there is none."""
  return text.rsplit(ANSWER_MARKER, 1)[-1]


def _solution_lines(text: str) -> list[str]:
  """The non-empty lines after the last ``Answer:`` marker."""
  return [line for line in extract_answer(text).splitlines() if line.strip()]


def final_number(text: str) -> int | None:
  """The number a written solution arrives at (the result of its last line), or None when the
  last non-empty line (after any ``Answer:`` marker) is not a step. The answer votes count."""
  lines = _solution_lines(text)
  match = _STEP_RE.match(lines[-1]) if lines else None
  return None if match is None else int(match[4])


def verify(problem: Problem, text: str) -> tuple[bool, str]:
  """Exact check of a written solution path.

  Args:
    problem: the puzzle.
    text: solution lines ``a op b = c`` or ``a op b = c | <numbers left>`` (optionally after a
      trace and an ``Answer:`` marker); a written pool must match the true one as a multiset.

  Returns:
    (solved, reason): reason names the first offending line, or is "ok".
  """
  pool = list(problem.numbers)
  lines = _solution_lines(text)
  if not lines:
    return False, "empty solution"
  for i, line in enumerate(lines):
    match = _STEP_RE.match(line)
    if match is None:
      return False, f"line {i}: cannot parse {line.strip()!r}"
    a, op, b, c = int(match[1]), match[2], int(match[3]), int(match[4])
    if op in "-/" and a < b:
      return False, f"line {i}: write the larger number first in {line.strip()!r}"
    value = apply_op(a, b, op)
    if value is None:
      return False, f"line {i}: {a}/{b} is not an exact division"
    if value != c:
      return False, f"line {i}: {a}{op}{b} is {value}, not {c}"
    for x in (a, b):
      if x not in pool:
        return False, f"line {i}: {x} is not available in {sorted(pool)}"
      pool.remove(x)
    pool.append(c)
    if match[5] is not None and sorted(map(int, match[5].split())) != sorted(pool):
      return False, f"line {i}: numbers left are {sorted(pool)}, not [{match[5].strip()}]"
  if len(pool) != 1:
    return False, f"{len(pool)} numbers left, every number must be used"
  if pool[0] != problem.target:
    return False, f"final number {pool[0]} is not the target {problem.target}"
  return True, "ok"


def bracket_pool(pool: Sequence[int]) -> str:
  """A node's numbers as written in traces and prompts: ``[a b c]``."""
  return "[" + " ".join(map(str, pool)) + "]"


def prompt(problem: Problem) -> str:
  """The task statement shown to a policy."""
  return (f"Countdown: reach {problem.target} from {bracket_pool(problem.numbers)} with "
          "+ - * /. "
          "Use every number once; one operation per line as a op b = c, larger number first.\n")


class CountdownEnv:
  """Single-turn TextEnv (reset(seed) -> prompt; step(solution) -> feedback, reward, done).

  Reward is 1.0 for a verified solution, else 0.0; the episode ends after one step.
  """

  def __init__(self, config: CountdownConfig = CountdownConfig(), split: str = "train"):
    self.config = config
    self.split = split
    self.problem: Problem | None = None

  def reset(self, seed: int) -> str:
    self.problem = generate(self.config, seed, 1, self.split)[0]
    return prompt(self.problem)

  def step(self, action: str) -> tuple[str, float, bool]:
    if self.problem is None:
      raise ValueError("step called before reset (or after the episode ended)")
    solved, reason = verify(self.problem, action)
    self.problem = None
    return ("correct" if solved else f"incorrect: {reason}"), float(solved), True
