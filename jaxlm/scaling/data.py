"""Loaders for the shared scaling data (zips of .npy curves, CSVs, JSON).

No pickle: `.npy` members are read with `numpy.load(allow_pickle=False)` straight
from the zip; CSVs with the csv module.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pathlib
import re
import zipfile

import numpy as np

# Max returns used to normalise gym returns to 0-1000 (Rybkin et al. 2025 code,
# experiments/2_fitted/gym_explore.ipynb).
GYM_MAX_RETURN = {"HalfCheetah-v4": 9800.0, "Walker2d-v4": 4950.0,
                  "Ant-v4": 6625.0, "Humanoid-v4": 6450.0}

_MEMBER = re.compile(r"utd_(?P<utd>[0-9.]+)/(?P<env>[^/]+)/[^/]+/"
                     r"bs_(?P<bs>[0-9.e+-]+)_lr_(?P<lr>[0-9.e+-]+)\.npy$")


def shared_data_dir() -> pathlib.Path:
  """`$JAXLM_SHARED_DATA` or `<repo>/../shared/data` (may not exist)."""
  env = os.environ.get("JAXLM_SHARED_DATA")
  if env:
    return pathlib.Path(env)
  return pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


def data_path(path: str | os.PathLike) -> pathlib.Path:
  """Where a config's data path points: absolute, or relative to `shared_data_dir()`.

  The one place a data path is resolved, so no config depends on the current directory.
  """
  path = pathlib.Path(path)
  return path if path.is_absolute() else shared_data_dir() / path


def load_qscaled_zip(path) -> dict[tuple[str, float, float, float], np.ndarray]:
  """Reads `<name>/utd_<s>/<env>/<metric>/bs_<B>_lr_<lr>.npy` members.

  Args:
    path: zip file (Rybkin et al. 2025 qscaled layout).

  Returns:
    {(env, utd, batch_size, learning_rate): array (T, columns)}.
  """
  out = {}
  with zipfile.ZipFile(path) as z:
    for name in z.namelist():
      m = _MEMBER.search(name)
      if m is None:
        continue
      arr = np.load(io.BytesIO(z.read(name)), allow_pickle=False)
      key = (m["env"], float(m["utd"]), float(m["bs"]), float(m["lr"]))
      if key in out:
        raise ValueError(f"{path}: duplicate run {key} ({name}).")
      out[key] = arr
  if not out:
    raise ValueError(f"{path}: no bs_*_lr_*.npy members found.")
  return out


def load_csv(path) -> dict[str, np.ndarray]:
  """CSV -> {column: array}; numeric columns as float64, others as str."""
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  if not rows:
    raise ValueError(f"{path}: empty CSV.")
  cols = {}
  for k in rows[0]:
    vals = [r[k] for r in rows]
    try:
      cols[k] = np.array([float(v) for v in vals], np.float64)
    except ValueError:
      cols[k] = np.array(vals)
  return cols


def load_json(path) -> dict:
  with open(path) as f:
    return json.load(f)
