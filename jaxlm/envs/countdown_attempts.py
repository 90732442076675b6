"""Countdown traces that chain attempts with a written verdict (e3's in-context exploration).

Setlur et al. 2025 ("e3") teach a model to explore in context by chaining a skill it is good at
(verification) with one it is worse at (generation): propose a solution, check it, and try again
after a failure, all in one trace, so that more tokens buy more attempts. Our grammar (own
format; every character in ``countdown_data.TRACE_ALPHABET``)::

    trace    := attempt (NL attempt)* NL ending
    attempt  := "attempt " i (NL step)+ NL verdict        i = 1, 2, ...
    step     := a op b "=" c "|" pool                      (countdown_data.random_solution)
    verdict  := "verify " c " vs " target (" goal" | " no")  |  "verify invalid"
    ending   := "Answer:" (NL step)+                       (the goal attempt's steps)
              | "No solution."

Example (target 24 from 2 3 4, two attempts)::

    attempt 1
    4+3=7|2 7
    7*2=14|14
    verify 14 vs 24 no
    attempt 2
    3*2=6|4 6
    6*4=24|24
    verify 24 vs 24 goal
    Answer:
    3*2=6|4 6
    6*4=24|24

A verdict writes the attempt's result next to the target before it decides, so the decision
compares two adjacent numbers rather than a number with the prompt's target. (Neither this
format nor slips taught a 2-layer character model the comparison: its verdicts are exact on
SFT-style traces yet it claims the goal after about half of its own failed attempts; see
experiments/configs/e3.py.) Every verdict is computed by ``countdown.verify`` when a trace is
written (``attempts_trace``), so SFT traces teach exact verification; ``parse_attempts`` reads
a model's trace back, and ``check_verdicts`` compares its written verdicts with the true ones.

Perfect verification (the paper's didactic setting) is ``env_verdict``: the environment writes
each verdict. "v" begins only verdict lines in this alphabet, so a sampler that hands the turn
to the environment at a "v" (``jaxlm.search.threads.interleave``) lets the policy decide when
an attempt ends and the environment decide how it went; after a goal verdict the environment
also writes the answer and ends the trace, exactly as ``format_attempts`` does.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import numpy as np

from jaxlm.envs import countdown
from jaxlm.envs import countdown_data

GIVE_UP = "No solution."
VERDICT_START = "v"  # the first character of a verdict line, and of no other line
_ATTEMPT_RE = re.compile(r"^attempt (\d+)$")
_VERDICT_RE = re.compile(r"^verify (?:\d+ vs \d+ (?:goal|no)|invalid)$")


@dataclasses.dataclass(frozen=True)
class Attempt:
  """One attempt: its step lines and the verdict line written after them."""
  steps: tuple[str, ...]
  written: str

  @property
  def goal(self) -> bool:
    """The attempt claims the goal."""
    return self.written.endswith(" goal")


def verdict(problem: countdown.Problem, steps: Sequence[str]) -> str:
  """The verdict line of an attempt: the exact check of ``countdown.verify``."""
  solved, _ = countdown.verify(problem, "\n".join(steps))
  result = countdown.final_number("\n".join(steps))
  if solved:
    return f"verify {result} vs {problem.target} goal"
  valid, _ = countdown.verify(countdown.Problem(problem.numbers, result or 0),
                                "\n".join(steps))
  return f"verify {result} vs {problem.target} no" if valid else "verify invalid"


def format_attempts(problem: countdown.Problem, attempts: Sequence[Sequence[str]]) -> str:
  """The trace of `attempts` (step lines each) with their true verdicts and the ending."""
  lines, answer = [], None
  for i, steps in enumerate(attempts, start=1):
    check = verdict(problem, steps)
    lines += [f"attempt {i}", *steps, check]
    if check.endswith(" goal"):
      answer = tuple(steps)
      break
  lines += [countdown.ANSWER_MARKER, *answer] if answer else [GIVE_UP]
  return "\n".join(lines)


def attempts_trace(problem: countdown.Problem, num_attempts: int, rng: np.random.Generator,
                   *, solve_last: bool = True, miscount: float = 0.0, max_tries: int = 20
                   ) -> str:
  """A trace of `num_attempts` attempts: failed attempts then, with `solve_last`, a solution
  (a random solver-backed path). A failed attempt is, with probability `miscount`, an
  arithmetic error (verdict "verify invalid"), else a near miss or a slip, half and half
  (``random_solution``): a slip follows a solving path and misses only at its last step, so
  its verdict cannot be told from the attempt's plan, only by comparing its result with the
  target. A problem whose near misses keep hitting the target gets fewer failed attempts
  (after `max_tries` draws each)."""
  if num_attempts < 1:
    raise ValueError(f"num_attempts={num_attempts} must be >= 1")
  failed = []
  for _ in range(num_attempts - int(solve_last)):
    wrong = miscount > 0 and bool(rng.random() < miscount)  # no draw at 0: traces as before
    slip = not wrong and bool(rng.random() < 0.5)
    for _ in range(max_tries):
      steps = countdown_data.random_solution(problem, rng, write_pool=True,
                                             near_miss=not slip, slip=slip, miscount=wrong)
      if not countdown.verify(problem, "\n".join(steps))[0]:
        failed.append(steps)
        break
  last = [countdown_data.random_solution(problem, rng, write_pool=True)] if solve_last else []
  return format_attempts(problem, failed + last)


def env_verdict(problem: countdown.Problem, text: str) -> tuple[str, bool]:
  """The environment's turn after a trace `text` that ends with a line holding only
  VERDICT_START: (the rest of the true verdict line of the last attempt, then the answer and
  done=True after a goal, or a newline and done=False).

  Raises:
    ValueError naming the line when VERDICT_START does not begin a line after an attempt's
    steps.
  """
  lines = text.split("\n")
  if lines[-1] != VERDICT_START:
    raise ValueError(f"line {len(lines)}: {VERDICT_START!r} must begin a verdict line, got "
                     f"{lines[-1]!r}")
  start = max((i for i, line in enumerate(lines) if _ATTEMPT_RE.match(line)), default=None)
  if start is None or start == len(lines) - 2:
    raise ValueError(f"line {len(lines)}: a verdict needs an 'attempt i' line and steps")
  steps = lines[start + 1:-1]
  check = verdict(problem, steps)[len(VERDICT_START):]
  if check.endswith(" goal"):
    return "\n".join([check, countdown.ANSWER_MARKER, *steps]), True
  return check + "\n", False


def parse_attempts(text: str) -> tuple[list[Attempt], tuple[str, ...] | None]:
  """(attempts, answer steps or None for "No solution.") of a complete trace.

  Raises:
    ValueError naming the line (1-based) that breaks the grammar.
  """
  lines = text.strip("\n").split("\n")
  attempts, i = [], 0
  while i < len(lines) and _ATTEMPT_RE.match(lines[i]):
    if int(_ATTEMPT_RE.match(lines[i])[1]) != len(attempts) + 1:
      raise ValueError(f"line {i + 1}: expected 'attempt {len(attempts) + 1}', got {lines[i]!r}")
    j = i + 1
    while j < len(lines) and not lines[j].startswith("verify"):
      j += 1
    match = _VERDICT_RE.match(lines[j]) if j < len(lines) else None
    if match is None or j == i + 1:
      raise ValueError(f"line {min(j, len(lines)) + 1}: an attempt needs steps then a verdict "
                       f"'verify <n> vs <target> goal|no' or 'verify invalid'")
    attempts.append(Attempt(tuple(lines[i + 1:j]), lines[j]))
    i = j + 1
  if not attempts:
    raise ValueError("line 1: a trace starts with 'attempt 1'")
  if i < len(lines) and lines[i] == GIVE_UP and i == len(lines) - 1:
    return attempts, None
  if i < len(lines) and lines[i] == countdown.ANSWER_MARKER and i + 1 < len(lines):
    return attempts, tuple(lines[i + 1:])
  raise ValueError(f"line {i + 1}: expected 'Answer:' and steps or {GIVE_UP!r}")


def check_verdicts(problem: countdown.Problem, attempts: Sequence[Attempt]) -> float:
  """Share of the attempts whose written verdict equals the true one."""
  if not attempts:
    return 0.0
  return float(np.mean([verdict(problem, a.steps) == a.written for a in attempts]))


def false_goal(problem: countdown.Problem, text: str) -> bool:
  """The trace is complete and ends on a goal verdict its last attempt does not earn (the
  early stop of a policy that verifies badly); False for a truncated or malformed trace."""
  try:
    attempts, answer = parse_attempts(text)
  except ValueError:
    return False
  return answer is not None and verdict(problem, attempts[-1].steps) != attempts[-1].written


def count_attempts(text: str) -> int:
  """Attempts started in a (possibly truncated or malformed) trace: its "attempt i" lines."""
  return sum(1 for line in text.split("\n") if _ATTEMPT_RE.match(line))
