r"""Adaptive Parallel Reasoning on Countdown (`jaxlm.algos.apr`): SoS+ vs APR SFT, then RL.

Run:
  python -m experiments.apr --workdir /tmp/apr                        # default
  python -m experiments.apr --config experiments/configs/apr.py:policy --workdir /tmp/apr1
  python -m experiments.apr --config experiments/configs/apr.py:smoke --workdir /tmp/apr0
  python -m experiments.apr --config experiments/configs/apr.py:rl --workdir W --resume
  python -m experiments.apr --config experiments/configs/apr.py:rl_long --workdir W --resume

Problems (every preset but "paper"): Countdown with 4 starting numbers from 1..9, targets
10..30, 3000 training problems. Per-thread context cap 768 tokens (characters): at that cap the
symbolic searches themselves (no model) solve 24% as one SoS+ trace (100 node budget; median
trace 992 tokens) and 71% as APR threads (root + 4 children of <= 20 nodes; parent <= 762,
child <= 337 tokens at the 90th percentile); at cap 640: 6% vs 41% (plain grammar). In the
default's "results" grammar (longer SoS+ rows: median 1282) 7% vs 77% at cap 768 (200 training
problems, /tmp/s12/sym3.py). With 3 starting numbers the two formats tie at every cap (the
parent's root expansion is as long as the whole SoS+ trace), so the contrast needs 4. Two
2-layer d=64 character models, one per format, same problems, both started from the
direct-answer policy; evaluation with the spawn / join orchestrator at caps 512 / 640 / 768
(APR also at 512 / 768 / 1024 total tokens); then GRPO on the APR model (4 prompts x 4 rollouts
per step, all threads of a rollout share its advantage, rollouts weigh equally).

Default (<= 30 min on 2 cores; a run of the whole pipeline, not of its targets): one head (a
training step on 16 x 768 characters takes 0.68 s with one head, 1.96 s with four: the
attention probabilities dominate at d=64), direct-answer policy 1500 steps x 64, SFT 500 steps
(SoS+) and 800 (APR; parent rows x4) of 16 rows in the "results" grammar, 64
validation problems, 10 GRPO steps.
Measured (2026-12-05, jax 0.10.2, 2 cores alone, with 20 GRPO steps; before the parent's
named answer of 2026-12-06, which changes only its last line): 29:02 wall (policy 2.7
min, SoS+ SFT and sweep 6.3, APR SFT 6.0, its sweep 3.5, GRPO 4.3, the RL model's sweep 3.5,
child searches 2.2; peak RSS 2.4 GB); 10 GRPO steps save ~2.2 min. SFT loss 0.37 (APR); SoS+
rows: 2708 of 3000 cut at 768 (the results grammar is longer). Accuracy 0.000 for both formats
at every cap and total budget: SoS+ traces run into the context (62 of 64), the APR parent
spawns 2.1 children per rollout (24 of 64 spawn blocks malformed), its children solve 0 of the
89 solvable pools the symbolic parent would spawn (false goals 0.4%); GRPO reward 0 in every
group (grad_norm 0), so apr_rl = apr. The pipeline is what the default shows; the comparison
needs the longer runs below.
Re-measured 2026-12-06 (named answers; after the KV-cache fix in `jaxlm.generate`; another
machine of the same kind, 2 cores alone, 10 GRPO steps): 13:27 wall end to end (policy 1.7
min, SoS+ SFT and sweep 3.0, APR SFT and sweep 4.7, GRPO and the RL sweep 3.2, child searches
1.1; peak RSS 3.0 GB). SFT loss 0.32 (APR); accuracy 0.000 for both formats at every cap and
total budget (SoS+ 719 tokens at cap 768; APR 2.4 children and 2.2 rounds per rollout, 1942
tokens over all threads); children from exact pools 0 of 89 solvable (false goals 6.6%);
GRPO reward 0 at every logged step (grad_norm 0), so apr_rl = apr.
With `decode_chunk=256` (2026-12-06, 2 cores alone): 11:27 wall (the evaluations and GRPO
decode in 256-token calls), peak RSS 2.6 GB, the same accuracies and token counts.

The symbolic-search figures above were computed from the serialised traces of 300 training
problems (a rollout counts as solved when its search reaches the goal and every thread, bos and
<eos> included, fits the cap).

The default before 2026-12-05 (from scratch, one head, 500 SFT steps per format, 128
validation problems; 64 min under load): SFT loss 0.65 (SoS+) / 0.55 (APR), accuracy 0.000 for
both at every cap and budget, GRPO reward 0 in every group; the model did not even copy the
starting pool from the header.

Preset "long" (MEASURED 2026-12-05, 2 cores, beside other jobs at times; TARGETS NOT REACHED):
the default's model (2 layers, d=64, one head), problems and "results" grammar with 10x its SFT:
5000 SoS+ steps (~2 steps/s alone; loss 0.47 at step 500, 0.20 at 2500, 0.09 at 5000) and 6000
APR steps (~3 steps/s alone; 0.65 / 0.28 / 0.13 at 500 / 2500 / 6000), both from the 1500-step
direct-answer policy; about 85 min of SFT and sweeps alone. Run: `python -m experiments.apr
--config experiments/configs/apr.py:long --workdir W` (resumable; it ran in three pieces with
--resume). At every cap (512 / 640 / 768) and every total budget (512 / 768 / 1024), 64
validation problems, greedy: SoS+ 0.000 (488 / 616 / 737 tokens: nearly every trace runs into
the cap; at 768 the symbolic SoS+ search itself fits and solves only 7% in this grammar, APR's
77%), APR 0.000 (1067 / 1704 / 1798 tokens over all threads; the two rollouts read spawned 4
children each and ended on <eos>). The children from the exact pools the symbolic parent spawns
(`apr.child_accuracy`, 256 children, 35% solvable): 1 of 89 solvable pools solved, false goals
9.0% (the default: 0 of 89). Read greedily (/tmp/s12/child_long.py): the edges' arithmetic and
each two-number pool's four results are right, but the least distance h is not ("[7 8] = 15 1 56
h=5 x" for target 15; "[7 21] = 28 14 147 3 h=0 #2"), so the search opens the wrong pools and
reports no solution; the parent's h values and its choice of children are likewise wrong (it
spawns h=10 nodes over the h=0 one). GRPO was stopped at its start: with greedy accuracy 0 and 1
child in 89, earlier runs of this size never saw a reward (their 160 rollouts all scored 0). Ten
times the steps took the loss from 0.37 to 0.13 but not the comparison with the target that h
needs: more steps alone do not fix it (nor do 4 heads: 12% lower loss on child rows, the A/B
below). Nor is width and depth alone: a 4-layer d=128 4-head model (0.8M parameters) trained on
the child rows alone (12000 rows, from scratch, 2000 steps x 16, lr 1e-3; 52 min, partly beside
other jobs; /tmp/s12/capacity.py) reached loss 0.049 (the default size: 0.75 after 600 steps)
but solved 1 of 89 solvable child pools greedily, with false goals 25%. The h line is a few
tokens of each ~400-token row: the loss is low long before those tokens are right. Next (not
tried): more loss weight on the label tokens, or a larger model trained far longer.
Why steps were tried first: on APR child rows alone (12000 rows of 3000 training problems,
from scratch, 600 steps x 16 rows, lr 3e-3; /tmp/s11/heads_ab.py) the loss at steps 525-600
averaged 0.735 with one head and 0.646 with four (12% lower, at ~1.5x the time per step), and
both curves were still falling.

Preset "policy" (MEASURED 2026-12-04/05, 2 cores; TARGETS NOT REACHED): both formats start
from the direct-answer policy (countdown.trace_init="policy": 3000 steps x 64 short rows, 5.3
min, loss 0.13), 4 heads, then 1500 SFT steps x 16 rows (length-bucketed 256 / 512 / 768):
SoS+ 41 min alone, loss 0.054. At cap 768, greedy, 128 validation problems: SoS+ 0.000 (733
tokens, nearly every trace cut by the context) at every cap. Read greedily, the SoS+ model
writes the root expansion almost right (all 18 operations, their arithmetic, the pools) but
gets the heuristic values h wrong and then expands the wrong node, copying a pool that is not
the chosen node's.
APR, first with one parent row per problem (1 row in 5; 1500 steps, 16 min, loss 0.021):
0.000; its parent repeated the root's operations with a constant h and wrote malformed spawn
blocks of 10+ children. Hence parent_repeats=4 (parents are half the rows) and
apr_sft_steps=2400 (SoS+'s SFT compute; APR's short batches cost less); that run was stopped
at step 1500 of 2400 for lack of time and its step-1500 checkpoint evaluated: the parent now
writes well-formed spawn blocks (3.9 children per rollout at cap 768, 2.9 rounds, 1460 tokens
over all threads, 126 of 128 rollouts end on <eos>), but accuracy is still 0.000 at every cap
and total budget: the pools it writes in the spawn block are not the pools of the node ids it
names ("#17 [3 7 27]" where #17 is [3 4 16]), and h is wrong so the ids are not the best
nodes; every child then searches an unsolvable or wrong pool and reports "no solution". RL was
not run (no reward to learn from). What limits it: both formats need long-range copying (a
pool written 10-20 lines earlier, found by its id) and the h arithmetic, which a 2-layer d=64
character model does not learn in 1500 steps.
Since then (2026-12-05) the spawn block names node ids only ("  #17") and the orchestrator
takes each child's pool from the parent's own expansion, so a child's prompt is exact by
construction. The APR model retrained on that format (same preset, policy and SoS+ reused with
--resume; 2400 steps, loss 0.074 at step 1000, ~0.06 at 2400; 47 min for steps 1000-2400
beside an e3 run): accuracy 0.000 at every cap (512 / 640 / 768: 910 / 1436 / 1475 tokens over
all threads) and every total budget (512 / 768 / 1024); GRPO on it: reward 0 in all 10
steps run (160 rollouts, zero-variance share 1.0; stopped there). Read greedily on 64
validation problems at cap 768 (step 2400): 3.8 children per rollout, 2.9 rounds, 62 of 64
end on <eos>; 34% of the children start from a solvable pool and 2 of 243 children reach the
goal (step 1000: 53%, 2 of 85). The parent repeats the operations of equal numbers ([7 7 7 7]:
each pair's four operations written three times, where the search skips pools seen before)
and spawns the same id twice; a child given a solvable 3-number pool ([7 7 14] for 15) still
reports no solution. What limits it: the child's own SoS+ search (arithmetic and h) at 2 layers
d=64; the orchestration is exact. Next: a larger model (d=128, 4 layers) as a named preset
(several hours of SFT here).
Preset "staged" (MEASURED 2026-12-06, below: child 10000, APR 8000 and SoS+ 8000 steps, the
sweeps and GRPO; ~2 h on 2 cores alone by the measured rates; APR 10.9% vs SoS+ 1.6% at cap
768, GRPO lowers APR's accuracy). Until 2026-12-06 it was
24000 child and 13000 steps per format, the path on
which APR first scored, measured in pieces with probe scripts (2026-12-05/06, all below): the
default's 2-layer d=64 one-head model from scratch, the "marks" grammar with pair goals and 8x
decision weight; 24000 steps on the children's rows alone (`child_sft_steps`; ~4.5 steps/s),
then 13000 steps per format (APR ~3 steps/s, SoS+ ~2.3), 128 validation problems; GRPO with
`oversample=4` at lr 5e-5. How the pieces differ from one run: the child stage ran before pair
goals existed (its rows then opened the winning pool as a node), each piece restarted the
learning-rate schedule (3e-3, 50 warmup steps, cosine), the APR stage's first 10000 steps were
in the copied-answer format, and SoS+ had 4000 steps, not 13000. Measured on those pieces: APR
7.8% vs SoS+ 0.0% at cap 768 (128 problems); RL below.
Its child stage in today's format, from scratch, as one run (MEASURED 2026-12-06, another
machine of the same kind, 2 cores alone; /tmp/s17/child.py: the preset's child rows, 10000
steps with their own schedule, 21.7 min at ~7.7 steps/s): loss 0.029; greedy on the children
of 128 validation problems (`apr.child_accuracy`, 512 children, 32% of their pools solvable):
27.7% of the solvable pools solved, false goals 4.3%. The older-format child solved 1 / 6 / 10
of 89 (1-11%) at 12000 / 18000 / 24000 steps: with pair goals a child is one expansion and
learns in well under half the steps, so the preset's 24000 child steps are more than it needs.
Then 8000 steps of APR rows from that child (/tmp/s17/aprstage.py: parent rows x4, named
answers, their own schedule; 25.7 min at ~5.2 steps/s, loss ~0.05-0.08): APR 14 of 128
validation problems (10.9%) at cap 768, greedy (3.75 children, 2.85 rounds, 1624 tokens over
all threads, 871 sequential; 119 end on <eos>, 7 cut by the cap, 2 malformed); its children
from exact pools solve 49.4% of the solvable ones (false goals 7.6%). So ~48 min of SFT as one
path beats the pieced 37000-step model (7.8%).
The whole preset as one run (MEASURED 2026-12-06, `python -m experiments.apr --config
experiments/configs/apr.py:staged --workdir W --resume` with W/child and W/apr copied from the
two runs above, so it trained SoS+ 8000 steps from the same child (1:08 h at ~1.9 steps/s beside
a GRPO probe; ~3.7 alone), then the sweeps, GRPO and its sweep; 2 cores shared with the probes
below): 1866 of the 3000 SoS+ rows are cut at 768. Greedy, 128 validation problems, per-thread
cap 512 / 640 / 768: SoS+ 0.000 / 0.008 / 0.016 (487 / 601 / 699 tokens), APR 0.008 / 0.070 /
0.109 (903 / 1555 / 1624 tokens over all threads); APR at cap 768 under a total budget of 512 /
768 / 1024 tokens: 0.000 / 0.008 / 0.094. So at the same per-thread cap APR-SFT beats SoS+-SFT
(0.109 vs 0.016 at 768, same child, same steps); at matched total tokens (~700-750) both are
near 0, and APR turns its extra total tokens into accuracy where SoS+ cannot spend them (its
one thread is capped). GRPO (20 steps, 4 of 16 prompts x 4 rollouts kept, temperature 1, lr
5e-5): held-out 0.109 -> 0.086 -> 0.078 at steps 0 / 10 / 20; after it 0.000 / 0.055 / 0.078 at caps
512 / 640 / 768 and 0.000 / 0.000 / 0.055 at totals 512 / 768 / 1024; results.json: APR gain
over SoS+ +0.094 +- 0.060 (95%, paired), apr_rl over APR -0.031 +- 0.038; children from exact
pools 49.4% -> 48.8% of the solvable (false goals 7.6% -> 7.4%).
Plots: W/accuracy_vs_tokens.png (accuracy vs total and vs sequential tokens, each model).
GRPO probes from the same APR model (/tmp/s18/rl.py, rl2.py: 4 of 16 prompts x 4 rollouts
kept per step, `eval_every=10`, 128 validation problems, greedy; ~55-90 s per step beside the
run above): lr 1e-4, temperature 1: 0.109 / 0.055 / 0.102 / 0.055 at steps 0 / 10 / 20 / 30
(stopped); lr 1e-4, temperature 0.5 (kept-group reward 0.31 -> 0.38, zero-variance share ~0.2
against ~0.5 at temperature 1): 0.109 / 0.078 / 0.070 / 0.063 / 0.070 at steps 0-40. Sampled
at temperature 1 the SFT model solves 2 / 3 of 128 validation problems (seeds 1 / 2; greedy 14):
at temperature 1 the policy RL improves is far from the greedy one evaluated. At temperature
0.5 the SFT model solves 11 of 128 (seed 1), and after those 40 steps again 11: the sampled
policy RL trains did not improve on held-out problems either.
The training rows reproduce the decode contexts: greedy rollouts of 16 validation problems,
26322 decoded ids, the trainer's argmax equals the decoded id at every one (/tmp/s18/gap.py).
The same SFT run's step-7000 checkpoint scores 0.055 greedily (7 of 128; /tmp/s18/nb.py): models
a few hundred updates apart differ by as much as RL moved this one, so 0.109 is likely a high
draw of the neighbourhood and the RL drops partly a return to it; either way RL does not raise
it. So every RL setting tried lowers the greedy held-out accuracy; what limits it, as far as
measured: at most 4 groups with varied rewards per step (16 rollouts kept of 64 drawn), the
paper 64 x 5 rollouts per step, on a 2-layer d=64 model whose greedy path is fragile.
Preset "rl" (RL MEASURED 2026-12-06; TARGET NOT REACHED): the staged preset's SFT, then GRPO with 8x
the rollouts kept per step, 512 validation problems (the preset's 128 give +- ~0.05 on a paired
difference). Run: `python -m experiments.apr --config experiments/configs/apr.py:rl --workdir W
--resume` (W/child, W/apr, W/sos of a staged run are reused; its RL is what was measured, through
`apr.reinforce` with these settings from the staged APR model, /tmp/s19/rl3.py; the sweeps at 512
problems were not run: ~4 min per budget and model here, so ~2.5 h after the staged SFT, ~4.5 h from
scratch). GRPO: 16 prompts x 8 rollouts per step, all kept (`oversample=1`), temperature 0.5
(sampled at 1 the SFT model solves 2% against 10.5% greedy; at 0.5 the training reward is 0.09), lr
1e-4 (cosine to 0), k3 KL to the SFT model at 0.001, `accum_steps=4` (a step's ~600 thread rows were
then padded to 1024 x 768, now to 768 x 768; one pass over the 2048 rows of 32 prompts x 8 asked
for 44 GB); 30 steps, ~108 s per step on 2 cores alone, 70 min with the evaluations (before
`decode_chunk`, below). Held-out greedy accuracy at cap 768 (512
problems): 0.105 / 0.107 / 0.100 / 0.098 at steps 0 / 10 / 20 / 30 (54 / 55 / 51 / 50 solved; step
30 against 0, paired: -0.008 +- 0.021, /tmp/s19/paired.py); training reward 0.091 / 0.093 / 0.091
over steps 1-10 / 11-20 / 21-30; KL to the SFT model at most 1.1e-5 per token; 3.6 children, 2.8
rounds and ~1530 tokens per rollout throughout. With lr 2e-5 (same batch, stopped at step 16): 0.105
-> 0.102 at step 10, KL 3e-7. So with enough rollouts per step RL no longer lowers the accuracy (the
smaller-batch probes above fell to 0.055-0.078 on 128 problems), but it does not raise it: the
policy hardly moves (the SFT model's entropy is ~0.02 per token, and a rollout's advantage is spread
over ~1500 tokens of 4-5 threads), and the reward it sees stays flat.
Since then (2026-12-06, /tmp/s20): with `decode_chunk=256` (`apr.Config`; 256 new tokens per
decode call, the few threads still running re-prefilled) the 128 rollouts of an RL step decode
in 23.7 s instead of 62.3 s (2.6x; staged APR model, 128 training problems, the second of two
runs each, /tmp/s20/prof.py) and the greedy evaluation of 512 problems takes 86.5 s instead of
265 s (3.1x) with the same outcome on every problem (/tmp/s20/evalchunk.py); a GRPO step of
the preset now takes ~60 s. Three more settings from the same SFT model, each as the preset
but: (a) positive-only advantages at lr 3e-4: training reward 0.023 / 0.156 / 0.016 / 0.008 /
0.008 at steps 4-8, where the preset's run drew 0.086 / 0.172 / 0.047 / 0.063 / 0.086 on the
same prompts with the same keys (the two agree at steps 1-3, before the policies part;
stopped at step 8); (b) 60 steps (cosine over 60): reward 0.102 / 0.081 over steps 1-10 /
11-20, held-out 0.105 -> 0.086 at step 20 (stopped at step 22); (c) dynamic sampling, 64
prompts x 8 drawn and the 16 groups whose rewards vary kept (`oversample=4`: zero-variance
share 0, against ~0.7 in the preset's batches; ~2 min per step), 24 steps: kept-group
reward 0.301 / 0.293 / 0.299 over steps 1-8 / 9-16 / 17-24, KL at most 4.8e-6 per token,
held-out 0.105 / 0.100 / 0.104 / 0.104 at steps 0 / 8 / 16 / 24 (54 / 51 / 53 / 53 of 512; step
24 against 0, paired: -0.002 +- 0.025; 55 min). So neither more steps, nor every kept group
informative, nor positive-only advantages raise it: at lr 1e-4 the policy barely moves (Adam's
update norm falls from 0.032 to ~0.005 per step as its second moments fill) and at 3e-4 (a) it
moves the wrong way within five steps.
Then (2026-12-06, /tmp/s21): the rows are what the sampler saw (greedy rollouts of 32 training
problems: the teacher-forced argmax equals the row's token at all 50869 trained positions,
align.py); lr 2e-4 with 3 warmup steps, otherwise as (c): held-out 0.105 / 0.104 / 0.088 at
steps 0 / 8 / 16 (stopped at 17). The policy does move, and not like a random step: (c)'s 24
steps (parameter change 0.13 in norm, params 85) flip ~43 of the 512 held-out outcomes (from
its paired +- 0.025), both ways, where random directions with the same per-tensor norms
flip 5 (x1, two draws) and 9-13 (x2) (perturb.py); on the 1206 training problems those steps
drew it is 0.116 -> 0.124 (+0.008 +- 0.014; 43 up, 33 down; trainset.py). So each run's change
is mostly the noise of its policy gradient (~16 informative groups a step) on decision-relevant
weights, not a gain the held-out problems miss. When noise dominates each step, Adam's step has
a fixed size, so the signal-to-noise ratio of the total change grows as the square root of the
rollouts trained, whatever the learning rate: our runs train ~3000 rollouts, the paper's 48000.
How noisy: the gradients of four independent batches of (c) at the SFT model (64 prompts x 8
drawn, 16 varying groups kept; /tmp/s21/gradcos.py) have norms 0.047-0.086 and pairwise cosines
-0.11 to +0.10, mean 0.012 (+- 0.063 at two standard errors of the six pairs, which share
batches): the signal is ~1% of a step's squared gradient (under 7.5%), a per-step
signal-to-noise ratio of ~0.1, so 24 steps reach ~0.5 and even 150 steps only ~1.3; a step would
need ~1300 varying groups (at least ~200) for a ratio of 1, where the paper's steps hold 64
groups of a 75% accurate model. Runs since log the same per step: with accum_steps > 1 the
trainer writes grad_signal_sq and grad_noise_sq (`jaxlm.train.gradient_noise`; average each over
steps, then divide for the noise scale in batches).
Preset "rl_long" (RL MEASURED 2026-12-06/07; TARGET MET: held-out +0.022 +- 0.010 at step 150, 4448
problems): "rl" with dynamic sampling as (c) (`oversample=4`: 64 prompts x 8 drawn, the 16 groups
whose rewards vary first kept), 3 warmup steps, cosine over 150 steps, held-out every 25. Run:
`python -m experiments.apr --config experiments/configs/apr.py:rl_long --workdir W --resume`
(W/child, W/apr, W/sos of a staged run reused; what was measured is its RL, through
`apr.reinforce` from the staged APR model: `rl4.py /tmp/s21/L150 steps=150 lr=1e-4 warmup=3
kl=0.001 batch=128 group=8 over=4 mode=full every=25 temp=0.5 nval=512 accum=4`, /tmp/s21-s23);
~85 s a step alone, so ~3.5 h for the 150 steps and their evaluations. Held-out accuracy (greedy,
cap 768, the run's 512 validation problems): 0.105 / 0.115 / 0.131 / 0.135 / 0.127 / 0.129 / 0.139
at steps 0 / 25 / 50 / 75 / 100 / 125 / 150 (54 / 59 / 67 / 69 / 65 / 66 / 71 solved). The test,
fixed before step 150 existed: the final policy against the SFT model, paired per problem over
4448 problems no training saw, the 3711 training-split problems outside the 3000 SFT / RL problems
(the split holds 6711 at this size) and all 737 validation problems: 0.093 -> 0.115, +0.022 +-
0.010 (95%; 279 problems gained, 183 lost, sign test p = 1e-5); on the unseen training-split
problems alone +0.021 +- 0.010 (3711), on validation +0.023 +- 0.023 (737; /tmp/s23/combine.py).
Earlier looks on the 737: step 75 +0.024 +- 0.023, step 100 +0.014 +- 0.023. So RL raises APR's
held-out accuracy by ~2 points (a quarter of its accuracy), slowly: the run's gradient noise
measurements (trainer's grad_signal_sq / grad_noise_sq, averaged over steps 36-150: ~1.2e-4 /
4.9e-3) give a signal share of ~2.5% a step. The drawn groups' training reward (temperature 0.5,
512 rollouts a step) rose a little, 0.102 / 0.106 / 0.116 / 0.110 over steps 36-71 / 72-100 /
101-125 / 126-150, the kept groups' 0.30 -> 0.35; ~69% of drawn groups had zero variance
throughout; KL to the SFT model ~1.5e-5 per token. Steps ran ~85 s from step 36 on (~170 s
before): rollouts decode ~2x faster since the KV cache holds values transposed
(`jaxlm.models.transformer._cache_write`), and rollouts are ~75% of a step (`rollout_s`). Runs now
log the paired gain at each evaluation (`eval/gain`, `eval/gain_ci95`: `pg.paired_evaluation`).
For the next runs, `pg.Config.prompt_filter="greso"` with `adaptive_oversample=True` skips
prompts whose last groups had zero variance and draws fewer: untried on APR.
Preset "paper" (ACCELERATOR ONLY; never run here; the settings of Pan et al. 2025, App. A.2,
and of the authors' scripts): Countdown with 4 numbers from 1..99 and targets 10..100, 500k
training problems, 1000 validation problems; both formats SFT'd from scratch on the 228M
LLaMA-2 model (`PAPER_MODEL`) for 19k steps of 256 rows at lr 5e-5 (AdamW, weight decay
0.01, clip 1.0), context 4096; APR spawns up to 10 children; GRPO 150 steps of 64 prompts x
5 rollouts, lr 1e-5, clip 0.2, KL 0.001 (k3, in the loss), two updates per batch, greedy
evaluation, total-token budgets up to 20k. Differences from the paper: our tokens are
characters (their LLaMA-2 tokenizer splits digits, so lengths are comparable but not equal),
our own search grammar and heuristic (theirs: SoS+ with random beam sizes 1-5, APR with beam
10 and sub-call beam 15, the multiply heuristic), no length or child-count conditioning.
Their results at this scale: SoS+ 57.3% -> 60.0% after RL, APR 75.5% -> 83.4% (4k context).
Host cost before any step: `countdown.generate` (pure-Python solver) made 2000 such problems in
116 s here beside another job and 300 in 3.3 s alone (11 ms each; 86% of the draws have no
solution and cost a full search, /tmp/s13/gen_prof.py), so the 500k problems take ~1.5 h of
one core: build them once. The
symbolic searches themselves at this scale (200 training problems; a rollout counts when it
solves and every thread fits the cap): SoS+ (1000 nodes; median row 1485 characters) 26.5% /
62.5% / 97.5% at caps 1024 / 2048 / 4096, APR (10 children of <= 20 nodes; parent median 964)
82.5% / 85.5% / 85.5%: our grammar is terser than the paper's, so the contrast lives at the
smaller caps of `caps`.

Where the child fails (2026-12-05; `apr.child_accuracy`, which decodes the children of the
symbolic parent from their exact pools; scripts /tmp/s8/child.py, child_c.py, 64 validation
problems, 256 children, 35% of their pools solvable): the step-2400 APR model solves 0 of 89
solvable pools (greedy). Reading them: every edge's arithmetic is right, but every two-number
pool is labelled "x" (unreachable), also the one that reaches the target, so the search never
opens the winning pool. Only 7.8% of the two-number edges in the child rows are open (h=0), and
deciding one needs the pool's four results compared with the target. Continued SFT from step
2400 did not change it: 1000 more steps with each child row 3 times and one parent row (loss
0.027 - 0.08): 0 of 89 and APR accuracy still 0.000; then children only, 600 steps with the
pool's results written on the edge ("[1 14] = 15 13 14 14 x"): the model writes 15 and still
"x", 0 of 89; 500 more with the target copied beside them ("= 15 13 14 14 vs 15 x"): 0 of 89;
500 with the results' least distance to the target before the label ("= 15 13 14 14 h=1 x",
should be h=0): 1 of 89; 1500 more of that grammar (loss 0.043): 6 of 89 (false goals on 3%
of the unsolvable pools), and the winning pool is now labelled "h=0 #1", but the expansion
that follows copies the wrong pool for node #1 ("#1 [14 14]") and slips in its arithmetic
("14+14=26 -> [26] goal"); 1500 more (loss 0.046): 10 of 89 (false goals 1.2%), the label
right but sometimes followed by "dead end". So the 2-layer d=64 character model computes the
results but learns only slowly to detect the one equal to the target (a 92% prior for "x")
and then to fetch a node's pool by its id; the least-distance grammar is the one that moved,
slowly. It is now the library's "results" grammar (`countdown_search.format_edge` with a
target; `apr.Config.grammar="results"`,
on in the default: "[2 12] = 14 10 24 6 h=0 #20", "[2 30] = 32 28 60 15 h=4 x"); the others
stayed experiments.

Why the child never labels the winning pool (2026-12-05; child rows alone, 12000 rows of the 3000
training problems, from scratch, the default's 2-layer d=64 one-head model, 16 rows x 768 per
step at lr 3e-3, then `apr.child_accuracy` on 64 validation problems: 256 children, 89 of them
from solvable pools; scripts /tmp/s13/numprobe.py, short.py, childwarm.py). Every variant below
solved 0 of the 89:
- number tokens (each number <= 999 one token, 1048 ids; rows 360 tokens instead of 413), 2000
  steps: false goals 5%; arithmetic and pool copies worse than with characters at that step.
- a "marks" grammar (each result equal to the target marked with ".", no distance: "[7 8] =
  15. 1 56 #1"), 2000 steps: the model never writes a mark ("[3 7] = 10 4 21 x" for target 10).
- the target restated next to the results ("[7 8] to 15: 15 1 56 x"), 3000 steps (loss 0.05): it
  copies the target right on every line and still never marks a result equal to it; so neither
  the distance to the header nor the tokenisation is the obstacle.
- the comparison alone is learnable: rows of one header and one such edge line (105968 rows, 64
  per step, 12 steps/s) reach, greedily on 2262 validation lines (196 with a mark), recall 0.41
  of the marks with 1% false marks after 6000 steps and 0.86 with 0.5% after 12000 (whole line
  exact 96%). But 2000 steps of child rows from that start (loss 0.036, against 0.125 from
  scratch) again write no mark in the long rows.
- the marks grammar with 8x loss weight on each decision character (the one after every result,
  mark or not, and the label: 472787 of the ~4.2M trained characters), 3000 steps (15 min, loss
  0.13): 0 of 89, false goals 0.8%, still no mark ("[7 8] = 15 1 56 x" for target 15).
- child rows mixed 1:1 with such one-line rows (label cut), 4000 steps (10 min): 0 of 89, false
  goals 5.5%; no mark, and the children now often skip their root line (the one-line rows
  have none).
So the decisive characters are too rare in a child row (one mark in ~400 characters; 8% of the
two-number lines have one) for this model to leave its "never mark" prior in these step counts;
where a line is most of the loss it learns them.
How far the model is from marking (2026-12-06; /tmp/s14/focus.py): the mean probability of the
mark under teacher forcing, on the child rows of the 64 validation problems (208 result ends that
take a mark, 7415 that do not; greedy writes a mark only above ~0.5):
- the 8x-weighted model above (3000 steps): 0.136 at the marks, 0.028 elsewhere: it sees the match
  (5x), far too weakly. Trained on to 6000 steps: 0.166 / 0.017; then it turns: at 12000 (38
  more min, loss 0.02) 0.765 / 0.003 (78% of the marks above 0.5), and greedily the child now
  marks the winning pool ("[1 14] = 15. 13 14 14 #1") on most solvable pools. It still solves
  only 1 of 89 (false goals 19.5%): the node it opens is not the marked line's pool ("#1 [1 16]"
  for [1 14]) and the last operation is not the marked one ("16+1=17 -> [17] goal"). At 18000
  (36 min more, loss 0.008): 0.975 / 0.001, the opened pool now mostly right ("#1 [1 14] h=0 /
  14+1=15 -> [15] goal"), 6 of 89 solved, false goals 32%: the answer lines copy the wrong
  first operation ("7-7=0" for the line "7/7=1 -> [1 14] = 15. ... #1"), and some opened pools
  are still wrong ("#1 [3 9]" for [3 7]): fetching a line by its node id, the failure the
  policy preset showed in the parent, is what is left. At 24000 (24 min more, loss 0.007):
  0.976 / 0.0002, 10 of 89 solved, false goals 30%: solved pools 0 / 1 / 6 / 10 of 89 at 6000
  / 12000 / 18000 / 24000 steps, still rising.
- 1500 steps on from it with the loss on the decision characters only (0.02 on the rest): 0.099 /
  0.012, 0 of 89. The other characters' loss is not what holds it back.
- learned absolute positions instead of rotary ones (the target then sits at a fixed position of
  every row; marks grammar, from scratch, 3000 steps): 0.071 / 0.027, 0 of 89, false goals 0.
So the comparison with the target is learned in long rows, after a plateau: 3000 steps hardly
move it (0.136 -> 0.166), the next 6000 do. The probes before stopped on that plateau; the copy
of a line by its id seems to follow the same course, later.
The whole APR model from that child (2026-12-06; /tmp/s15/aprfull.py): 8000 more steps from the
24000-step child on the APR rows (parent rows x4, children in the marks grammar, 8x decision
weight; 42 min, loss ~0.01-0.08): the child fell to 3 of 89 (half the rows are parents now) and
APR scored 0.000 at cap 768 (64 validation problems: 3.75 children and 2.9 rounds per rollout,
58 of 64 end on <eos>). Read greedily: a child marks the right line ("[4 5] = 9 1 20. #1") and
opens a wrong pool ("#1 [1 12]"); the parent, given "#6 goal 4+1=5 12+1=13", answers with
unrelated steps (its answer needs the step of edge #6, fetched by id). Every failure left is a
fetch by node id, so the format now avoids them (`pair_goals`, the "marks" grammar, full-path
joins; the library since 2026-12-06):
- a search stops at the first two-number pool one operation from the target ("[4 5] = 9 1 20.
  goal", then "Answer:", that line's step and the final one), so a child never opens a node
  (a child is one expansion);
- the join writes each goal child's full path, the spawned edge's step first ("#6 goal 5-4=1
  4+1=5 5*4=20"), so the parent's answer copies its first goal line.
The symbolic searches in this format (300 training problems, /tmp/s15/sym2.py): SoS+ (median row
1012 characters) 9% / 25% / 35% at caps 512 / 640 / 768, APR (parent median 607, child 337) 11% /
46% / 75%; the "results" grammar without pair goals: 0% / 3% / 8% vs 11% / 46% / 75%.
The probe (/tmp/s15/goal.py; its texts equal the library's on 300 problems): the 24000-step
marks child, then 4000 steps on the APR rows in this format (parent rows x4, 8x decision weight,
22 min): the child solves 30 of 89 solvable pools (from 10; false goals 24.6%), APR still 0.000
at cap 768. Read greedily, the parent is what fails now (4000 steps of parent rows, against
8000 above): wrong pools in its root expansion ("7+3=10 -> [4 9 10]" from [1 3 7 8]), h values
that do not rank the pools, the same id spawned twice, and an answer that starts to copy its
goal line ("7+7=14" right, then "7-7=1").
6000 more steps of the same rows through the library (/tmp/s15/cont.py; 41 min, loss ~0.01-0.08):
the child solves 41 of 89 (46%; false goals 21.5%), APR still 0.000 at caps 768 and 640 (3.75
children and 2.9 rounds per rollout at 768; at 640, 26 of 64 rollouts cut by the cap). Read
greedily (/tmp/s15/readG.py, 8 problems): the parent spawns the same id two or three times
("#10 #10 #6 #7"), and given a goal line ("#6 goal 8+1=9 9/3=3 5*3=15") still answers with steps
of its own ("8+3=11 / 2+1=3 / 12+1=13") instead of copying it; some children miscopy their pool
("Goal 15 from [7 7 49]" then "#0 [7 7 4 9]") and some goal paths they report are false. So with
10000 steps of parent rows the parent has learnt neither to rank and pick distinct children nor
to copy its goal line. Next: weight the parent's decisions (its spawn ids, its answer) as
`decision_weight` does the child's, or 4 heads for the copy; then GRPO (`apr.reinforce`) once the
greedy accuracy leaves 0: 20 GRPO steps on this model (4 prompts x 4 rollouts at temperature 1,
lr 1e-4; 8 min, /tmp/s15/rl2.py) saw reward 0 at every logged step (grad_norm 0).
Why the parent scored 0 (2026-12-06; /tmp/s16/tf.py, teacher-forced argmax accuracy per
character of the parent rows of 64 training and 64 validation problems under that 34000-step
model): root steps 99.6%, root pools 99.6%, h 95%, spawned ids 86%, and its answer 85% (the
same on training and validation problems: nothing memorised), so 0 of 49 validation answers
right in full even under teacher forcing. In the answer, the first character (which goal line)
is 82% right, a character after a line break 53%, the others 80%: the model recomputes steps
("7+7=2" for the join's "7/7=1") instead of copying them. So a parent now names the child whose
path it takes ("Answer: #6"; `countdown_traces.answer_text` gives the verifier that child's
join line) and the spawned ids and that id weigh `decision_weight` too (library since
2026-12-06). The child writes its own answer as before; SoS+ writes its whole path (the steps
of its path's expansions, fetched by id): an asymmetry of the formats, kept in the reading
below.
3000 more steps on these rows (/tmp/s15/cont.py /tmp/s15/G2 /tmp/s16/R1 37000; 16.5 min, loss
0.01-0.17): the child solves 43 of 89 (48%; false goals 17.6%) and APR leaves 0 for the first
time: 4 / 3 / 1 of 64 validation problems at caps 768 / 640 / 512 (6.2% / 4.7% / 1.6%; 3.9
children and 2.9 rounds per rollout at 768, 63 of 64 end on <eos>), 10 of 128 (7.8%) at 768.
GRPO on it (/tmp/s16/rl3.py: 4 prompts x 4 rollouts kept of 16 x 4 drawn (`oversample=4`),
temperature 1, lr 3e-4; ~55 s per step): reward in the kept groups 0.125 at step 5, 0 at steps
10-25 (every group zero-variance), held-out accuracy 0.078 -> 0.000 at step 15 (128 problems):
the rare successes did not hold the policy, it drifted off its SFT behaviour (entropy 0.07 ->
0.10). Stopped at step 27.
SoS+ from the same 24000-step marks child, 4000 steps on the SoS+ rows of this format (one row
per problem, median 1012 characters, cut at 768; /tmp/s16/sos.py /tmp/s14/fL S1 28000; 30 min,
loss 0.07): 0 of 128 at caps 768 / 640 / 512 (96 / 111 / 119 of 128 rollouts cut by the cap).
Read greedily (/tmp/s16/readS.py, 32 problems): 22 cut by the cap, 10 end on a goal line with
an answer, but their searches already hold wrong pools ("#10 [6 7 16]" from [2 6 7 9]) and
their answers do not copy the path (the fetch by id the APR parent no longer needs). So at cap
768 on the same 128 validation problems: APR-SFT 10 (7.8%) vs SoS+-SFT 0, paired gain +0.078
+- 0.047 (95%). Not matched: after the shared child, APR had 13000 steps (~73M characters; its
first 10000 in the copied-answer format), SoS+ 4000 (~45M); and SoS+ still writes its path
where APR's parent names a child (a named SoS+ answer, read off its trace, is the symmetric
next step).
GRPO again at lr 5e-5 (/tmp/s16/rl3.py /tmp/s16/R1 37000 20 5e-5; 20 steps, 24 min): reward in
the kept groups 0.06 / 0.06 / 0.125 / 0 at steps 5 / 10 / 15 / 20 (half to all of the groups
zero-variance), held-out accuracy 0.078 -> 0.055 -> 0.039 at steps 0 / 10 / 20 (128 problems):
RL does not raise it yet. What limits it: one success in ~16 rollouts (7.8% greedy, entropy
0.05), so few groups carry a gradient and the ones that do are dominated by negative
advantages on near-greedy rollouts. Positive-only advantages (`advantage_mode="positive_only"`,
same settings, /tmp/s16/rl5.py; 24 min): reward 0.125 / 0.125 / 0.06 / 0 at steps 5 / 10 / 15 /
20, held-out 0.078 -> 0.055 -> 0.070 (10 / 7 / 9 of 128): no gain either, within noise. Not
tried: a KL to the SFT model (`kl_coef`), more SFT first, many more RL steps.
"""

