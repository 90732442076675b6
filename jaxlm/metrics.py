"""Training metrics on disk: `metrics.jsonl` rows and TensorBoard event files (process 0)."""

from __future__ import annotations

from collections.abc import Mapping
import json
import os

import jax

from jaxlm import files


class MetricWriter:
  """Scalars to `<workdir>/metrics.jsonl` and TensorBoard event files (process 0 only)."""

  def __init__(self, workdir: str | None):
    self._active = workdir is not None and jax.process_index() == 0
    self._jsonl = self._tb = None
    if self._active:
      os.makedirs(workdir, exist_ok=True)
      self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(os.path.join(workdir, "tb"))

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self._active:
      return
    row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(row) + "\n")
    self._jsonl.flush()
    for k, v in scalars.items():
      self._tb.add_scalar(k, float(v), int(step))

  def close(self) -> None:
    if self._active:
      self._jsonl.close()
      self._tb.close()


def read_metrics(workdir: str) -> list[dict[str, float]]:
  """Rows of `<workdir>/metrics.jsonl` (a bad line is an error naming the file and line)."""
  return [row for _, row in files.read_jsonl(os.path.join(workdir, "metrics.jsonl"))]


def truncate_metrics(workdir: str, step: int) -> None:
  """Keeps only the rows of `<workdir>/metrics.jsonl` logged at or before `step` (process 0).

  A resumed run calls this with the restored step (a fresh one with -1), so the rows logged
  after the last checkpoint by a killed run are not repeated (nor a line cut by the kill).
  Rewritten atomically.
  """
  path = os.path.join(workdir, "metrics.jsonl")
  if jax.process_index() != 0 or not os.path.exists(path):
    return

  def kept(line):
    try:
      return json.loads(line)["step"] <= step
    except (ValueError, KeyError, TypeError):
      return False

  with open(path) as f:
    files.write_text(path, "".join(line for line in f if kept(line)))
