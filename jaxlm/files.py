"""Result and data files: strict JSON written atomically (process 0 only); reading errors that
name the file (and the line of a JSONL file)."""

from __future__ import annotations

import contextlib
import json
import math
import os
from typing import Any, Iterator

import jax


def _not_strict_json(obj: Any, key: str = "") -> str | None:
  """Where `obj` breaks strict JSON (e.g. 'results.loss = nan'), or None."""
  if isinstance(obj, float) and not math.isfinite(obj):
    return f"{key or '<top level>'} = {obj}"
  if isinstance(obj, dict):
    items = ((f"{key}.{k}" if key else str(k), v) for k, v in obj.items())
  elif isinstance(obj, (list, tuple)):
    items = ((f"{key}[{i}]", v) for i, v in enumerate(obj))
  elif obj is None or isinstance(obj, (str, int, float)):
    return None
  else:
    return f"{key or '<top level>'} is a {type(obj).__module__}.{type(obj).__name__}"
  return next(filter(None, (_not_strict_json(v, k) for k, v in items)), None)


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented strict JSON through a temporary file and a rename (process 0 only).

  A process killed mid-write leaves the previous file (or none), never a truncated one. NaN,
  infinities and non-JSON types (numpy scalars included) are a ValueError naming their key, and
  nothing is written.
  """
  if jax.process_index() != 0:
    return
  bad = _not_strict_json(obj)
  if bad is not None:
    raise ValueError(f"{path}: not strict JSON, nothing written: {bad}")
  write_text(path, json.dumps(obj, indent=2, allow_nan=False))


def write_text(path: str, text: str) -> None:
  """Replaces `path` with `text` atomically: temporary file, fsync, rename (none left behind)."""
  tmp = f"{path}.{os.getpid()}.tmp"
  try:
    with open(tmp, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


@contextlib.contextmanager
def reading(path, errors: tuple[type[Exception], ...] = (ValueError,)):
  """Re-raises `errors` from the body (parsing `path`) as a ValueError that names the file.

  OSErrors are left alone: they name their file already.
  """
  try:
    yield
  except errors as e:
    raise ValueError(f"{path}: cannot read it ({type(e).__name__}: {e})") from e


def read_json(path: str | os.PathLike, errors: tuple[type[Exception], ...] = (ValueError,)
              ) -> Any:
  """The JSON document in `path`; a parse error (any of `errors`) names the file."""
  with reading(path, errors), open(path) as f:
    return json.load(f)


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
  """Yields (1-based line number, record) for every non-blank line of a JSONL file.

  Raises ValueError naming `path:line` for bytes that are not UTF-8 or a line that is not JSON
  (a last line without its newline is reported as truncated).
  """
  with open(path, "rb") as f:
    for line_no, raw in enumerate(f, 1):
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        raise ValueError(f"{path}:{line_no}: not UTF-8 (byte {raw[e.start:e.start + 1]!r} at "
                         f"column {e.start + 1})") from e
      if not line.strip():
        continue
      try:
        yield line_no, json.loads(line)
      except json.JSONDecodeError as e:
        cut = "" if raw.endswith(b"\n") else " (truncated last line)"
        raise ValueError(f"{path}:{line_no}: invalid JSON{cut}: {e.msg} (column "
                         f"{e.colno})") from e
