"""Countdown search traces for Adaptive Parallel Reasoning: SoS+ and APR, with parsers.

Pan et al. 2025 ("Learning Adaptive Parallel Reasoning with Language Models", APR) train a model
on two trace formats of the same best-first search. Ours (own grammar, structure from the paper):

* SoS+ (serial): ``countdown_search.format_search`` of ``countdown_search.best_first``, the
  text of ``countdown_search.search_trace``; ``parse_search`` reads it back into a
  ``countdown_search.Search``::

      search   := header NL expansion+ (NL "Answer:" (NL step)+ | NL "No solution after N nodes.")
      header   := "Goal " target " from " pool                  pool := "[" n (" " n)* "]"
      expansion:= ["backtrack to #" id NL] "#" id " " pool " h=" (h | "None") (NL edge)*
                  [NL "  dead end"]
      edge     := "  " step " -> " pool (" goal" | " x" | " h=" h " #" id)
      step     := hi op lo "=" result                           (``countdown.format_step``)

  "dead end" is written exactly when no edge is a goal or open. In the "results" grammar
  (``format_search(..., "results")``) an edge to a two-number pool is instead
  ``"  " step " -> " pool " = " r (" " r)* " h=" d (" x" | " #" id | " goal")``: the pool's
  results (``countdown_search.pair_results``) and their least distance d to the target (0
  exactly when it is open); in the "marks" grammar ``" = " r ["."] (" " r ["."])* (" x" | " #" id
  | " goal")``, a "." after each result equal to the target. "goal" on such a line: the search
  ran with ``pair_goals`` (``countdown_search.best_first``) and stopped there; its answer ends
  with the pool's ``final_step``. The parsers accept every grammar, line by line, and check what
  such a line claims.

* APR (parent + children): the parent expands the root (node #0), spawns one child search per
  kept open child (the best ``max_children`` by (h, pool size, id)), reads only each child's
  outcome in a join block (a goal outcome is the full path: the spawned edge's step, then the
  child's), then answers by naming the first child that reached the goal (the answer is that
  child's path, ``answer_text``) or gives up::

      parent   := header NL expansion (NL spawn join | NL) ending
      spawn    := "spawn" (NL "  #" id)+ NL "|"                   ("|" ends the spawn block)
      join     := NL "join" (NL "  #" id (" goal" (" " step)+ | " no solution"))+ NL
      ending   := "Answer: #" id  |  "No solution."          (a root that reaches the goal
                                                              itself: "Answer:" (NL step)+)

  A child is a SoS+ search from its node with its own ids and budget; its prompt is its header
  line, ``thread_prompt(target, pool)``, with the pool of the open edge the spawn line names in
  the parent's own expansion (the parent names nodes; it does not copy their pools, so a
  child's prompt is exact by construction). The parent never sees a child's trace.

``join_context`` is the one definition of the text a parent resumes from after a spawn: the
serialiser builds parent traces with it, and the orchestrator (``jaxlm.search.threads``) calls
it at inference through ``APR_THREADS``. Example (``max_children=2``, target 24 from 2 3 4;
four of the root's nine edges shown)::

    Goal 24 from [2 3 4]                 <- the prompt
    #0 [2 3 4] h=20
      3+2=5 -> [4 5] x
      3*2=6 -> [4 6] h=0 #1
      4*2=8 -> [3 8] h=0 #2
      4*3=12 -> [2 12] h=0 #3
    spawn
      #1
      #2
    |                                     <- decoding stops here; children run
    join                                  <- join_context appends from here
      #1 goal 3*2=6 6*4=24
      #2 goal 4*2=8 8*3=24
    Answer: #1                            <- the parent resumes here

Every character is in ``countdown_data.TRACE_ALPHABET``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

from jaxlm.envs import countdown
from jaxlm.envs import countdown_search

SPAWN_OPEN, SPAWN_END, JOIN_OPEN = "spawn", "|", "join"
GIVE_UP = "No solution."
NO_SOLUTION = "no solution"
Outcome = tuple[str, ...] | None  # a child's goal path from its node, or None

_N = r"(\d+)"
_POOL = r"\[(\d+(?: \d+)*)\]"
_STEP = r"\d+[-+*/]\d+=\d+"
_HEADER_RE = re.compile(rf"^Goal {_N} from {_POOL}$")
_NODE_RE = re.compile(rf"^#{_N} {_POOL} h=(\d+|None)$")  # None: a start that cannot reach
_BACKTRACK_RE = re.compile(rf"^backtrack to #{_N}$")
# Groups: step, pool, results (with "." marks in "marks"), distance ("results"), label
# (goal | x | [h=<h> ]#<id>), plain h, id.
_EDGE_RE = re.compile(
    rf"^  ({_STEP}) -> {_POOL}(?: = ([\d. ]+?)(?: h=(\d+))?)? (goal|x|(?:h={_N} )?#{_N})$")
_STEP_RE = re.compile(rf"^{_STEP}$")
_GIVE_UP_RE = re.compile(rf"^No solution after {_N} nodes\.$")
_SPAWNED_RE = re.compile(rf"^  #{_N}$")
_OUTCOME_RE = re.compile(rf"^  #{_N} (?:goal((?: {_STEP})+)|{NO_SOLUTION})$")
_ANSWER_REF_RE = re.compile(rf"^{countdown.ANSWER_MARKER} #{_N}$")
_DEAD_END = "  dead end"


@dataclasses.dataclass(frozen=True)
class AprTrace:
  """One APR rollout as data (``apr_trace``); ``apr_texts`` writes its thread texts.

  Attributes:
    target: the number to reach.
    root: the parent's expansion of the starting pool (node #0).
    spawned: node ids of the spawned children (open edges of ``root``), in spawn order.
    outcomes: per spawned child, the goal path from its node or None (what the parent reads).
    solution: the parent's answer (full path from the start) or None (it gave up).
    children: the children's own searches (their traces are not in the parent's text).
  """
  target: int
  root: countdown_search.Expansion
  spawned: tuple[int, ...]
  outcomes: tuple[Outcome, ...]
  solution: tuple[str, ...] | None
  children: tuple[countdown_search.Search, ...]


def _pool(text: str) -> tuple[int, ...]:
  return tuple(int(x) for x in text.split())


def thread_prompt(target: int, pool: Sequence[int]) -> str:
  """The prompt of a thread searching from ``pool``: its header line and a newline."""
  return countdown_search.search_header(target, pool) + "\n"


# ---------------------------------------------------------------------------------------------
# Serialisers.


def apr_trace(problem: countdown.Problem, max_children: int = 4, child_expansions: int = 20,
              pair_goals: bool = False) -> AprTrace:
  """The APR rollout of a best-first search (Pan et al. 2025): the parent expands the
  root and spawns a ``countdown_search.best_first`` child search (budget ``child_expansions``
  nodes, ``pair_goals`` as every search of the rollout) from each of the ``max_children`` best
  open children; it answers with the first child (in spawn order) that reached the goal,
  prefixed by the step that made that child."""
  if max_children < 1:
    raise ValueError(f"max_children must be >= 1, got {max_children}")
  root = countdown_search.best_first(problem.target, problem.numbers, max_expansions=1,
                                     pair_goals=pair_goals)
  expansion = root.expansions[0]
  if root.solution is not None:  # two numbers: the root itself reaches the goal
    return AprTrace(problem.target, expansion, (), (), root.solution, ())
  kept = sorted((e for e in expansion.edges if e.status == "open"),
                key=lambda e: (e.h, len(e.pool), e.node_id))[:max_children]
  children = tuple(countdown_search.best_first(problem.target, e.pool, child_expansions,
                                              pair_goals=pair_goals) for e in kept)
  outcomes = tuple(c.solution for c in children)
  solution = next(((e.step,) + o for e, o in zip(kept, outcomes) if o is not None), None)
  return AprTrace(problem.target, expansion, tuple(e.node_id for e in kept), outcomes, solution,
                  children)


def _ending(trace: AprTrace) -> str:
  """The parent's last line: it names its first goal child, or gives up."""
  if trace.solution is None:
    return GIVE_UP
  if not trace.spawned:  # two numbers: the root's own answer
    return "\n".join((countdown.ANSWER_MARKER,) + trace.solution)
  first = next(i for i, o in zip(trace.spawned, trace.outcomes) if o is not None)
  return f"{countdown.ANSWER_MARKER} #{first}"


