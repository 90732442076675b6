"""Best-first search over Countdown pools and its trace (Stream of Search / SoS+).

Gandhi et al. 2024 ("Stream of Search") train on the written trace of a symbolic search; Pan et
al. 2025 (APR) call the serial version SoS+. Here: the search as data (``best_first`` ->
``Search`` of ``Expansion``s and ``Edge``s), its trace (``format_search``, in one of the
``GRAMMARS`` of ``format_edge``) and ``search_trace`` (both at once). The parsers that read
traces back, and the APR format that splits a search into threads, are in
``countdown_traces``.
"""

import dataclasses
import heapq
from typing import Sequence

from jaxlm.envs import countdown

# How an edge to a two-number pool is written (``format_edge``).
GRAMMARS = ("plain", "results", "marks")


def heuristic(pool: Sequence[int], target: int) -> int | None:
  """Search priority of a pool (lower first); None marks a pool that cannot reach the target.

  Exact for two numbers (0 if one operation reaches the target, else None); otherwise the
  distance of the closest number to the target.
  """
  if len(pool) == 2:
    return 0 if target in pair_results(pool) else None
  return min(abs(target - x) for x in pool)


@dataclasses.dataclass(frozen=True)
class SearchResult:
  """Outcome of ``search_trace``: the text trace, the solution (or None), nodes expanded."""
  trace: str
  solution: tuple[str, ...] | None
  expansions: int


@dataclasses.dataclass(frozen=True)
class Edge:
  """One child listed under an expanded node of a best-first search.

  Attributes:
    step: the written operation, ``hi op lo=c``.
    pool: the sorted numbers after it.
    status: "goal" (one number, the target; with ``best_first``'s ``pair_goals`` also a
      two-number pool one operation from it), "pruned" (``heuristic`` is None: written ``x``)
      or "open" (it joined the frontier).
    h: its ``heuristic`` when open.
    node_id: its node id when open.
  """
  step: str
  pool: tuple[int, ...]
  status: str
  h: int | None = None
  node_id: int | None = None


@dataclasses.dataclass(frozen=True)
class Expansion:
  """One expanded node of a best-first search.

  Attributes:
    node_id: its id (creation order; the start is #0).
    pool: its sorted numbers.
    h: its ``heuristic`` (None only for a start that cannot reach the target).
    edges: its listed children.
    backtrack_to: the parent it backtracked to first, or None when it is a child of the
      previous expansion (or the first expansion).
  """
  node_id: int
  pool: tuple[int, ...]
  h: int | None
  edges: tuple[Edge, ...]
  backtrack_to: int | None = None


@dataclasses.dataclass(frozen=True)
class Search:
  """A best-first search as data (``best_first``); ``format_search`` writes its trace.

  Attributes:
    target: the number to reach.
    start: the sorted starting pool (node #0).
    expansions: the expanded nodes in order.
    solution: the step lines from ``start`` to the target, or None (the search gave up).
  """
  target: int
  start: tuple[int, ...]
  expansions: tuple[Expansion, ...]
  solution: tuple[str, ...] | None


def search_header(target: int, pool: Sequence[int]) -> str:
  """The first line of a search trace, ``Goal <target> from [<pool>]``: the thread's prompt."""
  return f"Goal {target} from {countdown.bracket_pool(pool)}"


def pair_results(pool: Sequence[int]) -> tuple[int, ...]:
  """The numbers a two-number pool can end on: its allowed results in ``countdown.OPS``
  order."""
  a, b = pool
  results = (countdown.apply_op(a, b, op) for op in countdown.OPS)
  return tuple(r for r in results if r is not None)


def final_step(pool: Sequence[int], target: int) -> str:
  """The step that ends a two-number ``pool`` on ``target`` (the first in ``countdown.OPS``)."""
  a, b = pool
  op = next((op for op in countdown.OPS if countdown.apply_op(a, b, op) == target), None)
  if op is None:
    raise ValueError(f"no operation takes {list(pool)} to {target}")
  return countdown.format_step(a, op, b)


def format_edge(edge: Edge, target: int, grammar: str = "plain") -> str:
  """One child line of an expansion: ``  <step> -> [<pool>] goal|x|h=<h> #<id>``.

  In the "results" and "marks" grammars a two-number pool also lists its ``pair_results``, so
  its label is read off the line instead of computed in one token. "results" writes their
  least distance to the target: ``[2 12] = 14 10 24 6 h=0 #20``, ``[2 30] = 32 28 60 15 h=4 x``
  (target 24); "marks" writes a "." after each result equal to the target: ``[2 12] = 14 10
  24. 6 #20`` (``[2 12] = 14 10 24. 6 goal`` when the search's ``pair_goals`` stops there).
  """
  if grammar not in GRAMMARS:
    raise ValueError(f"grammar must be one of {GRAMMARS}, got {grammar!r}")
  pool = countdown.bracket_pool(edge.pool)
  label = {"goal": "goal", "pruned": "x"}.get(edge.status, f"#{edge.node_id}")
  if grammar == "plain" or len(edge.pool) != 2:
    h = f"h={edge.h} " if edge.status == "open" else ""
    return f"  {edge.step} -> {pool} {h}{label}"
  results = pair_results(edge.pool)
  if grammar == "results":
    return (f"  {edge.step} -> {pool} = {' '.join(map(str, results))} "
            f"h={min(abs(target - r) for r in results)} {label}")
  marked = " ".join(f"{r}." if r == target else str(r) for r in results)
  return f"  {edge.step} -> {pool} = {marked} {label}"


