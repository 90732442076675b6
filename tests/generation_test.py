"""Tests for KV-cache generation: HF parity, padding, sampling filters, stops, processors."""

import dataclasses

from absl.testing import absltest
from absl.testing import parameterized
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import generation as gen
from jaxlm import processors
from jaxlm.models import convert
from jaxlm.models import transformer as tfm

CFG = tfm.gpt2_config(vocab_size=53, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=64)
LLAMA = tfm.llama_config(vocab_size=53, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48,
                         max_len=64)


def _params(cfg, seed=0):
  model = tfm.Transformer(cfg)
  return model, nn.meta.unbox(model.init(jax.random.key(seed), jnp.zeros((1, 4), jnp.int32)))[
      "params"]


PROMPT = np.asarray([[3, 4, 5], [6, 7, 8]])
N_NEW = 12


def _greedy(processor=None, prompt=PROMPT, **kw):
  """Greedy decode of PROMPT with CFG; shared shapes so that tests share compilations."""
  model, params = _params(CFG)
  return gen.generate(model, params, prompt, max_new_tokens=N_NEW, temperature=0,
                      logit_processor=processor, **kw)


def _left_pad(rows, pad=0):
  width = max(map(len, rows))
  tokens = np.full((len(rows), width), pad, np.int32)
  mask = np.zeros((len(rows), width), np.int32)
  for i, r in enumerate(rows):
    tokens[i, width - len(r):] = r
    mask[i, width - len(r):] = 1
  return tokens, mask


def _hf_model(family):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  if family == "gpt2":
    hf_cfg = transformers.GPT2Config(vocab_size=97, n_positions=64, n_embd=32, n_layer=2,
                                     n_head=4, initializer_range=0.2, bos_token_id=None,
                                     eos_token_id=None)
    model = transformers.GPT2LMHeadModel(hf_cfg)
  else:
    hf_cfg = transformers.LlamaConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2,
                                      intermediate_size=48, max_position_embeddings=64,
                                      initializer_range=0.2, bos_token_id=None, eos_token_id=None)
    model = transformers.LlamaForCausalLM(hf_cfg)
  return model.eval()


@flax.struct.dataclass
class _FixedLogits:
  """Processor replacing the model's logits with a known distribution (exact sampling tests)."""
  logits_V: jax.Array

  def __call__(self, state, logits_BxV):
    return jnp.broadcast_to(self.logits_V, logits_BxV.shape)


@dataclasses.dataclass(frozen=True)
class _SumOfTwo:
  """Two transformers on the same tokens, logits summed; brings its own (tuple) cache."""
  model: tfm.Transformer

  def init_cache(self, batch_size, max_len, dtype):
    one = lambda: tfm.init_cache(self.model.cfg, batch_size, max_len, dtype)
    return (one(), one())

  def __call__(self, params, tokens_BxT, mask_BxT, positions_BxT, cache):
    outs = [self.model.apply({"params": p}, tokens_BxT, attention_mask_BxT=mask_BxT,
                             positions_BxT=positions_BxT, cache=c) for p, c in zip(params, cache)]
    return tfm.TransformerOutput(logits=outs[0].logits + outs[1].logits, hidden=outs[0].hidden,
                                 cache=(outs[0].cache, outs[1].cache))


def _sample_counts(logits_V, n_rows=1024, n_new=4, **kw):
  model, params = _params(CFG)
  logits_V = jnp.pad(jnp.asarray(logits_V, jnp.float32), (0, CFG.vocab_size - len(logits_V)),
                     constant_values=-jnp.inf)
  out = gen.generate(model, params, jnp.ones((n_rows, 1), jnp.int32), rng=jax.random.key(3),
                     max_new_tokens=n_new, logit_processor=_FixedLogits(logits_V), **kw)
  tokens = np.asarray(out.tokens_BxN).ravel()
  return np.bincount(tokens, minlength=CFG.vocab_size) / tokens.size, out


