"""All benchmarks in one process: `python -m benchmarks.run`.

Runs the train-step benchmark (benchmarks.train_bench), the generation benchmark
(benchmarks.generate_bench) and the scaling benchmark (benchmarks.scaling_bench) when present,
prints one table and writes benchmarks/results.json as rows {name, ours, reference, ratio, unit}.
"""

import os

# benchmarks.scaling_bench's scipy reference is fair only with single-threaded BLAS (see there);
# it must be set before numpy is first imported, which the other benchmarks do.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import importlib  # pylint: disable=g-import-not-at-top,wrong-import-position
import json  # pylint: disable=g-import-not-at-top,wrong-import-position
import sys  # pylint: disable=g-import-not-at-top,wrong-import-position


def _rows(module: str, entry: str) -> list[dict]:
  try:
    mod = importlib.import_module(module)
  except ModuleNotFoundError as e:
    if e.name != module:
      raise
    print(f"[skip] {module} is not available", file=sys.stderr)
    return []
  print(f"[run] {module}.{entry}()", file=sys.stderr, flush=True)
  rows = list(getattr(mod, entry)() or [])
  for row in rows:
    print(f"[done] {row}", file=sys.stderr, flush=True)
  return rows


def format_rows(rows: list[dict], columns: tuple[str, ...]) -> str:
  """An aligned text table of `columns` (floats to 4 significant digits; missing cells empty)."""
  fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)
  table = [columns] + [tuple(fmt(r.get(c, "")) for c in columns) for r in rows]
  widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
  return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in table)


def main() -> list[dict]:
  rows = (_rows("benchmarks.train_bench", "run") + _rows("benchmarks.generate_bench", "run")
          + _rows("benchmarks.scaling_bench", "main"))
  print(format_rows(rows, ("name", "ours", "reference", "ratio", "unit")))
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")
  with open(path, "w") as f:
    json.dump(rows, f, indent=2)
  print(f"wrote {path}")
  return rows


if __name__ == "__main__":
  main()