def expansion_lines(expansion: Expansion, target: int, grammar: str = "plain") -> list[str]:
  """The lines of one expansion in ``grammar`` (``format_edge``): optional backtrack, the
  node, its children (or dead end)."""
  lines = [] if expansion.backtrack_to is None else [f"backtrack to #{expansion.backtrack_to}"]
  lines.append(f"#{expansion.node_id} {countdown.bracket_pool(expansion.pool)} h={expansion.h}")
  lines.extend(format_edge(e, target, grammar) for e in expansion.edges)
  if not any(e.status in ("goal", "open") for e in expansion.edges):
    lines.append("  dead end")
  return lines


def format_search(search: Search, grammar: str = "plain") -> str:
  """The Stream-of-Search trace (SoS+ in APR's terms) of a ``Search`` in ``grammar``
  (``format_edge``); see ``search_trace``."""
  lines = [search_header(search.target, search.start)]
  for expansion in search.expansions:
    lines.extend(expansion_lines(expansion, search.target, grammar))
  if search.solution is None:
    lines.append(f"No solution after {len(search.expansions)} nodes.")
  else:
    lines.append(countdown.ANSWER_MARKER)
    lines.extend(search.solution)
  return "\n".join(lines)


def best_first(target: int, start: Sequence[int], max_expansions: int = 100, *,
               pair_goals: bool = False) -> Search:
  """Heuristic best-first search from ``start``, recorded as a ``Search``.

  Nodes are pools of numbers, expanded in order of (``heuristic``, pool size, creation order);
  pools seen before are skipped, one-number pools that miss the target are not listed, and the
  search stops at the first child equal to the target or after ``max_expansions`` nodes.
  ``pair_goals``: a two-number child one operation from the target is a goal too (the search
  stops there; the solution ends with its ``final_step``), so no node is opened to finish it.
  """
  start = tuple(sorted(start))
  nodes = [(start, -1, "")]  # (pool, parent id, step that made it)
  frontier = [(heuristic(start, target), len(start), 0)]
  seen = {start}
  expansions, last = [], None

  def path(node_id):
    steps = []
    while node_id > 0:
      _, node_id, step = nodes[node_id]
      steps.append(step)
    return tuple(reversed(steps))

  while frontier and len(expansions) < max_expansions:
    h, _, node_id = heapq.heappop(frontier)
    pool, parent, _ = nodes[node_id]
    backtrack = parent if last is not None and parent != last else None
    last, edges, solution = node_id, [], None
    for step, child in countdown.successors(pool):
      if len(child) == 1:
        if child[0] == target:
          edges.append(Edge(step, child, "goal"))
          solution = path(node_id) + (step,)
          break
        continue
      if child in seen:
        continue
      seen.add(child)
      if pair_goals and len(child) == 2 and target in pair_results(child):
        edges.append(Edge(step, child, "goal"))
        solution = path(node_id) + (step, final_step(child, target))
        break
      child_h = heuristic(child, target)
      if child_h is None:
        edges.append(Edge(step, child, "pruned"))
        continue
      nodes.append((child, node_id, step))
      heapq.heappush(frontier, (child_h, len(child), len(nodes) - 1))
      edges.append(Edge(step, child, "open", child_h, len(nodes) - 1))
    expansions.append(Expansion(node_id, pool, h, tuple(edges), backtrack))
    if solution is not None:
      return Search(target, start, tuple(expansions), solution)
  return Search(target, start, tuple(expansions), None)


def search_trace(problem: countdown.Problem, max_expansions: int = 100) -> SearchResult:
  """Heuristic best-first search that writes its own trace (Stream-of-Search style).

  The search is ``best_first``; the trace (``format_search``) lists each expanded node with
  its children, marks ``backtrack`` whenever the next node is not a child of the last expanded
  one, and ends with ``Answer:`` and the solution lines (checked by ``countdown.verify``) or
  with a give-up line. ``countdown_traces.parse_search`` reads it back.

  Args:
    problem: the puzzle.
    max_expansions: node budget.

  Returns:
    A SearchResult.
  """
  search = best_first(problem.target, problem.numbers, max_expansions)
  return SearchResult(format_search(search), search.solution, len(search.expansions))
