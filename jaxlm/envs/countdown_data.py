"""Countdown as character-level text for a small policy: the format and the SFT datasets.

A direct-answer example is

    <bos> "<target>|<n1> <n2> ...\\n" "a op b = c\\n" ... "a op b = c" <eos>

(steps written ``hi op lo=c`` by ``countdown.format_step``; with ``write_pool`` a step also
writes the numbers left, ``hi op lo=c|x y c``, so the state is on the step's own line, as in the
Stream-of-Search traces). A step ends at a newline, the last one at <eos>, so a search can sample
one step per call. The prompt is a compact stand-in for ``countdown.prompt`` (the long
instruction text would only cost context on CPU).

Behaviour-cloning rows (``sft_batch``) are solver solutions, each drawn at random among the
solutions (a uniformly random solvable move at every step, checked with ``countdown.solve``), so
best-of-N has something to choose from; optionally a share are honest near misses (random moves,
then the closest last result as it is): trained on solutions alone, a policy ends every attempt
with "=<target>" whatever the arithmetic gives, and a verifier must then recompute the last step.

A search-trace example (``trace_sft_batch``, for budget forcing) is
"<prompt>{" -> "<best-first trace>}Answer:\\n<solution lines>" <eos>: THINK_OPEN opens the
thinking span (the trace of ``countdown_search.search_trace``), THINK_CLOSE closes it.
"""

from __future__ import annotations

from typing import Sequence

from absl import logging
import numpy as np

from jaxlm.data import RLBatch, SimpleTokenizer
from jaxlm.envs import countdown
from jaxlm.envs import countdown_search

ALPHABET = "0123456789+-*/=| \n"
STEP_DELIMITER = "\n"
THINK_OPEN, THINK_CLOSE = "{", "}"
ANSWER_PREFIX = countdown.ANSWER_MARKER + STEP_DELIMITER
TRACE_ALPHABET = ALPHABET + "{}#[]>:.AGN" + "abcdefghijklmnopqrstuvwxyz"


def tokenizer() -> SimpleTokenizer:
  """Character tokenizer over ALPHABET (ids 0, 1, 2 are pad, eos, bos)."""
  return SimpleTokenizer.chars(ALPHABET)


def trace_tokenizer() -> SimpleTokenizer:
  """Character tokenizer over TRACE_ALPHABET (search traces, think delimiters); the ids of
  ALPHABET's characters are those of ``tokenizer()``."""
  return SimpleTokenizer.chars(TRACE_ALPHABET)


def prompt_text(problem: countdown.Problem) -> str:
  """ "<target>|<numbers>\\n": the prompt of the direct-answer and attempt-chain policies."""
  return f"{problem.target}|{' '.join(map(str, problem.numbers))}" + STEP_DELIMITER


def encode_prompt(tok: SimpleTokenizer, problem: countdown.Problem) -> list[int]:
  """<bos> + prompt_text."""
  return [tok.bos_id] + tok.encode(prompt_text(problem))


def encode_solution(tok: SimpleTokenizer, steps: Sequence[str]) -> list[int]:
  """Step lines joined by the delimiter, then <eos>."""
  return tok.encode(STEP_DELIMITER.join(steps)) + [tok.eos_id]


def random_solution(problem: countdown.Problem, rng: np.random.Generator, *,
                    write_pool: bool = False, near_miss: bool = False,
                    slip: bool = False, miscount: bool = False) -> tuple[str, ...]:
  """A random solution path, or with ``near_miss`` / ``slip`` / ``miscount`` a random failed
  attempt.

  A solution takes a uniformly random solvable move at every step. A near miss takes uniformly
  random legal moves and, on the last two numbers, the operation whose result is closest to the
  target, written with its true result: a failed attempt when it misses. A slip follows a
  solution's moves to the last two numbers, then takes the operation closest to the target
  among those that miss it: an attempt that was on a solving path and erred at its last step.
  A miscount is a near miss whose step at a uniformly random position writes a result off by
  1..3 (never negative) and carries it on in the pool: an arithmetic error, which the verifier
  calls invalid. With ``write_pool`` each step also writes the numbers left ("7*5=35|3 35").
  """
  pool, steps = list(problem.numbers), []
  near_miss = near_miss or miscount
  wrong_at = int(rng.integers(0, len(pool) - 1)) if miscount else -1
  while len(pool) > 1:
    moves = [(i, j, op, countdown.apply_op(pool[i], pool[j], op))
             for i in range(len(pool)) for j in range(i + 1, len(pool)) for op in countdown.OPS]
    moves = [moves[k] for k in rng.permutation(len(moves)) if moves[k][3] is not None]
    last = len(pool) == 2
    if (near_miss or slip) and last:  # the result closest to the target (stable: random ties)
      moves.sort(key=lambda move: abs(move[3] - problem.target))
      moves = [m for m in moves if m[3] != problem.target] if slip else moves
    for i, j, op, value in moves:
      if len(steps) == wrong_at:
        value = _miscount(value, rng)
      child = [x for m, x in enumerate(pool) if m not in (i, j)] + [value]
      if near_miss or (slip and last) or countdown.solve(
          countdown.Problem(tuple(sorted(child)), problem.target)) is not None:
        step = countdown.format_step(pool[i], op, pool[j], value)
        steps.append(step + countdown.POOL_SEPARATOR + countdown.format_pool(child)
                     if write_pool else step)
        pool = child
        break
    else:
      raise ValueError(f"{problem} has no solution")
  return tuple(steps)


