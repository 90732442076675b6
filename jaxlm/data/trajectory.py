"""Text trajectories: the offline dataset format before tokenization.

A trajectory is a sequence of text segments, each either written by the agent (an action) or by
the environment (an observation), one reward per segment (non-zero only on actions), and a done
flag saying whether the episode ended inside the trajectory. Stored as JSON Lines, one trajectory
per line: {"texts": [...], "is_action": [...], "rewards": [...], "done": bool}.
"""

import dataclasses
import json
import math
import numbers
import os
from typing import Any, Sequence

from jaxlm import files

_FIELDS = ("texts", "is_action", "rewards", "done")


@dataclasses.dataclass(frozen=True)
class TextTrajectory:
  """One episode (or a prefix of one) as text segments.

  Attributes:
    texts: the segments in order.
    is_action: per segment, True when the agent produced it.
    rewards: per segment; the reward of an action segment (0.0 on observations).
    done: True when the last action ended the episode (terminal); False when it was cut off and
      the final observation should be bootstrapped from.
  """
  texts: tuple[str, ...]
  is_action: tuple[bool, ...]
  rewards: tuple[float, ...]
  done: bool

  def __post_init__(self):
    for name in ("texts", "is_action", "rewards"):
      object.__setattr__(self, name, tuple(getattr(self, name)))

  @property
  def segments(self) -> tuple[tuple[str, bool], ...]:
    return tuple(zip(self.texts, self.is_action))

  @property
  def total_return(self) -> float:
    """Undiscounted sum of rewards."""
    return float(sum(self.rewards))

  def validate(self, index: int = 0) -> "TextTrajectory":
    """Raises ValueError naming trajectory `index` and the field if malformed; returns self."""
    def fail(msg):
      raise ValueError(f"trajectory {index}: {msg}")

    n = len(self.texts)
    for name in ("is_action", "rewards"):
      if len(getattr(self, name)) != n:
        fail(f"field '{name}' has length {len(getattr(self, name))} but 'texts' has {n}")
    if not isinstance(self.done, bool):
      fail(f"field 'done' must be a bool, got {self.done!r}")
    for k, (text, act, r) in enumerate(zip(self.texts, self.is_action, self.rewards)):
      if not isinstance(text, str):
        fail(f"field 'texts'[{k}] is not a string: {text!r}")
      if not isinstance(act, bool):
        fail(f"field 'is_action'[{k}] must be a bool, got {act!r}")
      if isinstance(r, bool) or not isinstance(r, numbers.Real) or not math.isfinite(r):
        fail(f"field 'rewards'[{k}] must be a finite number, got {r!r}")
      if act and not text:
        fail(f"field 'texts'[{k}] is an empty action")
      if not act and r != 0:
        fail(f"field 'rewards'[{k}]={r} is on a non-action segment")
    if not any(self.is_action):
      fail("field 'is_action' has no action segment")
    return self

  def to_json(self) -> dict[str, Any]:
    return {"texts": list(self.texts), "is_action": list(self.is_action),
            "rewards": [float(r) for r in self.rewards], "done": self.done}

  @classmethod
  def from_json(cls, record: Any, index: int = 0) -> "TextTrajectory":
    if not isinstance(record, dict):
      raise ValueError(f"trajectory {index}: expected a JSON object, got {type(record).__name__}")
    missing = [f for f in _FIELDS if f not in record]
    extra = sorted(set(record) - set(_FIELDS))
    if missing or extra:
      raise ValueError(f"trajectory {index}: missing fields {missing}, unknown fields {extra}")
    for f in ("texts", "is_action", "rewards"):
      if not isinstance(record[f], list):
        raise ValueError(f"trajectory {index}: field '{f}' must be a list")
    return cls(**{f: record[f] for f in _FIELDS}).validate(index)


def validate_trajectories(trajectories: Sequence[TextTrajectory]) -> None:
  """Validates each trajectory, naming its index in the error."""
  for i, traj in enumerate(trajectories):
    traj.validate(i)


def write_jsonl(path: str | os.PathLike, trajectories: Sequence[TextTrajectory]) -> None:
  validate_trajectories(trajectories)
  with open(path, "w") as f:
    for traj in trajectories:
      f.write(json.dumps(traj.to_json()) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[TextTrajectory]:
  """Reads and validates; trajectory index = 0-based index among non-empty lines.

  Every error names the file and line (`files.read_jsonl`).
  """
  out = []
  for line_no, record in files.read_jsonl(path):
    try:
      out.append(TextTrajectory.from_json(record, len(out)))
    except ValueError as e:
      raise ValueError(f"{path}:{line_no}: {e}") from e
  return out


def top_fraction_by_return(trajectories: Sequence[TextTrajectory],
                           fraction: float) -> list[TextTrajectory]:
  """Filtered BC data (LMRL-Gym "%BC"): the best ceil(fraction * N) trajectories by return.

  Ties keep dataset order (stable sort); the result keeps the original order too.
  """
  if not 0 < fraction <= 1:
    raise ValueError(f"fraction must be in (0, 1], got {fraction}")
  k = math.ceil(fraction * len(trajectories))
  order = sorted(range(len(trajectories)), key=lambda i: -trajectories[i].total_return)
  return [trajectories[i] for i in sorted(order[:k])]