def spawn_block(trace: AprTrace) -> str:
  """``spawn``, one line per spawned child (its node id), then ``SPAWN_END``."""
  return "\n".join([SPAWN_OPEN] + [f"  #{i}" for i in trace.spawned] + [SPAWN_END])


def parent_before_spawn(trace: AprTrace, grammar: str = "plain") -> str:
  """The parent's text up to and including its spawn block (all of it if it spawns nothing):
  where decoding stops for the children to run; ``grammar``: one of
  ``countdown_search.GRAMMARS``."""
  lines = [countdown_search.search_header(trace.target, trace.root.pool)]
  lines += countdown_search.expansion_lines(trace.root, trace.target, grammar)
  text = "\n".join(lines)
  return text + "\n" + spawn_block(trace) if trace.spawned else text


def apr_texts(trace: AprTrace, grammar: str = "plain") -> tuple[str, tuple[str, ...]]:
  """(parent text, children's texts); each text starts with its thread's prompt; every thread
  in ``grammar`` (one of ``countdown_search.GRAMMARS``)."""
  text = parent_before_spawn(trace, grammar)
  text = join_context(text, trace.outcomes) if trace.spawned else text + "\n"
  children = tuple(countdown_search.format_search(c, grammar) for c in trace.children)
  return text + _ending(trace), children


