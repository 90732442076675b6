r"""KTIW and single-head attention dynamics (Snell, Zhong, Klein, Steinhardt 2021).

Run (default preset: three 1-layer decoders, d_model 64, 10 words, 1,000 steps of 64 rows
each; 5.2 min wall measured on 2 cores shared with other jobs at load ~12, 1.6 CPU-minutes):

  python -m experiments.ktiw --config experiments/configs/ktiw.py --workdir /tmp/ktiw

Other presets and overrides:

  python -m experiments.ktiw --config experiments/configs/ktiw.py:warmup --workdir /tmp/ktiw_w
  python -m experiments.ktiw --config experiments/configs/ktiw.py:smoke --workdir /tmp/ktiw_s
  python -m experiments.ktiw --config experiments/configs/ktiw.py --config.train.seed=1 \
      --workdir /tmp/ktiw_seed1

Measured result (default, seed 0; first eval step >= 0.9 of KTIW / attention / token accuracy,
evaluated every 10 steps; KTIW accuracy is over the 10 words, so it moves in steps of 0.1):
  easy (i.i.d. words, 1 head): 50 / 70 / 70. KTIW first: at step 50 KTIW accuracy is 1.0
    while attention accuracy is 0.38 (KTIW probability 0.40); both at 1.0 from step 70.
  permutation (1 head): never / never / never. Near chance (token 0.01-0.15, attention
    0.11-0.17) to step 250, then creeps to a partial solution it keeps: final token 0.56,
    attention 0.50, KTIW 0.70 (touches 0.9 at step 560, then falls back).
  permutation (8 heads, same budget): 350 / 370 / 360. Also near chance to step 250 (token
    <= 0.21), then escapes at once: all at 1.0 from step 400.
  claims: easy_ktiw_leads, permutation_single_head_stalls, multihead_recovers all True.
  Seeds 1 and 2 (an earlier build, eval every 25 steps): easy 50 / 75 / 75 both; the single
  head ends at token accuracy 0.29 and 0.32; 8 heads 375 / 350 / 350 and 375 / 400 / 400.
warmup (100 uniform-attention steps first; 5.5 min): easy 50 / 140 / 140 -- KTIW (probability
  0.72 by step 100) is learned under uniform attention, attention right after the warm-up;
  the single head on permutations learns no KTIW at all (final KTIW 0.0, attention 0.01, token
  0.23); 8 heads 270 / 280 / 290.

Writes <workdir>/<run>/{metrics.jsonl, tb/, learning_curve.png, checkpoints/},
<workdir>/ktiw_curves.png (KTIW accuracy and probability, attention and token accuracy against
step, one panel per run) and <workdir>/results.json (final metrics, first step at >= 0.9 of
each, the claims). Presets: default; warmup; smoke (CI: the multi-head run alone, 4 steps).
"""

from jaxlm import config as config_lib
from jaxlm.algos import ktiw


PRESETS = (None, "warmup", "smoke")

def get_config(arg: str | None = None):
  """Every field of `jaxlm.algos.ktiw.Config` (defaults: the default preset), then preset `arg`
  in {None/"default", "warmup", "smoke"}."""
  c = config_lib.config_dict(ktiw.Config())
  if arg in (None, "", "default"):
    pass
  elif arg == "warmup":
    c.uniform_warmup = 100
  elif arg == "smoke":
    c.model.update(vocab_size=9, d_model=16, d_ff=32, max_len=8)
    c.update(num_words=4, multi_heads=2, eval_every=2, eval_size=8, uniform_warmup=2,
             runs=("permutation_multihead",))
    c.train.update(num_steps=4, batch_size=8, warmup=1, log_every=2, checkpoint_every=0)
  else:
    raise ValueError(f"unknown ktiw preset {arg!r}; choose default, warmup or smoke")
  return c
