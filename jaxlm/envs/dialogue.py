"""A synthetic AirDialogue-like flight-booking task (after Wei et al. 2018; used by CALM, Snell et
al. 2022, "Context-Aware Language Modeling for Goal-Oriented Dialogue Systems").

The agent sees a table of K flights; a customer states hidden constraints over three templated
turns (in random order); the agent ends the dialogue with one action: "book k" or "no flight".

    1 a direct am            <- the context: one line per flight: number, airline (a/b/c),
    2 b stop pm                 stops (direct/stop) and departure time (am/pm)
    3 a stop am
    customer: time am        <- one turn per attribute; "any" = unconstrained
    customer: airline a
    customer: stops direct
    agent: book 1            <- the final action

The rule (exact): the customer accepts any flight meeting every stated constraint, so
`valid_actions` is the set of all matching flights, or only "no flight" when none matches
(several flights can be valid); the true action (`true_action`, what the clean logger does) is
the first matching flight (lowest number), else "no flight". Success = the final action is
valid.

Actions are integers: k in [0, K) books flight k + 1, K is "no flight". As a factored
(status x flight slot) action this is status "book" (slotted) or "no flight" (no slot):
`STATUSES`, `SLOTTED`.

The logger (`log_dialogues`) records the customer's constraints (as AirDialogue records the
customer's intent), so the valid set is known under any table, and a final action that is
wrong with probability `noise` (uniform over the invalid actions).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Sequence

import numpy as np

from jaxlm.data.tokenizer import SimpleTokenizer

AIRLINES = ("a", "b", "c")
STOPS = ("direct", "stop")
TIMES = ("am", "pm")
ATTRIBUTES = ("airline", "stops", "time")
STATUSES = ("book", "no flight")  # the factored action's status; only "book" has a flight slot
SLOTTED = (True, False)
CUSTOMER, AGENT = "customer:", "agent:"
PHRASES = (CUSTOMER, AGENT, " no flight")
_ACTION_RE = re.compile(r"^\s*(?:agent:)?\s*(?:book (\d+)|(no flight))\s*$")


@dataclasses.dataclass(frozen=True)
class Flight:
  airline: str
  stops: str
  time: str


Table = tuple[Flight, ...]


@dataclasses.dataclass(frozen=True)
class Constraints:
  """The customer's hidden goal: a required value per attribute, None = any.

  Attributes:
    airline, stops, time: required value, or None.
  """
  airline: str | None = None
  stops: str | None = None
  time: str | None = None


@dataclasses.dataclass(frozen=True)
class Dialogue:
  """One logged dialogue: context (table), customer goal, turn order and final action."""
  table: Table
  constraints: Constraints
  order: tuple[str, ...]  # the attributes, in the order the customer states them
  action: int  # the logged final action (k < K: book flight k + 1; K: no flight)


@dataclasses.dataclass(frozen=True)
class DialogueConfig:
  """The task's distribution.

  Attributes:
    num_flights: K, flights per table (1..9: one digit each).
    constrain_prob: probability that the customer constrains each attribute.
    noise: share of logged dialogues whose final action is wrong (uniform over wrong actions).
  """
  num_flights: int = 3
  constrain_prob: float = 0.5
  noise: float = 0.3

  def __post_init__(self):
    if not 1 <= self.num_flights <= 9:
      raise ValueError(f"DialogueConfig.num_flights={self.num_flights} must be in [1, 9]")
    for name in ("constrain_prob", "noise"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        raise ValueError(f"DialogueConfig.{name}={getattr(self, name)} must be in [0, 1]")

  @property
  def num_actions(self) -> int:
    return self.num_flights + 1


# ---------------------------------------------------------------------------------------------
# The rule.


def matches(flight: Flight, goal: Constraints) -> bool:
  """Whether `flight` meets every stated constraint of `goal`."""
  return all(getattr(goal, a) is None or getattr(flight, a) == getattr(goal, a)
             for a in ATTRIBUTES)


def valid_actions(table: Table, goal: Constraints) -> tuple[int, ...]:
  """Every matching flight (ascending), or (K,) = "no flight" when none matches."""
  ok = tuple(k for k, f in enumerate(table) if matches(f, goal))
  return ok or (len(table),)


def true_action(table: Table, goal: Constraints) -> int:
  """The first matching flight, or K ("no flight")."""
  return valid_actions(table, goal)[0]


def is_success(table: Table, goal: Constraints, action: int | None) -> bool:
  """Whether `action` (None = unparseable) is valid for `table` and `goal`."""
  return action is not None and action in valid_actions(table, goal)


# ---------------------------------------------------------------------------------------------
# Sampling and logging.


def sample_table(rng: np.random.Generator, num_flights: int) -> Table:
  """K flights with independent uniform attributes."""
  a = rng.integers(0, len(AIRLINES), num_flights)
  s = rng.integers(0, len(STOPS), num_flights)
  t = rng.integers(0, len(TIMES), num_flights)
  return tuple(Flight(AIRLINES[a[k]], STOPS[s[k]], TIMES[t[k]]) for k in range(num_flights))


def sample_constraints(rng: np.random.Generator, config: DialogueConfig) -> Constraints:
  """Each attribute constrained with probability `constrain_prob`, to a uniform value."""
  on = rng.random(len(ATTRIBUTES)) < config.constrain_prob
  values = (AIRLINES[rng.integers(len(AIRLINES))], STOPS[rng.integers(len(STOPS))],
            TIMES[rng.integers(len(TIMES))])
  return Constraints(*(v if o else None for v, o in zip(values, on)))


def sample_dialogue(rng: np.random.Generator, config: DialogueConfig) -> Dialogue:
  """A fresh table and goal, a random turn order and the true final action."""
  table = sample_table(rng, config.num_flights)
  goal = sample_constraints(rng, config)
  order = tuple(ATTRIBUTES[i] for i in rng.permutation(len(ATTRIBUTES)))
  return Dialogue(table, goal, order, true_action(table, goal))


def noisy_action(rng: np.random.Generator, dialogue: Dialogue, noise: float) -> int:
  """The true action, or with probability `noise` a uniformly drawn invalid one."""
  if rng.random() >= noise:
    return dialogue.action
  valid = valid_actions(dialogue.table, dialogue.constraints)
  wrong = [a for a in range(len(dialogue.table) + 1) if a not in valid]
  return int(wrong[rng.integers(len(wrong))])


def log_dialogues(num: int, seed: int | tuple[int, ...], config: DialogueConfig
                  ) -> list[Dialogue]:
  """`num` logged dialogues (deterministic in `seed`, an int or a tuple of ints: a
  `np.random.default_rng` seed) from a noisy agent (`config.noise`)."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(num):
    d = sample_dialogue(rng, config)
    out.append(dataclasses.replace(d, action=noisy_action(rng, d, config.noise)))
  return out


