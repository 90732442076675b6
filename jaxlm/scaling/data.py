"""Loaders for the shared scaling data (zips of .npy curves, CSVs, JSON).

No pickle: `.npy` members are read with `numpy.load(allow_pickle=False)` straight
from the zip; CSVs with the csv module.
"""

from __future__ import annotations

import csv
import io
import math
import os
import pathlib
import re
import zipfile

import numpy as np

from jaxlm import files

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
  with files.reading(path, (zipfile.BadZipFile,)):
    z = zipfile.ZipFile(path)
  with z:
    for name in z.namelist():
      m = _MEMBER.search(name)
      if m is None:
        continue
      with files.reading(f"{path}, member {name}", (ValueError, zipfile.BadZipFile)):
        arr = np.load(io.BytesIO(z.read(name)), allow_pickle=False)
      key = (m["env"], float(m["utd"]), float(m["bs"]), float(m["lr"]))
      if key in out:
        raise ValueError(f"{path}: duplicate run {key} ({name}).")
      out[key] = arr
  if not out:
    raise ValueError(f"{path}: no bs_*_lr_*.npy members found.")
  return out


class Columns(dict):
  """{column: array} of a CSV; a missing column is a KeyError naming the file and the columns."""

  def __init__(self, path, cols):
    super().__init__(cols)
    self.path = path

  def __missing__(self, key):
    raise KeyError(f"{self.path}: no column {key!r}; the columns are {list(self)}")


def load_csv(path, numeric=None) -> Columns:
  """CSV -> {column: array}; numeric columns as float64, others as str.

  Args:
    path: the CSV file (UTF-8, a header row).
    numeric: columns that must be finite numbers: each must exist (else the error lists the
      available ones) and a blank, missing, non-numeric or non-finite cell is an error naming
      the file, column and line. Other columns are float64 when every cell is a number, else
      str.
  """
  try:
    with open(path, newline="", encoding="utf-8") as f:
      reader = csv.DictReader(f)
      rows = [(reader.line_num, r) for r in reader]
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not UTF-8 ({e})") from e
  if not rows:
    raise ValueError(f"{path}: empty CSV.")
  names = list(reader.fieldnames)
  missing = [k for k in numeric or () if k not in names]
  if missing:
    raise ValueError(f"{path}: no column(s) {missing}; the columns are {names}")
  cols = {}
  for k in names:
    bad = [(line, r[k]) for line, r in rows if not _is_number(r[k], k in (numeric or ()))]
    if bad and k in (numeric or ()):
      line, cell = bad[0]
      what = repr(cell) if (cell or "").strip() else "blank or missing cell"
      raise ValueError(f"{path}: column {k!r}, line {line}: {what} is not a finite number"
                       f"{f' ({len(bad)} such cells)' if len(bad) > 1 else ''}")
    cols[k] = np.array([r[k] if bad else float(r[k]) for _, r in rows],
                       None if bad else np.float64)
  return Columns(path, cols)


def _is_number(cell, finite: bool) -> bool:
  try:
    return math.isfinite(float(cell)) or not finite
  except (TypeError, ValueError):
    return False