def join_context(parent_text: str, outcomes: Sequence[Outcome]) -> str:
  """The text a parent resumes from: ``parent_text`` (which ends with its spawn block) and a
  join block with each spawned child's outcome, in spawn order: "no solution", or "goal" and
  the full path from the parent's pool (the spawned edge's step, then the child's), so the
  parent's answer copies its first goal line instead of fetching the edge by its id.

  This is the one definition of the join used by ``apr_texts`` (training traces) and, through
  ``APR_THREADS``, by the orchestrator (inference).
  """
  spawned = _spawned_edges(parent_text)
  if len(outcomes) != len(spawned):
    raise ValueError(f"join: {len(outcomes)} outcomes for {len(spawned)} spawned children")
  lines = [JOIN_OPEN]
  for edge, outcome in zip(spawned, outcomes):
    if outcome is not None and not outcome:
      raise ValueError(f"join: child #{edge.node_id} has an empty goal path; use None for no "
                       "solution")
    lines.append(f"  #{edge.node_id} " + (
        NO_SOLUTION if outcome is None else "goal " + " ".join((edge.step,) + tuple(outcome))))
  return parent_text + "\n" + "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Parsers.


class _Lines:
  """A cursor over the lines of a trace that names the line of every parse error."""

  def __init__(self, text: str, what: str):
    self.lines, self.i, self.what = text.split("\n"), 0, what

  def peek(self) -> str | None:
    return self.lines[self.i] if self.i < len(self.lines) else None

  def error(self, expected: str) -> ValueError:
    found = "end of text" if self.peek() is None else repr(self.peek())
    return ValueError(f"{self.what}, line {self.i + 1}: expected {expected}, found {found}")

  def take(self, regex: re.Pattern, expected: str) -> re.Match:
    match = None if self.peek() is None else regex.match(self.peek())
    if match is None:
      raise self.error(expected)
    self.i += 1
    return match

  def take_literal(self, line: str) -> None:
    if self.peek() != line:
      raise self.error(repr(line))
    self.i += 1

  def end(self) -> None:
    if self.peek() is not None:
      raise self.error("end of text")


def _header(lines: _Lines) -> tuple[int, tuple[int, ...]]:
  match = lines.take(_HEADER_RE, "'Goal <target> from [<numbers>]'")
  return int(match[1]), _pool(match[2])


def _check_results(lines: _Lines, match: re.Match, edge: countdown_search.Edge,
                   target: int) -> None:
  """An edge line (``match``, just taken) in the "results" or "marks" grammar must state its
  pool's results, their distance to ``target`` or marks, and the label they imply."""
  if match[3] is None:
    return
  grammar = "marks" if match[4] is None else "results"
  pruned = countdown_search.heuristic(edge.pool, target) is None
  if (countdown_search.format_edge(edge, target, grammar) != match[0]
      or pruned != (edge.status == "pruned")):
    raise ValueError(f"{lines.what}, line {lines.i}: {match[0]!r} does not state its pool's "
                     f"results, distance to {target} or label right")


def _expansion(lines: _Lines, target: int) -> countdown_search.Expansion:
  backtrack = None
  if lines.peek() is not None and _BACKTRACK_RE.match(lines.peek()):
    backtrack = int(lines.take(_BACKTRACK_RE, "")[1])
  node = lines.take(_NODE_RE, "a node line '#<id> [<numbers>] h=<h>'")
  edges = []
  while lines.peek() is not None and _EDGE_RE.match(lines.peek()):
    m = lines.take(_EDGE_RE, "")
    status = {"goal": "goal", "x": "pruned"}.get(m[5], "open")
    h, node_id = (None, None) if status != "open" else (int(m[6] or 0), int(m[7]))
    edges.append(countdown_search.Edge(m[1], _pool(m[2]), status, h, node_id))
    _check_results(lines, m, edges[-1], target)
  if not any(e.status in ("goal", "open") for e in edges):
    lines.take_literal(_DEAD_END)
  h = None if node[3] == "None" else int(node[3])
  return countdown_search.Expansion(int(node[1]), _pool(node[2]), h, tuple(edges), backtrack)