# ---------------------------------------------------------------------------------------------
# Text.


def render_table(table: Table) -> str:
  return "".join(f"{k + 1} {f.airline} {f.stops} {f.time}\n" for k, f in enumerate(table))


def render_turn(goal: Constraints, attribute: str) -> str:
  value = getattr(goal, attribute)
  return f"{CUSTOMER} {attribute} {'any' if value is None else value}\n"


def action_text(action: int, num_flights: int) -> str:
  """" book k" or " no flight" (what follows "agent:"), with the newline that ends it."""
  if not 0 <= action <= num_flights:
    raise ValueError(f"action {action} is outside [0, {num_flights}]")
  return " no flight\n" if action == num_flights else f" book {action + 1}\n"


def segments(d: Dialogue, table: Table | None = None) -> list[str]:
  """[table text, turn 1, ..., turn 4, "agent:", action text] (with `table` as context if
  given: a relabeled dialogue)."""
  table = d.table if table is None else table
  return ([render_table(table)] + [render_turn(d.constraints, a) for a in d.order]
          + [AGENT, action_text(d.action, len(table))])


def parse_action(text: str, num_flights: int) -> int | None:
  """The action of the agent's final line ("book k" / "no flight", "agent:" optional; text
  after the first newline is ignored), or None when it is not a valid action of K flights."""
  m = _ACTION_RE.match(text.split("\n", 1)[0])
  if m is None:
    return None
  if m.group(2):
    return num_flights
  k = int(m.group(1))
  return k - 1 if 1 <= k <= num_flights else None


def make_tokenizer(num_flights: int) -> SimpleTokenizer:
  """Word-level tokenizer of the task; "customer:", "agent:" and " no flight" are one token."""
  words = " " + " ".join(AIRLINES + STOPS + TIMES + ("any", "book") + ATTRIBUTES)
  digits = "".join(f" {i}\n{i}" for i in range(10))
  return SimpleTokenizer.phrases(PHRASES, [words, digits], extra="\n ")


def encode(d: Dialogue, tokenizer: SimpleTokenizer, table: Table | None = None
           ) -> tuple[list[int], list[int]]:
  """(token ids, segment id per token): BOS and the table are segment 0, customer turn j is
  segment j, "agent:" is len(order) + 1 and the action len(order) + 2."""
  tokens, seg = [tokenizer.bos_id], [0]
  for i, text in enumerate(segments(d, table)):
    ids = tokenizer.encode(text)
    tokens += ids
    seg += [i] * len(ids)
  return tokens, seg


def max_tokens(config: DialogueConfig, tokenizer: SimpleTokenizer) -> int:
  """The longest encoded dialogue of the task (every turn "any", a booking)."""
  table = tuple(Flight(AIRLINES[0], STOPS[0], TIMES[0]) for _ in range(config.num_flights))
  longest = Dialogue(table, Constraints(), ATTRIBUTES, 0)
  return len(encode(longest, tokenizer)[0])


def action_tokens(tokenizer: SimpleTokenizer, texts: Sequence[str]) -> list[int]:
  """Token ids of `texts` (each a single token), e.g. the stop token "\\n"."""
  ids = [tokenizer.encode(t) for t in texts]
  if any(len(i) != 1 for i in ids):
    raise ValueError(f"{list(texts)} must each be one token")
  return [i[0] for i in ids]