from jaxlm import config as config_lib
from jaxlm.algos import apr
from jaxlm.models import transformer

PRESETS = (None, "long", "policy", "staged", "rl", "rl_long", "paper", "smoke")

# The APR paper's model (Pan et al. 2025, App. A.2 and the authors' "200m" training config):
# LLaMA-2 architecture from scratch, 18 layers, width 1024, 16 heads, SwiGLU width 2752;
# 227.7M parameters besides the embeddings (their 32k-token vocabulary makes it 293M in all,
# ours has ~60 characters).
_PAPER = transformer.llama_config(d_model=1024, n_layers=18, n_heads=16, d_ff=2752)
PAPER_MODEL = {f: getattr(_PAPER, f) for f in (
    "d_model", "n_layers", "n_heads", "d_ff", "norm", "norm_eps", "pos", "mlp",
    "tie_embeddings", "qkv_bias", "proj_bias")}


def get_config(arg: str | None = None):
  """Every field of `jaxlm.algos.apr.Config`, then preset `arg`."""
  c = config_lib.config_dict(apr.Config())
  c.countdown.update(num_numbers=(4,), max_number=9, min_target=10, max_target=30,
                     train_problems=3000, eval_problems=128)
  c.countdown.model.update(n_heads=4)
  c.countdown.update(trace_init="policy")  # both formats start from the direct-answer policy
  c.countdown.policy.update(num_steps=2000, batch_size=64, lr=3e-3, log_every=250,
                            checkpoint_every=1000)
  c.countdown.trace_policy.update(num_steps=500, batch_size=16, lr=3e-3, warmup=50,
                                  log_every=50, checkpoint_every=250)
  c.rl.sampling.update(temperature=1.0)
  c.rl.train.update(num_steps=30, batch_size=16, lr=1e-4, warmup=0, log_every=5,
                    checkpoint_every=10)
  c.rl.update(group_size=4, estimator="grpo", aggregation="token_mean", minibatches=1,
              eval_every=10)
  if arg in (None, "", "default"):  # <= 30 min on 2 cores, see above
    c.countdown.model.update(n_heads=1)  # 3x faster SFT steps at 768 characters than 4 heads
    c.countdown.policy.update(num_steps=1500)
    c.update(parent_repeats=4, apr_sft_steps=800, grammar="results", eval_problems=64)
    c.rl.train.update(num_steps=10)
  elif arg == "long":  # the default's model and data, 10x the SFT steps (measured: still 0.000)
    c = get_config(None)
    c.countdown.trace_policy.update(num_steps=5000, log_every=100, checkpoint_every=250)
    c.update(apr_sft_steps=6000)
    c.rl.train.update(num_steps=30)
  elif arg == "policy":  # both formats start from the direct-answer policy (4 heads)
    c.countdown.policy.update(num_steps=3000)
    c.countdown.trace_policy.update(num_steps=1500, log_every=100, checkpoint_every=250)
    c.update(parent_repeats=4, apr_sft_steps=2400)  # APR on SoS+'s SFT compute, see above
  elif arg == "staged":  # child, APR and SoS+ SFT, sweeps and GRPO (measured, see above)
    c = get_config(None)
    c.countdown.update(trace_init="scratch")
    c.countdown.trace_policy.update(num_steps=8_000, log_every=100, checkpoint_every=500)
    c.update(grammar="marks", pair_goals=True, decision_weight=8.0, child_sft_steps=10_000,
             apr_sft_steps=8_000, eval_problems=128)
    c.rl.update(oversample=4, eval_every=10)
    c.rl.train.update(num_steps=20, lr=5e-5)
  elif arg == "rl":  # staged's SFT, then GRPO on 16 prompts x 8 rollouts, 512 problems (below)
    c = get_config("staged")
    c.countdown.update(eval_problems=512)
    c.update(eval_problems=512)
    c.rl.sampling.update(temperature=0.5)
    c.rl.update(group_size=8, oversample=1, kl_coef=0.001, kl_estimator="k3", eval_every=10)
    c.rl.train.update(num_steps=30, batch_size=128, accum_steps=4, lr=1e-4, checkpoint_every=5)
  elif arg == "rl_long":  # staged's SFT, then 150 GRPO steps keeping 16 varying groups (below)
    c = get_config("rl")
    c.rl.update(oversample=4, eval_every=25)
    c.rl.train.update(num_steps=150, warmup=3)
  elif arg == "paper":  # ACCELERATOR ONLY (not run here): the paper's scale, see below
    c.countdown.update(max_number=99, min_target=10, max_target=100, train_problems=500_000,
                       eval_problems=1000, trace_init="scratch")
    c.countdown.model.update(**PAPER_MODEL)
    c.countdown.trace_policy.update(num_steps=19_000, batch_size=256, lr=5e-5, warmup=1,
                                    weight_decay=0.01, clip=1.0, log_every=100,
                                    checkpoint_every=1000)
    c.update(context=4096, caps=(1024, 2048, 4096), total_budgets=(4096, 10_240, 20_480),
             max_children=10, sos_expansions=1000, eval_problems=1000,
             length_buckets=(1024, 2048, 4096))
    c.rl.train.update(num_steps=150, batch_size=320, lr=1e-5, clip=1.0, log_every=5,
                      checkpoint_every=25)  # 64 prompts x 5 rollouts
    c.rl.update(group_size=5, minibatches=2, clip_low=0.2, clip_high=0.2, kl_coef=0.001,
                kl_estimator="k3", eval_every=25)
  elif arg == "smoke":
    c.countdown.update(train_problems=16, eval_problems=8, trace_init="policy")
    c.countdown.model.update(d_model=32, d_ff=64, n_heads=2)
    for run in (c.countdown.policy, c.countdown.trace_policy):
      run.update(num_steps=3, batch_size=8, log_every=1, checkpoint_every=100)
    c.rl.train.update(num_steps=2, batch_size=8, log_every=1, checkpoint_every=100)
    c.rl.update(group_size=2, eval_every=0)
    c.update(context=96, caps=(64, 96), total_budgets=(128,), max_rounds=3, eval_problems=4,
             child_expansions=2, max_children=2, sos_expansions=3, child_sft_steps=2)
  else:
    raise ValueError(f"unknown APR preset {arg!r}; expected one of {PRESETS}")
  return c