class GenerationTest(parameterized.TestCase):

  @parameterized.named_parameters(("gpt2", "gpt2"), ("llama", "llama"))
  def test_greedy_matches_hf_generate(self, family):
    import torch  # pylint: disable=g-import-not-at-top
    hf = _hf_model(family)
    cfg, params = convert.from_hf(hf)
    prompt = np.random.RandomState(0).randint(1, cfg.vocab_size, (3, 6))
    with torch.no_grad():
      ref = hf.generate(torch.as_tensor(prompt), attention_mask=torch.ones(3, 6, dtype=int),
                        do_sample=False, max_new_tokens=32, pad_token_id=0)
    out = gen.generate(tfm.Transformer(cfg), params, prompt, max_new_tokens=32, temperature=0)
    np.testing.assert_array_equal(out.tokens_BxN, ref[:, 6:].numpy())
    np.testing.assert_array_equal(out.lengths_B, [32] * 3)

  @parameterized.named_parameters(("gpt2", CFG), ("llama", LLAMA))
  def test_left_padded_rows_match_rows_alone(self, cfg):
    model, params = _params(cfg)
    short, long = [11, 12, 13], [7, 1, 3, 8, 4, 6]
    tokens, mask = _left_pad([short, long])
    batch = gen.generate(model, params, tokens, mask, max_new_tokens=N_NEW, temperature=0)
    alone = gen.generate(model, params, np.asarray([short, short]), max_new_tokens=N_NEW,
                         temperature=0)
    np.testing.assert_array_equal(batch.tokens_BxN[0], alone.tokens_BxN[0])
    np.testing.assert_allclose(batch.logprobs_BxN[0], alone.logprobs_BxN[0], atol=1e-5)
    # The unpadded row is unaffected by its padded neighbour.
    full = model.apply({"params": params}, np.concatenate([tokens, batch.tokens_BxN], 1)[1:])
    np.testing.assert_array_equal(batch.tokens_BxN[1, 1:],
                                  np.argmax(full.logits[0, len(long):-1], -1))

  def test_logprobs_equal_full_forward_log_softmax(self):
    model, params = _params(CFG)
    tokens, mask = _left_pad([[5, 9, 2], [7, 1, 3, 8, 4]])
    out = gen.generate(model, params, tokens, mask, rng=jax.random.key(1), max_new_tokens=10,
                       temperature=0.7, top_k=20)
    seq = np.concatenate([tokens, out.tokens_BxN], 1)
    full_mask = np.concatenate([mask, np.ones_like(out.tokens_BxN)], 1)
    logits = model.apply({"params": params}, seq, attention_mask_BxT=full_mask).logits
    logp = jax.nn.log_softmax(logits[:, tokens.shape[1] - 1:-1])
    want = np.take_along_axis(np.asarray(logp), np.asarray(out.tokens_BxN)[..., None], -1)[..., 0]
    np.testing.assert_allclose(out.logprobs_BxN, want, atol=1e-5)
    # The processed log-probs are under the sharper, truncated distribution.
    self.assertTrue(np.all(np.asarray(out.processed_logprobs_BxN) >= want - 1e-6))

  def test_argmax_logprob_hand_computed(self):
    logits = np.array([[1.0, 3.0, 3.0, -np.inf], [0.0, 0.0, 0.0, 0.0],
                       [-np.inf, 2.0, -np.inf, -np.inf]], np.float32)
    want_lp = [-np.log(np.exp(-2.0) + 2.0), -np.log(4.0), 0.0]
    for fn in (gen.argmax_logprob, jax.jit(gen.argmax_logprob)):
      token, lp = fn(jnp.asarray(logits))
      np.testing.assert_array_equal(token, [1, 0, 1])  # First index among ties, like argmax.
      np.testing.assert_allclose(lp, want_lp, rtol=1e-6)
    random = jax.random.normal(jax.random.key(0), (5, 1000)) * 4
    token, lp = gen.argmax_logprob(random)
    np.testing.assert_array_equal(token, jnp.argmax(random, -1))
    np.testing.assert_allclose(lp, jax.nn.log_softmax(random).max(-1), rtol=1e-6)

  @parameterized.named_parameters(("f32", CFG), ("bf16", CFG.replace(dtype="bfloat16")))
  def test_vocab_major_projection_equals_model_logits_up_to_summation_order(self, cfg):
    model, params = _params(cfg)
    apply = gen._ModuleApply(model)
    self.assertTrue(apply.projects_vocab_major)
    self.assertFalse(gen._ModuleApply(_params(LLAMA)[0]).projects_vocab_major)  # Untied.
    out = model.apply({"params": params}, PROMPT)
    hidden_BxD = out.hidden[:, -1]
    logits_VxB = apply.logits_VxB(params, hidden_BxD)
    self.assertEqual(logits_VxB.dtype, jnp.float32)
    # The same D products, summed in an order XLA's CPU dot picks per operand layout and CPU:
    # equal to the bit on some machines, within the reordering bound D * eps * sum |terms|
    # (each result rounded once more to the compute dtype) on all.
    dt = jnp.dtype(cfg.dtype)
    e_VxD = np.asarray(params["embed"]["embedding"].astype(dt), np.float64)
    terms = np.abs(e_VxD) @ np.abs(np.asarray(hidden_BxD.astype(dt), np.float64)).T
    eps = float(jnp.finfo(dt).eps)
    want = np.asarray(out.logits[:, -1], np.float64).T
    bound = cfg.d_model * np.finfo(np.float32).eps * terms + eps * np.abs(want)
    diff = np.abs(np.asarray(logits_VxB, np.float64) - want)
    self.assertTrue(np.all(diff <= bound), (diff.max(), (diff / bound).max()))
    self.assertLess(diff.max(), 1e-2 if cfg.dtype == "bfloat16" else 1e-6)

  def test_greedy_with_processor_reports_raw_and_processed_logprobs(self):
    allowed = np.zeros(CFG.vocab_size, bool)
    allowed[[10, 20, 30]] = True
    out = _greedy(processors.mask_processor(allowed))
    model, params = _params(CFG)
    seq = np.concatenate([PROMPT, out.tokens_BxN], 1)
    logits = np.asarray(model.apply({"params": params}, seq).logits[:, 2:-1])
    tokens = np.asarray(out.tokens_BxN)[..., None]
    masked = np.where(allowed, logits, -np.inf)
    np.testing.assert_array_equal(tokens[..., 0], masked.argmax(-1))
    for got, z in ((out.logprobs_BxN, logits), (out.processed_logprobs_BxN, masked)):
      want = np.take_along_axis(np.asarray(jax.nn.log_softmax(z)), tokens, -1)[..., 0]
      np.testing.assert_allclose(got, want, atol=1e-5)

  def test_sampling_is_reproducible_and_key_dependent(self):
    model, params = _params(CFG)
    run = lambda seed: gen.generate(model, params, jnp.ones((4, 3), jnp.int32),
                                    rng=jax.random.key(seed), max_new_tokens=16).tokens_BxN
    np.testing.assert_array_equal(run(0), run(0))
    self.assertFalse(np.array_equal(run(0), run(1)))

  def test_temperature_distribution(self):
    logits = np.log([0.5, 0.25, 0.15, 0.1])
    freq, out = _sample_counts(logits, temperature=0.5)
    want = np.exp(logits / 0.5) / np.exp(logits / 0.5).sum()
    np.testing.assert_allclose(freq[:4], want, atol=0.03)
    np.testing.assert_allclose(np.exp(out.processed_logprobs_BxN[0]),
                               want[np.asarray(out.tokens_BxN[0])], rtol=1e-5)

  def test_traced_temperature_zero_or_below_is_exactly_greedy(self):
    # Issue 16, class 6: under jit a traced temperature <= 0 used to divide the logits by 0 or
    # flip their sign (NaN log-probs, all-zero or anti-greedy tokens).
    model, params = _params(CFG)
    want = _greedy()
    run = jax.jit(lambda t: gen.generate(model, params, PROMPT, rng=jax.random.key(0),
                                         max_new_tokens=N_NEW, temperature=t))
    for t in (0.0, -1.0, float("nan")):
      out = run(t)
      np.testing.assert_array_equal(out.tokens_BxN, want.tokens_BxN, err_msg=str(t))
      np.testing.assert_allclose(out.processed_logprobs_BxN, want.processed_logprobs_BxN,
                                 atol=1e-6, err_msg=str(t))

  def test_per_row_temperature_zero_rows_are_greedy(self):
    model, params = _params(CFG)
    want = _greedy()
    kw = dict(rng=jax.random.key(0), max_new_tokens=N_NEW)
    hot = gen.generate(model, params, PROMPT, temperature=1.0, **kw)
    mixed = gen.generate(model, params, PROMPT, temperature=np.array([0.0, 1.0]), **kw)
    traced = jax.jit(lambda t: gen.generate(model, params, PROMPT, temperature=t, **kw))(
        jnp.array([0.0, 1.0]))
    for out in (mixed, traced):
      np.testing.assert_array_equal(out.tokens_BxN[0], want.tokens_BxN[0])
      np.testing.assert_array_equal(out.tokens_BxN[1], hot.tokens_BxN[1])  # Rows independent.
      np.testing.assert_allclose(out.processed_logprobs_BxN[1], hot.processed_logprobs_BxN[1],
                                 atol=1e-6)

  def test_top_k_never_samples_outside_the_k_best(self):
    logits = np.array([1.0, 3.0, 0.5, 2.0, 2.5, -1.0])
    freq, out = _sample_counts(logits, top_k=3)
    self.assertEqual(set(np.flatnonzero(freq)), {1, 3, 4})
    want = np.exp(logits[[1, 3, 4]]) / np.exp(logits[[1, 3, 4]]).sum()
    np.testing.assert_allclose(freq[[1, 3, 4]], want, atol=0.03)
    np.testing.assert_allclose(np.exp(out.processed_logprobs_BxN),
                               (np.exp(logits) / np.exp(logits[[1, 3, 4]]).sum())[
                                   np.asarray(out.tokens_BxN)], rtol=1e-5)

  @parameterized.named_parameters(("two", 0.65, [0, 1]), ("three", 0.75, [0, 1, 2]),
                                  ("one", 0.3, [0]))
  def test_top_p_keeps_smallest_set_with_mass_p(self, p, kept):
    probs = np.array([0.4, 0.3, 0.2, 0.1])
    freq, out = _sample_counts(np.log(probs), top_p=p)
    self.assertEqual(set(np.flatnonzero(freq)), set(kept))
    want = probs[kept] / probs[kept].sum()
    np.testing.assert_allclose(freq[kept], want, atol=0.03)
    np.testing.assert_allclose(np.exp(out.processed_logprobs_BxN),
                               (probs / probs[kept].sum())[np.asarray(out.tokens_BxN)],
                               rtol=1e-5)

  def test_stop_tokens_and_max_lengths(self):
    free = np.asarray(_greedy().tokens_BxN)
    stop = int(free[0, 3])
    first = int(np.flatnonzero(free[0] == stop)[0])
    out = _greedy(pad_id=52, stop_tokens=[[stop], [-1]], max_lengths_B=[N_NEW, 5])
    np.testing.assert_array_equal(out.lengths_B, [first + 1, 5])
    np.testing.assert_array_equal(out.done_B, [True, False])
    np.testing.assert_array_equal(out.tokens_BxN[0, :first + 1], free[0, :first + 1])
    np.testing.assert_array_equal(out.tokens_BxN[0, first + 1:], 52)
    np.testing.assert_array_equal(out.tokens_BxN[1, :5], free[1, :5])
    np.testing.assert_array_equal(out.tokens_BxN[1, 5:], 52)
    written = np.arange(N_NEW)[None] < np.asarray(out.lengths_B)[:, None]
    np.testing.assert_array_equal(np.asarray(out.logprobs_BxN)[~written], 0.0)
    self.assertTrue(np.all(np.asarray(out.logprobs_BxN)[written] < 0))
    # A shared stop list; a row with max length 0 emits nothing.
    out = _greedy(stop_tokens=[stop], max_lengths_B=[N_NEW, 0])
    np.testing.assert_array_equal(out.lengths_B, [first + 1, 0])
    np.testing.assert_array_equal(out.tokens_BxN[1], 0)

  def test_forced_tokens_processor(self):
    out = _greedy(processors.forced_tokens_processor([50, 51, 52], start=[2, 4]))
    np.testing.assert_array_equal(out.tokens_BxN[0, 2:5], [50, 51, 52])
    np.testing.assert_array_equal(out.tokens_BxN[1, 4:7], [50, 51, 52])
    np.testing.assert_array_equal(out.processed_logprobs_BxN[0, 2:5], 0.0)
    self.assertTrue(np.all(np.asarray(out.logprobs_BxN[0, 2:5]) < 0))
    # What follows the forced stretch is the greedy continuation of everything before it.
    model, params = _params(CFG)
    seq = np.concatenate([PROMPT, out.tokens_BxN], 1)
    logits = model.apply({"params": params}, seq).logits
    np.testing.assert_array_equal(out.tokens_BxN[:, 7:], np.argmax(logits[:, 9:-1], -1))

  def test_budget_forcing_with_a_start_function(self):
    free = np.asarray(_greedy().tokens_BxN)
    trigger = int(free[0, 1])
    # Start forcing two steps after the trigger token first appears.
    start = lambda s: processors.first_token_step(s, [trigger]) + 2
    out = _greedy(processors.forced_tokens_processor([7, 8], start))
    for row in range(2):
      hits = np.flatnonzero(free[row] == trigger)
      at = int(hits[0]) + 2 if hits.size else N_NEW
      np.testing.assert_array_equal(out.tokens_BxN[row, :at], free[row, :at])
      np.testing.assert_array_equal(out.tokens_BxN[row, at:at + 2], [7, 8][:N_NEW - at])

  def test_mask_and_compose(self):
    model, params = _params(CFG)
    allowed = np.zeros(CFG.vocab_size, bool)
    allowed[[10, 20, 30]] = True
    proc = processors.compose(processors.mask_processor(allowed),
                              processors.forced_tokens_processor([40], start=3))
    out = gen.generate(model, params, jnp.ones((8, 2), jnp.int32), rng=jax.random.key(0),
                       max_new_tokens=6, logit_processor=proc)
    tokens = np.asarray(out.tokens_BxN)
    self.assertTrue(np.isin(np.delete(tokens, 3, axis=1), [10, 20, 30]).all())
    np.testing.assert_array_equal(tokens[:, 3], 40)

  def test_hidden_state_and_aux_reach_processors(self):
    """An ILQL-style perturbation logits + beta * (Q - V) computed from hidden_BxD and aux."""
    model, params = _params(CFG)
    rng = np.random.RandomState(0)
    aux = {"q": jnp.asarray(rng.randn(32, CFG.vocab_size), jnp.float32),
           "v": jnp.asarray(rng.randn(32), jnp.float32), "beta": jnp.float32(4.0)}

    def ilql(state, logits_BxV):
      q_BxV = state.hidden_BxD @ state.aux["q"]
      v_B = state.hidden_BxD @ state.aux["v"]
      return logits_BxV + state.aux["beta"] * (q_BxV - v_B[:, None])

    def extras(state, logits_BxV, token_B):
      return {"hidden": state.hidden_BxD, "step": jnp.full(token_B.shape, state.step)}

    tokens, mask = _left_pad([[5, 9, 2], [7, 1, 3, 8]])
    out = gen.generate(model, params, tokens, mask, max_new_tokens=6, temperature=0,
                       logit_processor=ilql, aux=aux, extra_outputs=extras)
    seq = np.concatenate([tokens, out.tokens_BxN], 1)
    full = model.apply({"params": params}, seq,
                       attention_mask_BxT=np.concatenate([mask, np.ones((2, 6), int)], 1))
    hidden = full.hidden[:, 3:-1]
    np.testing.assert_allclose(out.extras["hidden"], hidden, atol=1e-5)
    np.testing.assert_array_equal(out.extras["step"], np.tile(np.arange(6), (2, 1)))
    perturbed = full.logits[:, 3:-1] + 4.0 * (hidden @ aux["q"] - (hidden @ aux["v"])[..., None])
    np.testing.assert_array_equal(out.tokens_BxN, np.argmax(perturbed, -1))

  @parameterized.parameters(CFG, LLAMA)
  def test_continuing_from_a_returned_cache_equals_a_fresh_prompt(self, cfg):
    model, params = _params(cfg)
    prompts = [[5, 9, 2], [7, 1, 3, 8, 4], [11]]
    tokens, mask = _left_pad(prompts)
    stops = list(range(46, 53))  # rows end by a stop or their own limit, at different steps
    first = gen.generate(model, params, tokens, mask, rng=jax.random.key(1), max_new_tokens=8,
                         stop_tokens=stops, max_lengths_B=[8, 2, 5], return_cache=True)
    lengths = np.asarray(first.lengths_B).tolist()
    self.assertGreater(len(set(lengths)), 1, lengths)  # finished rows kept decoding pads
    outs = [np.asarray(first.tokens_BxN)[i, :n].tolist() for i, n in enumerate(lengths)]
    # The environment appends 0-2 tokens; rows continue reordered (one twice), each from its
    # last token, as a fresh prompt of everything so far would.
    order, env = [2, 0, 1, 0], [[], [3, 4], [6], [3, 4]]
    rest = [[outs[i][-1]] + e for i, e in zip(order, env)]
    key = jax.random.key(2)
    cont = gen.generate(model, params, *_left_pad(rest), rng=key, max_new_tokens=6,
                        stop_tokens=stops, cache=tfm.cache_rows(first.cache, order),
                        return_cache=True)
    fresh = gen.generate(model, params,
                         *_left_pad([prompts[i] + outs[i] + e for i, e in zip(order, env)]),
                         rng=key, max_new_tokens=6, stop_tokens=stops)
    np.testing.assert_array_equal(cont.tokens_BxN, fresh.tokens_BxN)
    np.testing.assert_array_equal(cont.lengths_B, fresh.lengths_B)
    np.testing.assert_allclose(cont.logprobs_BxN, fresh.logprobs_BxN, atol=1e-5)
    # The returned cache holds exactly each row's tokens but its last one.
    held = np.asarray(gen.cache_mask(cont.cache)).sum(-1)
    np.testing.assert_array_equal(held, [len(prompts[i]) + len(outs[i]) + len(e)
                                         + int(n) - 1 for i, e, n in
                                         zip(order, env, np.asarray(cont.lengths_B))])
    self.assertIsNone(fresh.cache)
    # A fresh call's cache is the prompt and the decode, not the model's max_len on top.
    self.assertEqual(gen.cache_mask(first.cache).shape, (3, 5 - 1 + 8))
    self.assertEqual(gen.cache_mask(cont.cache).shape, (4, 5 - 1 + 8 + 3 - 1 + 6))

  def test_model_with_its_own_cache(self):
    model, p0 = _params(CFG)
    _, p1 = _params(CFG, seed=1)
    tokens, mask = _left_pad([[5, 9, 2], [7, 1, 3, 8]])
    out = gen.generate(_SumOfTwo(model), (p0, p1), tokens, mask, max_new_tokens=6,
                       temperature=0)  # no config=: the model builds its cache
    seq = np.concatenate([tokens, out.tokens_BxN], 1)
    full_mask = np.concatenate([mask, np.ones((2, 6), int)], 1)
    logits = sum(model.apply({"params": p}, seq, attention_mask_BxT=full_mask).logits
                 for p in (p0, p1))[:, 3:-1]
    np.testing.assert_array_equal(out.tokens_BxN, np.argmax(logits, -1))
    np.testing.assert_allclose(out.logprobs_BxN, np.take_along_axis(
        jax.nn.log_softmax(logits), np.asarray(out.tokens_BxN)[..., None], -1)[..., 0],
                               atol=1e-5)
    with self.assertRaisesRegex(ValueError, "config="):
      gen.generate(gen._ModuleApply(model), p0, tokens, mask, max_new_tokens=2, temperature=0)

  def test_repeated_calls_do_not_retrace_and_outer_jit_works(self):
    model, params = _params(CFG)
    proc = processors.forced_tokens_processor([1, 2], start=1)
    call = lambda p, f: gen.generate(model, params, p, max_new_tokens=5,
                                     rng=jax.random.key(0), top_p=0.9, logit_processor=f)
    call(jnp.ones((2, 3), jnp.int32), proc)
    size = gen._generate_jit._cache_size()
    call(jnp.full((2, 3), 4, jnp.int32), processors.forced_tokens_processor([3, 4], start=2))
    self.assertEqual(gen._generate_jit._cache_size(), size)
    jitted = jax.jit(lambda p: call(p, proc).tokens_BxN)
    np.testing.assert_array_equal(jitted(jnp.ones((2, 3), jnp.int32)),
                                  call(jnp.ones((2, 3), jnp.int32), proc).tokens_BxN)

  @parameterized.named_parameters(
      ("right_padded", dict(prompt_mask_BxP=np.asarray([[1, 1, 0]])), "left-padded"),
      ("gap", dict(prompt_mask_BxP=np.asarray([[1, 0, 1]])), "not left-padded"),
      ("mask_shape", dict(prompt_mask_BxP=np.ones((1, 2))), "shape"),
      ("too_long", dict(max_new_tokens=63), "position table"),
      ("no_rng", dict(temperature=1.0, rng=None), "rng"),
      ("token_range", dict(prompt_tokens_BxP=np.asarray([[1, 2, 99]])), "token ids"),
      ("top_p", dict(top_p=0.0), "top_p"),
      ("negative_temperature", dict(temperature=-0.5), r"temperature must be >= 0.*rows \[0\]"),
      ("nan_temperature", dict(temperature=float("nan")), "temperature must be >= 0"),
      ("temperature_shape", dict(temperature=np.ones(3)), "one per row"),
      ("stop_shape", dict(stop_tokens=np.zeros((3, 2))), "stop_tokens"),
  )
  def test_bad_input(self, override, message):
    model, params = _params(CFG)
    kw = dict(prompt_tokens_BxP=np.asarray([[1, 2, 3]]), max_new_tokens=4, temperature=0.0)
    kw.update(override)
    with self.assertRaisesRegex(ValueError, message):
      gen.generate(model, params, **kw)


if __name__ == "__main__":
  absltest.main()
