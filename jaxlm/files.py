"""Result files: strict JSON written atomically, by process 0 only."""

from __future__ import annotations

import json
import os
from typing import Any

import jax


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented JSON through a temporary file and a rename (process 0 only).

  A process killed mid-write leaves the previous file (or none), never a truncated one.
  """
  if jax.process_index() != 0:
    return
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2)
  os.replace(tmp, path)