def _miscount(value: int, rng: np.random.Generator) -> int:
  """`value` off by 1..3, either way when that stays >= 0."""
  offsets = [d for d in (-3, -2, -1, 1, 2, 3) if value + d >= 0]
  return value + int(rng.choice(offsets))


def make_problems(num_numbers: Sequence[int], count: int, split: str, seed: int,
                  **countdown_kwargs) -> list[countdown.Problem]:
  """``count`` problems split evenly over the starting-number counts k in ``num_numbers``."""
  out = []
  for i, k in enumerate(num_numbers):
    n = count // len(num_numbers) + (i < count % len(num_numbers))
    cfg = countdown.CountdownConfig(num_numbers=k, **countdown_kwargs)
    out.extend(countdown.generate(cfg, seed * 1000 + k, n, split))
  return out


def trace_completion(problem: countdown.Problem, max_expansions: int = 100) -> str | None:
  """The search-trace target after the prompt's THINK_OPEN, or None if the search gave up.

  ``"<trace>}Answer:\\n<solution lines>"``: the thinking span is the best-first search trace of
  ``countdown_search.search_trace`` (nodes, children, backtracking) up to its answer marker.
  """
  result = countdown_search.search_trace(problem, max_expansions)
  if result.solution is None:
    return None
  think = result.trace.rsplit(countdown.ANSWER_MARKER, 1)[0].rstrip(STEP_DELIMITER)
  return think + THINK_CLOSE + ANSWER_PREFIX + STEP_DELIMITER.join(result.solution)


def sft_batch(problems: Sequence[countdown.Problem], max_len: int, seed: int,
              solutions_per_problem: int = 1, *, write_pool: bool = False,
              near_miss_fraction: float = 0.0) -> RLBatch:
  """Behaviour-cloning rows: the prompt is observation, the solution (with <eos>) the action.

  A ``near_miss_fraction`` of the rows are honest failed attempts (``random_solution`` with
  ``near_miss``; one that would not fit max_len becomes a solution): without them the last step
  of every row equals the target, so the policy learns to write the target there whatever the
  arithmetic gives.
  """
  if not 0.0 <= near_miss_fraction < 1.0:
    raise ValueError(f"near_miss_fraction must be in [0, 1), got {near_miss_fraction}")
  tok, rng = tokenizer(), np.random.default_rng(seed)
  rows = []
  for p in problems:
    prompt = encode_prompt(tok, p)
    for _ in range(solutions_per_problem):
      action = None
      if rng.random() < near_miss_fraction:
        action = encode_solution(tok, random_solution(p, rng, write_pool=write_pool,
                                                      near_miss=True))
        action = action if len(prompt) + len(action) <= max_len else None
      if action is None:
        action = encode_solution(tok, random_solution(p, rng, write_pool=write_pool))
      rows.append((prompt, action))
  return lm_batch(rows, max_len, tok.pad_id)


def trace_sft_batch(problems: Sequence[countdown.Problem], max_len: int,
                    max_expansions: int = 100) -> RLBatch:
  """Rows "<prompt>{" -> "<trace>}Answer:\\n<solution>" <eos>; rows longer than max_len are
  dropped (long k >= 4 traces), as are problems the search gave up on."""
  tok = trace_tokenizer()
  rows = []
  for p in problems:
    text = trace_completion(p, max_expansions)
    if text is not None:
      row = (encode_prompt(tok, p) + tok.encode(THINK_OPEN), tok.encode(text) + [tok.eos_id])
      if len(row[0]) + len(row[1]) <= max_len:
        rows.append(row)
  if not rows:
    raise ValueError(f"no search trace of {len(problems)} problems fits max_len={max_len}")
  logging.info("trace SFT: %d of %d problems fit max_len=%d", len(rows), len(problems), max_len)
  return lm_batch(rows, max_len, tok.pad_id)


def lm_batch(rows: Sequence[tuple[list[int], list[int]]], max_len: int, pad_id: int) -> RLBatch:
  """(observation ids, action ids) rows -> a right-padded RLBatch, loss on the actions."""
  tokens = np.full((len(rows), max_len), pad_id, np.int32)
  attn, act = np.zeros((2, len(rows), max_len), np.float32)
  for b, (prompt, solution) in enumerate(rows):
    n = len(prompt) + len(solution)
    if n > max_len:
      raise ValueError(f"example {b} needs {n} tokens > max_len={max_len}")
    tokens[b, :n] = prompt + solution
    attn[b, :n], act[b, len(prompt):n] = 1.0, 1.0
  zeros = np.zeros_like(attn)
  return RLBatch(tokens, attn, act, zeros, zeros).validate()
