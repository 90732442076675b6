"""Where jaxlm stands on an accelerator: bf16 train steps, compile time, MFU, generation.

    python -m benchmarks.accelerator                     # GPT-2-small and -medium shapes
    python -m benchmarks.accelerator --size medium --batch_per_device 16 --json /tmp/acc.json
    python -m benchmarks.accelerator --size tiny         # seconds on CPU (the test runs this)

For each model size it runs, on every local device:

* a train step (forward + backward + AdamW, `jaxlm.train.make_train_step`) with bf16 compute
  and float32 parameters, the state built directly sharded by `jaxlm.sharding.init_sharded` on a
  (`data`, `fsdp`, `tensor`) mesh over `jax.local_devices()` (default: all data parallel; pick
  another with `--mesh 1,-1,1`), once with the unrolled layers and once with `scan_layers=True`.
  Reported: time to first step (ahead-of-time compile `compile_s` + the first execution),
  the median step time of the following steps, tokens/s, and MFU;
* greedy generation (`jaxlm.generate`, KV cache, bf16) at batch 64: compile time and new
  tokens/s.

MFU = training FLOPs per token (`TransformerConfig.flops_per_token`: 6N plus attention, as in
Chowdhery et al. 2022, App. B) x tokens/s / (devices x per-device peak); for generation, forward
FLOPs (a third of that) x new tokens/s / peak. The peak is the published dense bf16 peak of the
device (`PEAK_FLOPS`, keyed by `jax.devices()[0].device_kind`); on a CPU, or a device not in the
table, it is the float32 matmul rate of the whole host measured in this process by
`benchmarks.train_bench.matmul_peak_flops` (the `peak_source` field says which). The target
is >= 50% MFU for GPT-2-medium on one H100-class GPU.

It prints one table and writes the rows as JSON (`--json`). No accelerator was available when
this was written, so there are no GPU/TPU numbers yet. On the shared 2-core CPU (load 10-14,
2026-12-04) the tiny size runs in ~40 s wall / ~21 CPU-s cold, nearly all of it XLA compiling
the train step (~7-9 CPU-s; the layer count barely matters) and the decode loop (~3.5 CPU-s);
with the persistent compilation cache warm (as in the test suite) ~20 s wall. The GPT-2-small
shape runs there too (`--size small --scan off --batch_per_device 1 --steps 1 --no_generate`:
compile 35 s, 38 s a step at load 8), which only checks the shapes.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.run import format_rows
from jaxlm import files
from jaxlm import generation
from jaxlm import sharding
from jaxlm import train
from jaxlm.losses import lm
from jaxlm.models import transformer as tfm

# Published dense bf16 peak FLOP/s per device (one GPU, or one TPU chip as JAX sees it), matched
# by substring against `device_kind` (first match wins, so the longer names come first).
PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("TPU v5 lite", 197e12),  # v5e
    ("TPU v5e", 197e12),
    ("TPU v5p", 459e12),
    ("TPU v5", 459e12),
    ("TPU v6 lite", 918e12),  # v6e (Trillium)
    ("TPU v6e", 918e12),
    ("TPU v4", 275e12),
)


@dataclasses.dataclass(frozen=True)
class Size:
  """One benchmarked shape.

  Attributes:
    model: the decoder (its dtype is overridden to bf16 compute, float32 parameters).
    seq: training sequence length.
    batch_per_device: training rows per device (the global batch is this x devices).
    steps: timed train steps after the first.
    gen_batch: generation rows.
    gen_prompt: prompt tokens per generation row.
    gen_new: new tokens per generation row.
  """
  model: tfm.TransformerConfig
  seq: int
  batch_per_device: int
  steps: int
  gen_batch: int = 64
  gen_prompt: int = 128
  gen_new: int = 128


def _gpt2(d_model: int, n_layers: int, n_heads: int, vocab_size: int = 50257,
          max_len: int = 1024) -> tfm.TransformerConfig:
  return tfm.gpt2_config(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers,
                         n_heads=n_heads, d_ff=4 * d_model, max_len=max_len)


SIZES: dict[str, Size] = {
    "small": Size(_gpt2(768, 12, 12), seq=1024, batch_per_device=8, steps=10),
    "medium": Size(_gpt2(1024, 24, 16), seq=1024, batch_per_device=8, steps=10),
    "tiny": Size(_gpt2(32, 2, 4, vocab_size=128, max_len=32), seq=16, batch_per_device=4,
                 steps=2, gen_prompt=4, gen_new=4),
}


def peak_flops(devices: list[jax.Device]) -> tuple[float, str]:
  """(peak FLOP/s of all `devices` together, where the number comes from).

  Accelerators: devices x the published per-device peak. Otherwise the host's measured matmul
  rate, once: fake CPU devices (`--xla_force_host_platform_device_count`) share its cores.
  """
  kind = devices[0].device_kind
  for key, flops in PEAK_FLOPS:
    if key.lower() in kind.lower():
      return len(devices) * flops, f"{len(devices)} x published bf16 peak of {kind}"
  from benchmarks import train_bench  # pylint: disable=g-import-not-at-top
  return train_bench.matmul_peak_flops(), f"measured f32 matmul peak of the host ({kind})"


def _bf16(cfg: tfm.TransformerConfig, scan_layers: bool) -> tfm.TransformerConfig:
  return cfg.replace(dtype="bfloat16", param_dtype="float32", scan_layers=scan_layers)


def _seconds(fn) -> tuple[float, Any]:
  start = time.perf_counter()
  out = jax.block_until_ready(fn())
  return time.perf_counter() - start, out


def train_row(size: Size, mesh, *, scan_layers: bool, peak: float) -> dict[str, Any]:
  """Time a sharded bf16 train step of `size.model`; one result row."""
  cfg = _bf16(size.model, scan_layers)
  model = tfm.Transformer(cfg)
  optimizer, _ = train.make_optimizer(1e-4, warmup=0, total_steps=1000)
  devices = mesh.devices.size

  def loss_fn(params, batch, rng, *, state):
    del rng, state
    logits_BxTxV = model.apply({"params": params}, batch[:, :-1]).logits
    return lm.next_token_loss(logits_BxTxV, batch[:, 1:])

  def state_fn(key):
    params = model.init(key, jnp.zeros((1, size.seq), jnp.int32))["params"]
    return train.TrainState.create(params, optimizer, key)

  state, shardings = sharding.init_sharded(state_fn, mesh, jax.random.PRNGKey(0))
  step = train.make_train_step(loss_fn, optimizer, mesh=mesh, state_shardings=shardings)
  rows = size.batch_per_device * devices
  tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (rows, size.seq + 1))
  batch = sharding.shard_batch(jnp.asarray(tokens, jnp.int32), mesh)

  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  run_s, (state, metrics) = _seconds(lambda: compiled(state, batch))
  times = []
  for _ in range(size.steps):
    dt, (state, metrics) = _seconds(lambda s=state: compiled(s, batch))
    times.append(dt)
  step_s = statistics.median(times)
  tokens_per_s = rows * size.seq / step_s
  mfu = cfg.flops_per_token(size.seq) * tokens_per_s / peak
  return dict(kind="train", scan_layers=scan_layers, devices=devices, batch=rows,
              seq=size.seq, compile_s=compile_s, first_step_s=compile_s + run_s, step_s=step_s,
              tokens_per_s=tokens_per_s, mfu=mfu, loss=float(metrics["loss"]))


def generate_row(size: Size, mesh, *, peak: float) -> dict[str, Any]:
  """Greedy KV-cache generation throughput of `size.model` in bf16; one result row."""
  cfg = _bf16(size.model, scan_layers=False)
  model = tfm.Transformer(cfg)
  boxed = jax.eval_shape(model.init, jax.random.PRNGKey(0),
                         jnp.zeros((1, size.gen_prompt), jnp.int32))["params"]
  init = jax.jit(lambda k: model.init(k, jnp.zeros((1, size.gen_prompt), jnp.int32))["params"],
                 out_shardings=sharding.tree_shardings(boxed, mesh))
  params = init(jax.random.PRNGKey(0))
  prompt = np.random.default_rng(1).integers(0, cfg.vocab_size, (size.gen_batch, size.gen_prompt))
  if size.gen_batch % mesh.devices.size == 0:
    prompt = sharding.shard_batch(jnp.asarray(prompt, jnp.int32), mesh)

  def run():
    return generation.generate(model, params, prompt, max_new_tokens=size.gen_new,
                               temperature=0.0).tokens_BxN

  first_s, _ = _seconds(run)
  run_s = statistics.median(_seconds(run)[0] for _ in range(3))
  tokens_per_s = size.gen_batch * size.gen_new / run_s
  seq = size.gen_prompt + size.gen_new
  # Forward FLOPs only (a third of the training count), attention at the full length: decode
  # is bound by reading weights and cache, so this MFU is low by nature; it tracks progress.
  mfu = cfg.flops_per_token(seq) / 3 * tokens_per_s / peak
  return dict(kind="generate", scan_layers=False, devices=mesh.devices.size,
              batch=size.gen_batch, seq=seq, compile_s=max(first_s - run_s, 0.0),
              first_step_s=first_s, step_s=run_s / size.gen_new, tokens_per_s=tokens_per_s,
              mfu=mfu)


COLUMNS = ("size", "kind", "scan_layers", "devices", "batch", "seq", "compile_s",
           "first_step_s", "step_s", "tokens_per_s", "mfu")


def run(sizes: list[str], *, scan: str = "both", mesh_shape=(-1, 1, 1),
        batch_per_device: int | None = None, steps: int | None = None,
        generate: bool = True, num_devices: int = 0) -> list[dict[str, Any]]:
  """Runs the benchmark for `sizes`; returns the rows (see the module docstring)."""
  devices = jax.local_devices()[:num_devices or None]
  mesh = sharding.make_mesh(*mesh_shape, devices=devices)
  peak, peak_source = peak_flops(devices)
  scans = {"both": (False, True), "off": (False,), "on": (True,)}[scan]
  rows = []
  for name in sizes:
    size = SIZES[name]
    size = dataclasses.replace(size, batch_per_device=batch_per_device or size.batch_per_device,
                               steps=steps or size.steps)
    common = dict(size=name, device_kind=devices[0].device_kind, peak_flops=peak,
                  peak_source=peak_source, params=size.model.num_params())
    for scan_layers in scans:
      print(f"[accelerator] {name}: train step, scan_layers={scan_layers}", file=sys.stderr,
            flush=True)
      rows.append({**common, **train_row(size, mesh, scan_layers=scan_layers, peak=peak)})
    if generate:
      print(f"[accelerator] {name}: generation at batch {size.gen_batch}", file=sys.stderr,
            flush=True)
      rows.append({**common, **generate_row(size, mesh, peak=peak)})
  return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", default="small,medium",
                      help=f"comma-separated sizes from {sorted(SIZES)}")
  parser.add_argument("--scan", default="both", choices=("both", "off", "on"),
                      help="train with unrolled layers, scanned layers, or both")
  parser.add_argument("--mesh", default="-1,1,1", help="data,fsdp,tensor sizes (-1 fills)")
  parser.add_argument("--batch_per_device", type=int, default=None)
  parser.add_argument("--steps", type=int, default=None, help="timed train steps")
  parser.add_argument("--no_generate", action="store_true")
  parser.add_argument("--devices", type=int, default=0,
                      help="use the first N local devices (0 = all)")
  parser.add_argument("--json", default="accelerator.json", help="where to write the rows")
  args = parser.parse_args(argv)
  sizes = [s for s in args.size.split(",") if s]
  unknown = [s for s in sizes if s not in SIZES]
  if unknown or not sizes:
    parser.error(f"--size: unknown {unknown}; choose from {sorted(SIZES)}")
  mesh_shape = tuple(int(x) for x in args.mesh.split(","))
  if len(mesh_shape) != 3:
    parser.error(f"--mesh needs three sizes data,fsdp,tensor, got {args.mesh!r}")
  rows = run(sizes, scan=args.scan, mesh_shape=mesh_shape,
             batch_per_device=args.batch_per_device, steps=args.steps,
             generate=not args.no_generate, num_devices=args.devices)
  print(f"devices: {rows[0]['devices']} x {rows[0]['device_kind']}, peak "
        f"{rows[0]['peak_flops'] / 1e12:.4g} TFLOP/s ({rows[0]['peak_source']})")
  print(format_rows(rows, COLUMNS))
  files.write_json(args.json, rows)
  print(f"wrote {args.json}")
  return rows


if __name__ == "__main__":
  main()
