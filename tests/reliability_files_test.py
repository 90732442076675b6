"""Bad files are named (issue 16, class 5): JSONL lines, cached datasets, safetensors, CSV cells,
strict JSON results."""

import json
import os
import shutil
import tempfile
import zipfile

from absl.testing import absltest
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import files
from jaxlm.data import TextTrajectory, read_jsonl, write_jsonl
from jaxlm.envs import tasks
from jaxlm.models import convert
from jaxlm.models import transformer as tfm
from jaxlm.scaling import data as scaling_data
from jaxlm.scaling import pipelines


def _write(path, content: bytes) -> str:
  with open(path, "wb") as f:
    f.write(content)
  return path


class FilesTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.dir)

  def test_jsonl_errors_name_file_and_line(self):
    path = os.path.join(self.dir, "d.jsonl")
    good = TextTrajectory(texts=["q", "a"], is_action=[False, True], rewards=[0.0, 1.0], done=True)
    write_jsonl(path, [good] * 3)
    with open(path, "rb") as f:
      raw = f.read()
    lines = raw.splitlines(True)
    # Before: a bare UnicodeDecodeError ("position 20") naming neither the file nor the line.
    _write(path, lines[0] + b"\n" + lines[1][:5] + b"\xff" + lines[1][5:] + lines[2])
    with self.assertRaisesRegex(ValueError, f"{path}:3: not UTF-8"):
      read_jsonl(path)
    # Before: "trajectory 2: invalid JSON (... line 1 column 74 ...)", no file.
    _write(path, raw[:-10])
    with self.assertRaisesRegex(ValueError, f"{path}:3: invalid JSON \\(truncated last line\\)"):
      read_jsonl(path)
    _write(path, raw + b'{"texts": ["a"], "is_action": [true], "rewards": [0.0]}\n')
    with self.assertRaisesRegex(ValueError, f"{path}:4: trajectory 3: missing fields"):
      read_jsonl(path)

  def test_corrupt_dataset_cache_is_rebuilt(self):
    task = tasks.make_task("maze_fo")
    fresh = tasks.load_episodes(task, 4, 0, self.dir)
    (name,) = os.listdir(self.dir)
    path = os.path.join(self.dir, name)
    with open(path, "rb") as f:
      raw = f.read()
    for what, content in (("truncated mid-line", raw[:len(raw) // 2]),
                          ("truncated at a line end", b"".join(raw.splitlines(True)[:2])),
                          ("emptied", b""), ("garbage", b"\x00\xff" * 50)):
      _write(path, content)
      with self.assertLogs(level="WARNING") as logs:
        got = tasks.load_episodes(task, 4, 0, self.dir)
      # Before: an error naming no file, or silently 2 or 0 episodes.
      self.assertEqual(got, fresh, msg=what)
      self.assertIn(f"rebuilding the corrupt cached dataset {path}", logs.output[0])
      with open(path, "rb") as f:
        self.assertEqual(f.read(), raw, msg=what)

  def test_safetensors_errors_name_the_file(self):
    cfg = tfm.gpt2_config(vocab_size=11, d_model=8, n_layers=1, n_heads=2, d_ff=16, max_len=8)
    params = tfm.Transformer(cfg).init(jax.random.key(0), jnp.zeros((1, 2), jnp.int32))["params"]
    hf = convert.to_hf(cfg, nn.meta.unbox(params), os.path.join(self.dir, "hf"))
    weights = os.path.join(hf, "model.safetensors")
    with open(weights, "rb") as f:
      raw = f.read()
    for content in (raw[:len(raw) // 2], b"\x00" * 64, raw[:8] + b"{bad" + raw[12:]):
      _write(weights, content)
      with self.assertRaisesRegex(ValueError, f"{weights}: cannot read it \\(SafetensorError"):
        convert.from_hf(hf)
    _write(weights, raw)
    index = os.path.join(hf, "model.safetensors.index.json")
    _write(index, json.dumps({"weight_map": {"x": "model-2.safetensors"}}).encode())
    with self.assertRaisesRegex(ValueError, f"{index}: lists weight files that do not exist: "
                                r"\['model-2.safetensors'\]"):
      convert.from_hf(hf)
    _write(index, b'{"weight_map": ')
    with self.assertRaisesRegex(ValueError, f"{index}: cannot read it \\(JSONDecodeError"):
      convert.from_hf(hf)
    os.remove(index)
    _write(os.path.join(hf, "config.json"), b"{")
    with self.assertRaisesRegex(ValueError, "config.json: cannot read it"):
      convert.from_hf(hf)

  def test_csv_cells_and_columns_are_named(self):
    path = os.path.join(self.dir, "a.csv")
    for body, message in (
        (b"N,loss\n1,2.0\n2,\n3,1.5\n", "column 'loss', line 3: blank or missing cell"),
        (b"N,loss\n1,2.0\n2,1.0\n3,abc\n", "column 'loss', line 4: 'abc' is not a finite"),
        (b"N,loss\n1,2.0\n2\n", "column 'loss', line 3: blank or missing cell"),
        (b"N,loss\n1,nan\n2,1.0\n", "column 'loss', line 2: 'nan'"),
        (b"N,Loss\n1,2.0\n", r"no column\(s\) \['loss'\]; the columns are \['N', 'Loss'\]"),
        (b"N,loss\n\xff,1.0\n", "not UTF-8")):
      _write(path, body)
      # Before: the column silently became strings (a TypeError later) or a bare KeyError.
      with self.assertRaisesRegex(ValueError, f"{path}: {message}"):
        scaling_data.load_csv(path, numeric=("N", "loss"))
    _write(path, b"N,env\n1,a\n2,b\n")
    cols = scaling_data.load_csv(path)
    self.assertEqual(cols["N"].tolist(), [1.0, 2.0])
    self.assertEqual(cols["env"].tolist(), ["a", "b"])
    with self.assertRaisesRegex(KeyError, r"no column 'loss'; the columns are \['N', 'env'\]"):
      cols["loss"]  # pylint: disable=pointless-statement

  def test_scaling_zip_and_json_errors_name_the_file(self):
    path = _write(os.path.join(self.dir, "runs.zip"), b"PK\x03\x04 truncated")
    with self.assertRaisesRegex(ValueError, f"{path}: cannot read it \\(BadZipFile"):
      scaling_data.load_qscaled_zip(path)
    member = "r/utd_1/Ant-v4/returns/bs_256_lr_0.001.npy"
    with zipfile.ZipFile(path, "w") as z:
      z.writestr(member, b"\x93NUMPY garbage")
    with self.assertRaisesRegex(ValueError, f"{path}, member {member}: cannot read it"):
      scaling_data.load_qscaled_zip(path)
    path = _write(os.path.join(self.dir, "fits.json"), b'{"a": ')
    with self.assertRaisesRegex(ValueError, f"{path}: cannot read it \\(JSONDecodeError"):
      files.read_json(path)

  def test_scaling_pipeline_reads_csv_strictly(self):
    path = _write(os.path.join(self.dir, "e.csv"), b"loss,data,accuracy\n2.0,100,\n")
    config = type("C", (), dict(kind="emergence", csv=path))
    with self.assertRaisesRegex(ValueError, "column 'accuracy', line 2: blank"):
      pipelines.run(config, self.dir)

  def test_write_json_is_strict_and_atomic(self):
    path = os.path.join(self.dir, "results.json")
    files.write_json(path, {"a": {"loss": 1.5}, "b": [1, None, "x"]})
    with open(path) as f:
      before = f.read()
    self.assertEqual(json.loads(before), {"a": {"loss": 1.5}, "b": [1, None, "x"]})
    for obj, key in (({"a": {"loss": float("nan")}}, "a.loss = nan"),
                     ({"a": [1.0, float("-inf")]}, r"a\[1\] = -inf"),
                     ({"a": np.float32(1.0)}, "a is a numpy.float32"),
                     (float("nan"), "<top level> = nan")):
      # Before: NaN/Infinity written (invalid strict JSON), or a TypeError naming no key.
      with self.assertRaisesRegex(ValueError, f"{path}: not strict JSON, nothing written: {key}"):
        files.write_json(path, obj)
      with open(path) as f:
        self.assertEqual(f.read(), before)
    self.assertEqual(os.listdir(self.dir), ["results.json"])  # no temporary file left behind.


if __name__ == "__main__":
  absltest.main()
