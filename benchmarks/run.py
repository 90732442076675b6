"""All benchmarks in one process: `python -m benchmarks.run`.

Runs the train-step benchmark (benchmarks.train_bench), the generation benchmark
(benchmarks.generate_bench) and the scaling benchmark (benchmarks.scaling_bench) when present,
prints one table and writes benchmarks/results.json as rows {name, ours, reference, ratio, unit}.
"""

import importlib
import json
import os
import sys


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


def main() -> list[dict]:
  rows = (_rows("benchmarks.train_bench", "run") + _rows("benchmarks.generate_bench", "run")
          + _rows("benchmarks.scaling_bench", "main"))
  fmt = lambda v: f"{v:.4g}" if isinstance(v, (int, float)) else str(v)
  header = ("name", "ours", "reference", "ratio", "unit")
  table = [header] + [tuple(fmt(r.get(k, "")) for k in header) for r in rows]
  widths = [max(len(row[i]) for row in table) for i in range(len(header))]
  for row in table:
    print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")
  with open(path, "w") as f:
    json.dump(rows, f, indent=2)
  print(f"wrote {path}")
  return rows


if __name__ == "__main__":
  main()
