"""Extracted policies step by step: the joint decoder against the full-sequence scorers."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm import generation
from jaxlm.algos import ilql
from jaxlm.algos import mc
from jaxlm.models import Transformer, TransformerConfig, lm_networks
from jaxlm.models import policy as decoding
from jaxlm.models.heads import MLPHead

MCFG = TransformerConfig(vocab_size=23, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=32)
BETAS = np.array([0.0, 3.0, 0.5], np.float32)
N_NEW = 5


def _left_pad(rows):
  width = max(map(len, rows))
  tokens, mask = np.zeros((2, len(rows), width), np.int32)
  for i, r in enumerate(rows):
    tokens[i, width - len(r):], mask[i, width - len(r):] = r, 1
  return tokens, mask


def _scaled(tree, key, scale):
  """Random params far from init, so that Q - V (and every head) matters at order one."""
  leaves, treedef = jax.tree.flatten(tree)
  keys = jax.random.split(key, len(leaves))
  return treedef.unflatten([x + scale * jax.random.normal(k, x.shape)
                            for x, k in zip(leaves, keys)])


def _ilql_policy(variant, policy_q="target", adv_clip=None):
  config = ilql.Config(variant=variant, policy_q=policy_q, adv_clip=adv_clip)
  init_fn, _, scorer, _ = ilql._networks(config, MCFG, -2.0, 1.5)
  k = jax.random.split(jax.random.key(0), 4)
  params = _scaled(jax.tree.map(jnp.asarray, init_fn(k[0])), k[1], 0.3)
  target = _scaled(params, k[2], 0.3)  # a target that differs from the online nets
  policy = None
  if variant == "lmrl_gym":
    policy = lm_networks(MCFG)[1](k[3])
  bundle = jax.tree.map(jnp.asarray, (params, target, policy))
  return decoding.Policy(scorer, *ilql._decoder(config, MCFG, -2.0, 1.5)), bundle


def _mc_policy():
  """MC returns' networks as mc.train builds them (trunk, LM head, Q head on the trunk)."""
  model, head = Transformer(MCFG), MLPHead(MCFG.vocab_size, bias_init=-2.0, scale=1.5)
  k = jax.random.split(jax.random.key(1), 3)
  params = {"lm": lm_networks(MCFG)[1](k[0]),
            "q": head.init(k[1], jnp.zeros((1, 1, MCFG.d_model)))["params"]}
  return mc._policy(model, head), _scaled(jax.tree.map(jnp.asarray, params), k[2], 0.3)


def _full_sequence_logits(policy, params, tokens, mask, beta_B, adv_clip=None):
  """What the reranker scores: scorer logits + beta * clip(adv), per row beta."""
  logits, adv = policy.scorer(params, tokens, mask)
  logits, adv = np.asarray(logits), np.asarray(adv)
  if adv_clip is not None:
    adv = np.clip(adv, -adv_clip, adv_clip)
  return logits + beta_B[:, None, None] * adv


class DecodingTest(parameterized.TestCase):

  def test_perturb_hand_computed(self):
    logits = jnp.array([[[1.0, 2.0, 0.0]], [[0.0, 0.0, 0.0]]])
    adv = jnp.array([[[0.5, -3.0, 1.0]], [[2.0, -1.0, 0.0]]])
    got = decoding.perturb(logits, adv, jnp.array([2.0, 0.5]), 1.0)
    np.testing.assert_allclose(got, [[[2.0, 0.0, 2.0]], [[0.5, -0.5, 0.0]]])
    np.testing.assert_array_equal(decoding.perturb(logits, None, jnp.array([2.0, 0.5])), logits)
    # ILQL's Eq. 6 on a Q, V fixture: the advantage is Q - V (moved from losses_test).
    base, q, v = jnp.array([[[0.0, 1.0, 2.0]]]), jnp.array([[[1.0, 5.0, -3.0]]]), jnp.array([[1.0]])
    np.testing.assert_allclose(decoding.perturb(base, q - v[..., None], jnp.array([2.0])),
                               [[[0.0, 9.0, -6.0]]])
    np.testing.assert_allclose(decoding.perturb(base, q - v[..., None], jnp.array([2.0]), 1.0),
                               [[[0.0, 3.0, 0.0]]])

  @parameterized.named_parameters(("ilql_lmrl_gym", "lmrl_gym"), ("mc", "mc"))
  def test_generate_step_logits_equal_full_sequence_scorer(self, which):
    policy, params = _mc_policy() if which == "mc" else _ilql_policy(which)
    tokens, mask = _left_pad([[2, 5, 9, 4], [2, 7], [2, 3, 3, 8, 1, 6]])
    out = generation.generate(policy.decoder, policy.step_params(params, BETAS), tokens, mask,
                              max_new_tokens=N_NEW, temperature=0,
                              extra_outputs=lambda s, logits, t: logits, config=MCFG)
    seq = np.concatenate([tokens, out.tokens_BxN], 1)
    full_mask = np.concatenate([mask, np.ones_like(out.tokens_BxN)], 1)
    want = _full_sequence_logits(policy, params, seq, full_mask, BETAS)[:, tokens.shape[1] - 1:-1]
    np.testing.assert_allclose(out.extras, want, atol=2e-4, rtol=1e-4)  # teacher forcing
    np.testing.assert_array_equal(out.tokens_BxN, want.argmax(-1))  # greedy under Eq. 6
    # Beta is per-row data: the rows decode differently from the beta-0 policy.
    plain = generation.generate(policy.decoder, policy.step_params(params, 0 * BETAS), tokens,
                                mask, max_new_tokens=N_NEW, temperature=0, config=MCFG)
    self.assertFalse(np.array_equal(plain.tokens_BxN[1], out.tokens_BxN[1]))
    np.testing.assert_array_equal(plain.tokens_BxN[0], out.tokens_BxN[0])

  @parameterized.product(variant=("lmrl_gym", "trlx", "original"), policy_q=("target", "online"))
  def test_decoder_on_whole_sequences_is_the_scorer(self, variant, policy_q):
    policy, params = _ilql_policy(variant, policy_q, adv_clip=0.7)
    tokens, mask = _left_pad([[2, 5, 9, 4, 11], [2, 7, 1]])
    beta_B = BETAS[1:]
    got = policy.decoder(policy.step_params(params, beta_B, 0.7), tokens, mask)
    want = _full_sequence_logits(policy, params, tokens, mask, beta_B, adv_clip=0.7)
    np.testing.assert_allclose(np.asarray(got.logits) * mask[..., None],
                               want * mask[..., None], atol=2e-4, rtol=1e-4)
    # Policy LM (unless shared), value trunk, target trunk (only when target Q reads it).
    want_models = 1 if variant == "trlx" else 3 if policy_q == "target" else 2
    self.assertLen(policy.decoder.models, want_models)


if __name__ == "__main__":
  absltest.main()