def _answer(lines: _Lines) -> tuple[str, ...]:
  lines.take_literal(countdown.ANSWER_MARKER)
  steps = [lines.take(_STEP_RE, "a step line 'a op b=c'")[0]]
  while lines.peek() is not None:
    steps.append(lines.take(_STEP_RE, "a step line 'a op b=c'")[0])
  return tuple(steps)


def parse_search(text: str, what: str = "SoS+ trace") -> countdown_search.Search:
  """``countdown_search.Search`` of a SoS+ trace (inverse of ``countdown_search.format_search``).

  Raises:
    ValueError naming the line that breaks the grammar (see the module docstring).
  """
  lines = _Lines(text, what)
  target, start = _header(lines)
  expansions = []
  while lines.peek() != countdown.ANSWER_MARKER and not _GIVE_UP_RE.match(lines.peek() or ""):
    expansions.append(_expansion(lines, target))
  if lines.peek() == countdown.ANSWER_MARKER:
    return countdown_search.Search(target, start, tuple(expansions), _answer(lines))
  count = int(lines.take(_GIVE_UP_RE, "")[1])
  if count != len(expansions):
    raise ValueError(f"{what}, line {lines.i}: says {count} nodes, the trace expands "
                     f"{len(expansions)}")
  lines.end()
  return countdown_search.Search(target, start, tuple(expansions), None)


def _spawn(lines: _Lines) -> list[int]:
  lines.take_literal(SPAWN_OPEN)
  spawned = [lines.take(_SPAWNED_RE, "a spawned child '  #<id>'")]
  while lines.peek() != SPAWN_END:
    spawned.append(lines.take(_SPAWNED_RE, f"a spawned child or {SPAWN_END!r}"))
  lines.take_literal(SPAWN_END)
  return [int(m[1]) for m in spawned]


def _open_edges(root: countdown_search.Expansion, spawned: Sequence[int], what: str
                ) -> list[countdown_search.Edge]:
  """The open edge of ``root`` with each spawned id."""
  edges = {e.node_id: e for e in root.edges if e.status == "open"}
  for node_id in spawned:
    if node_id not in edges:
      raise ValueError(f"{what}: spawned #{node_id} is not an open child of the root")
  return [edges[i] for i in spawned]


def _spawned_edges(parent_text: str) -> list[countdown_search.Edge]:
  """The root's open edge of each child in the spawn block that ends ``parent_text``."""
  if not parent_text.endswith("\n" + SPAWN_END):
    raise ValueError(f"parent text must end with a spawn block closed by {SPAWN_END!r}, ends "
                     f"with {parent_text[-20:]!r}")
  start = parent_text.rfind("\n" + SPAWN_OPEN + "\n")
  if start < 0:
    raise ValueError(f"parent text has {SPAWN_END!r} but no {SPAWN_OPEN!r} line before it")
  spawned = _spawn(_Lines(parent_text[start + 1:], "spawn block"))
  lines = _Lines(parent_text[:start], "APR parent")
  target, _ = _header(lines)
  return _open_edges(_expansion(lines, target), spawned, "spawn block")


def spawned_children(parent_text: str) -> list[tuple[int, tuple[int, ...]]]:
  """(node id, starting pool) of each child in the spawn block that ends ``parent_text``: the
  pool of the open edge with that id in the parent's root expansion."""
  return [(e.node_id, e.pool) for e in _spawned_edges(parent_text)]


def decision_positions(text: str) -> list[int]:
  """Offsets in a thread ``text`` of the characters that decide its search: on each edge line
  to a two-number pool that lists its results ("results" and "marks" grammars), the character
  after each result (a space or a mark), the distance's digits and the label's first
  character (everything else on such a line is copying or arithmetic); in a parent, the ids
  it spawns and the id its answer names."""
  positions, offset = [], 0
  for line in text.split("\n"):
    m = _EDGE_RE.match(line)
    if m and m[3] is not None:
      positions += [offset + m.start(3) + r.end() for r in re.finditer(r"\d+", m[3])]
      positions += [] if m[4] is None else [offset + i for i in range(*m.span(4))]
      positions.append(offset + m.start(5))
    m = _SPAWNED_RE.match(line) or _ANSWER_REF_RE.match(line)
    if m:
      positions += [offset + i for i in range(*m.span(1))]
    offset += len(line) + 1
  return positions


