"""Accelerator benchmark: the tiny CPU run's JSON rows, and the device peak table."""

import json
import math
import os
import tempfile
import types

from absl.testing import absltest

from benchmarks import accelerator


def _device(kind: str):
  return types.SimpleNamespace(device_kind=kind)


class PeakTableTest(absltest.TestCase):

  def test_published_peaks_by_device_kind(self):
    for kind, n, want in (("NVIDIA H100 80GB HBM3", 1, 989e12), ("NVIDIA H200", 8, 8 * 989e12),
                          ("NVIDIA A100-SXM4-40GB", 2, 624e12), ("TPU v4", 4, 1100e12),
                          ("TPU v5 lite", 1, 197e12), ("TPU v5p", 1, 459e12),
                          ("TPU v6 lite", 1, 918e12)):
      peak, source = accelerator.peak_flops([_device(kind)] * n)
      self.assertAlmostEqual(peak / want, 1.0, msg=kind)
      self.assertIn(kind, source)


class TinyRunTest(absltest.TestCase):

  def test_tiny_rows_are_finite_with_mfu_in_unit_interval(self):
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, "acc.json")
      # One layer layout keeps the module's cold compile time small; both share `train_row`.
      accelerator.main(["--size", "tiny", "--scan", "off", "--json", path])
      with open(path) as f:
        rows = json.load(f)
    self.assertEqual([(r["size"], r["kind"], r["scan_layers"]) for r in rows],
                     [("tiny", "train", False), ("tiny", "generate", False)])
    for row in rows:
      for key in ("compile_s", "first_step_s", "step_s", "tokens_per_s", "mfu", "peak_flops"):
        self.assertTrue(math.isfinite(row[key]) and row[key] >= 0, msg=(row["kind"], key))
      self.assertGreater(row["tokens_per_s"], 0)
      self.assertTrue(0 < row["mfu"] <= 1, msg=(row["kind"], row["mfu"]))
      self.assertGreaterEqual(row["first_step_s"], row["compile_s"])
      self.assertIn("measured", row["peak_source"])  # CPU: no published peak.
    train_row, gen_row = rows
    self.assertTrue(math.isfinite(train_row["loss"]))
    self.assertEqual(train_row["batch"], 4 * train_row["devices"])
    self.assertEqual(gen_row["batch"], 64)


if __name__ == "__main__":
  absltest.main()