def answer_text(parent_text: str) -> str:
  """What ``countdown.verify`` reads of a parent: a parent whose last line names a goal child
  ("Answer: #6") answers with the goal path of that child's (last) join line; any other text
  is its own answer. A parent never copies a path: it names the child whose path it takes."""
  ref = _ANSWER_REF_RE.match(parent_text.rstrip("\n").rsplit("\n", 1)[-1])
  if ref is None:
    return parent_text
  for line in reversed(parent_text.split("\n")):
    outcome = _OUTCOME_RE.match(line)
    if outcome and outcome[1] == ref[1] and outcome[2]:
      return "\n".join((countdown.ANSWER_MARKER,) + tuple(outcome[2].split()))
  return parent_text


def child_prompts(parent_text: str) -> list[str]:
  """The prompt of each child spawned at the end of ``parent_text`` (the header's target)."""
  target, _ = _header(_Lines(parent_text.split("\n", 1)[0], "parent header"))
  return [thread_prompt(target, pool) for _, pool in spawned_children(parent_text)]


def child_outcome(child_text: str) -> Outcome:
  """What the parent reads of a child: the step lines after its last ``Answer:`` when they all
  parse, else None (no solution: it gave up, was cut by a budget or wrote no answer)."""
  if countdown.ANSWER_MARKER not in child_text:
    return None
  steps = child_text.rsplit(countdown.ANSWER_MARKER, 1)[1].strip("\n").split("\n")
  return tuple(steps) if all(_STEP_RE.match(s) for s in steps) else None


def parse_apr(parent_text: str, child_texts: Sequence[str]) -> AprTrace:
  """``AprTrace`` of an APR rollout's texts (inverse of ``apr_texts``).

  Raises:
    ValueError naming the thread and line that break the grammar, a spawned child that is not
    an open edge of the root (or has another pool), a child whose prompt or solution disagrees
    with its spawn line or join outcome, or a wrong number of children.
  """
  lines = _Lines(parent_text, "APR parent")
  target, _ = _header(lines)
  root = _expansion(lines, target)
  spawned, edges, outcomes = [], [], []
  if lines.peek() == SPAWN_OPEN:
    spawned = _spawn(lines)
    edges = _open_edges(root, spawned, "APR parent")
    lines.take_literal(JOIN_OPEN)
    for edge in edges:
      m = lines.take(_OUTCOME_RE, f"the outcome of #{edge.node_id}")
      if int(m[1]) != edge.node_id:
        raise ValueError(f"APR parent, line {lines.i}: outcome of #{m[1]}, expected "
                         f"#{edge.node_id}")
      path = None if m[2] is None else tuple(m[2].split())
      if path is not None and (len(path) < 2 or path[0] != edge.step):
        raise ValueError(f"APR parent, line {lines.i}: a goal path must start with the step of "
                         f"#{edge.node_id} ({edge.step}) and go on, found {' '.join(path)}")
      outcomes.append(None if path is None else path[1:])
  solution = None
  if lines.peek() == GIVE_UP:
    lines.take_literal(GIVE_UP)
    lines.end()
  elif spawned:
    m = lines.take(_ANSWER_REF_RE, f"'{countdown.ANSWER_MARKER} #<id>' or {GIVE_UP!r}")
    lines.end()
    goals = {e.node_id: (e.step,) + o for e, o in zip(edges, outcomes) if o is not None}
    if int(m[1]) not in goals:
      raise ValueError(f"APR parent, line {lines.i}: answers with #{m[1]}, which found no goal")
    solution = goals[int(m[1])]
  else:
    solution = _answer(lines)
  if len(child_texts) != len(spawned):
    raise ValueError(f"APR: {len(child_texts)} child texts for {len(spawned)} spawned children")
  children = tuple(parse_search(t, f"APR child #{i}") for i, t in zip(spawned, child_texts))
  for edge, child, outcome in zip(edges, children, outcomes):
    if child.start != edge.pool or child.target != target or child.solution != outcome:
      raise ValueError(f"APR child #{edge.node_id}: its search (from {list(child.start)}, "
                       f"target {child.target}, solution {child.solution}) disagrees with the "
                       "parent")
  return AprTrace(target, root, tuple(spawned), tuple(outcomes), solution, children)


class AprThreads:
  """The APR format as a ``jaxlm.search.threads.ThreadFormat`` (spawn / join hooks)."""
  spawn_end = SPAWN_END
  child_prompts = staticmethod(child_prompts)
  child_outcome = staticmethod(child_outcome)
  join = staticmethod(join_context)


APR_THREADS = AprThreads()
