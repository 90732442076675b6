"""Tests for jaxlm.envs.countdown_traces: SoS+ and APR traces, parsers, join context."""

from absl.testing import absltest
from absl.testing import parameterized

from jaxlm.envs import countdown as cd
from jaxlm.envs import countdown_search as cs
from jaxlm.envs import countdown_data as cdd
from jaxlm.envs import countdown_traces as ct

# Target 12 from 1 1 1 4, max_children=2, child_expansions=2. The root's open children sort by
# (h, size, id): #4 (h=7) then #1 (h=8, first of the h=8 ties). #4 = [1 1 5] has no child that
# can still reach 12 (a dead end); #1 = [1 2 4] reaches it via 2+1=3, 4*3=12.
FIXTURE_PROBLEM = cd.Problem((1, 1, 1, 4), 12)
FIXTURE_PARENT = """Goal 12 from [1 1 1 4]
#0 [1 1 1 4] h=8
  1+1=2 -> [1 2 4] h=8 #1
  1-1=0 -> [0 1 4] h=8 #2
  1*1=1 -> [1 1 4] h=8 #3
  4+1=5 -> [1 1 5] h=7 #4
  4-1=3 -> [1 1 3] h=9 #5
spawn
  #4
  #1
|
join
  #4 no solution
  #1 goal 1+1=2 2+1=3 4*3=12
Answer: #1"""
FIXTURE_CHILDREN = ("""Goal 12 from [1 1 5]
#0 [1 1 5] h=7
  1+1=2 -> [2 5] x
  1-1=0 -> [0 5] x
  1*1=1 -> [1 5] x
  5+1=6 -> [1 6] x
  5-1=4 -> [1 4] x
  dead end
No solution after 1 nodes.""", """Goal 12 from [1 2 4]
#0 [1 2 4] h=8
  2+1=3 -> [3 4] h=0 #1
  2-1=1 -> [1 4] x
  2*1=2 -> [2 4] x
  4+1=5 -> [2 5] x
  4-1=3 -> [2 3] x
  4+2=6 -> [1 6] x
  4-2=2 -> [1 2] x
  4*2=8 -> [1 8] x
#1 [3 4] h=0
  4*3=12 -> [12] goal
Answer:
2+1=3
4*3=12""")

# FIXTURE_CHILDREN[1] in the "results" grammar, by hand: each two-number pool's results in
# + - * / order (/ only when exact) and their least distance to 12.
FIXTURE_RESULTS_CHILD = """Goal 12 from [1 2 4]
#0 [1 2 4] h=8
  2+1=3 -> [3 4] = 7 1 12 h=0 #1
  2-1=1 -> [1 4] = 5 3 4 4 h=7 x
  2*1=2 -> [2 4] = 6 2 8 2 h=4 x
  4+1=5 -> [2 5] = 7 3 10 h=2 x
  4-1=3 -> [2 3] = 5 1 6 h=6 x
  4+2=6 -> [1 6] = 7 5 6 6 h=5 x
  4-2=2 -> [1 2] = 3 1 2 2 h=9 x
  4*2=8 -> [1 8] = 9 7 8 8 h=3 x
#1 [3 4] h=0
  4*3=12 -> [12] goal
Answer:
2+1=3
4*3=12"""


def problems(count=12, seed=5):
  """Solvable problems with 3 and 4 starting numbers."""
  return [p for k in (3, 4) for p in cd.generate(cd.CountdownConfig(num_numbers=k), seed, count)]


class SearchTraceTest(parameterized.TestCase):

  @parameterized.parameters(1, 3, 100)
  def test_round_trip(self, max_expansions):
    for p in problems() + [cd.Problem((2, 3), 7), cd.Problem((1, 2, 3), 100)]:
      search = cs.best_first(p.target, p.numbers, max_expansions)
      text = cs.format_search(search)
      self.assertEqual(text, cs.search_trace(p, max_expansions).trace)
      self.assertEqual(ct.parse_search(text), search)
      self.assertEqual(cs.format_search(ct.parse_search(text)), text)
      self.assertLessEqual(set(text), set(cdd.TRACE_ALPHABET))

  @parameterized.parameters(1, 3, 100)
  def test_results_grammar_round_trip(self, max_expansions):
    for p in problems() + [cd.Problem((2, 3), 7), cd.Problem((1, 2, 3), 100)]:
      search = cs.best_first(p.target, p.numbers, max_expansions)
      text = cs.format_search(search, "results")
      self.assertEqual(ct.parse_search(text), search)
      self.assertEqual(cs.format_search(ct.parse_search(text), "results"), text)
      self.assertLessEqual(set(text), set(cdd.TRACE_ALPHABET))
      # Only edges to two-number pools change; the rest of the trace is the plain one.
      plain = cs.format_search(search).splitlines()
      lines = text.splitlines()
      self.assertEqual(len(lines), len(plain))
      for new, old in zip(lines, plain):
        self.assertEqual(new == old, " = " not in new)

  def test_results_grammar_fixture(self):
    trace = ct.apr_trace(FIXTURE_PROBLEM, max_children=2, child_expansions=2)
    parent, children = ct.apr_texts(trace, "results")
    self.assertEqual(parent, FIXTURE_PARENT)  # the root's pools have three numbers
    dead_end = """Goal 12 from [1 1 5]
#0 [1 1 5] h=7
  1+1=2 -> [2 5] = 7 3 10 h=2 x
  1-1=0 -> [0 5] = 5 5 0 h=7 x
  1*1=1 -> [1 5] = 6 4 5 5 h=6 x
  5+1=6 -> [1 6] = 7 5 6 6 h=5 x
  5-1=4 -> [1 4] = 5 3 4 4 h=7 x
  dead end
No solution after 1 nodes."""
    self.assertEqual(children, (dead_end, FIXTURE_RESULTS_CHILD))
    self.assertEqual(ct.parse_apr(parent, children), trace)

  @parameterized.named_parameters(
      ("wrong_result", "  2-1=1 -> [1 4] = 5 3 4 4 h=7 x", "  2-1=1 -> [1 4] = 5 3 5 4 h=7 x"),
      ("missing_result", "  4+1=5 -> [2 5] = 7 3 10 h=2 x", "  4+1=5 -> [2 5] = 7 3 10 2 h=2 x"),
      ("wrong_distance", "  4*2=8 -> [1 8] = 9 7 8 8 h=3 x", "  4*2=8 -> [1 8] = 9 7 8 8 h=4 x"),
      ("reachable_pruned", "  2+1=3 -> [3 4] = 7 1 12 h=0 #1", "  2+1=3 -> [3 4] = 7 1 12 h=0 x"),
      ("unreachable_open", "  2*1=2 -> [2 4] = 6 2 8 2 h=4 x", "  2*1=2 -> [2 4] = 6 2 8 2 h=4 #2"))
  def test_results_grammar_checks_claims(self, line, wrong):
    text = FIXTURE_RESULTS_CHILD.replace(line, wrong)
    number = FIXTURE_RESULTS_CHILD.splitlines().index(line) + 1
    with self.assertRaisesRegex(ValueError, f"line {number}: .* does not state"):
      ct.parse_search(text)

  @parameterized.product(grammar=cs.GRAMMARS, pair_goals=(False, True))
  def test_every_grammar_round_trips(self, grammar, pair_goals):
    for p in problems() + [cd.Problem((2, 3), 7), cd.Problem((1, 2, 3), 100)]:
      search = cs.best_first(p.target, p.numbers, 100, pair_goals=pair_goals)
      text = cs.format_search(search, grammar)
      self.assertEqual(ct.parse_search(text), search)
      self.assertEqual(cs.format_search(ct.parse_search(text), grammar), text)
      self.assertLessEqual(set(text), set(cdd.TRACE_ALPHABET))
      if search.solution is not None:
        self.assertEqual(cd.verify(p, text), (True, "ok"))

  def test_pair_goals_stop_one_step_early(self):
    for p in problems(count=20):
      plain = cs.best_first(p.target, p.numbers, 1000)
      early = cs.best_first(p.target, p.numbers, 1000, pair_goals=True)
      self.assertEqual(early.solution is None, plain.solution is None)  # both searches complete
      self.assertLessEqual(len(early.expansions), len(plain.expansions))
      if early.solution is not None:  # the last edge is a two-number pool one step from goal
        goal = early.expansions[-1].edges[-1]
        self.assertEqual((goal.status, len(goal.pool)), ("goal", 2))
        self.assertEqual(early.solution[-1], cs.final_step(goal.pool, p.target))
    with self.assertRaisesRegex(ValueError, r"no operation takes \[2, 5\] to 12"):
      cs.final_step((2, 5), 12)

  def test_marks_grammar_fixture(self):
    # FIXTURE_CHILDREN[1] with pair goals, in the "marks" grammar, by hand: [3 4] = 7 1 12 (+ - *;
    # 4/3 is not exact) reaches 12 with *, so the search stops on it.
    search = cs.best_first(12, (1, 2, 4), 2, pair_goals=True)
    text = """Goal 12 from [1 2 4]
#0 [1 2 4] h=8
  2+1=3 -> [3 4] = 7 1 12. goal
Answer:
2+1=3
4*3=12"""
    self.assertEqual(cs.format_search(search, "marks"), text)
    self.assertEqual(ct.child_outcome(text), ("2+1=3", "4*3=12"))
    plain = cs.best_first(12, (1, 2, 4), 2)
    self.assertEqual(cs.format_search(plain, "marks").splitlines()[2],
                     "  2+1=3 -> [3 4] = 7 1 12. #1")
    # A pool that misses: no mark anywhere.
    self.assertEqual(cs.format_edge(cs.Edge("2*1=2", (2, 4), "pruned"), 12, "marks"),
                     "  2*1=2 -> [2 4] = 6 2 8 2 x")
    with self.assertRaisesRegex(ValueError, "grammar must be one of"):
      cs.format_search(search, "dots")

  @parameterized.named_parameters(
      ("mark_missing", "= 7 1 12. goal", "= 7 1 12 goal"),
      ("mark_misplaced", "= 7 1 12. goal", "= 7. 1 12 goal"),
      ("goal_unmarked_pool", "[3 4] = 7 1 12. goal", "[3 4] = 7 1 12. x"))
  def test_marks_grammar_checks_claims(self, part, wrong):
    text = cs.format_search(cs.best_first(12, (1, 2, 4), 2, pair_goals=True), "marks")
    with self.assertRaisesRegex(ValueError, "line 3: .* does not state"):
      ct.parse_search(text.replace(part, wrong))

  def test_decision_positions(self):
    text = ("Goal 12 from [1 2 4]\n#0 [1 2 4] h=8\n  2+1=3 -> [3 4] = 7 1 12. goal\n"
            "  2*1=2 -> [2 4] = 6 2 8 2 h=4 x\n  4+1=5 -> [2 5] h=0 #1")
    chars = [text[i] for i in ct.decision_positions(text)]
    # marks line: after 7, 1, 12 and the label; results line: after each result, h's digit, x.
    self.assertEqual(chars, [" ", " ", ".", "g", " ", " ", " ", " ", "4", "x"])
    # A plain parent decides its spawned ids (#4, #1) and the child its answer names (#1).
    self.assertEqual([FIXTURE_PARENT[i] for i in ct.decision_positions(FIXTURE_PARENT)],
                     ["4", "1", "1"])
    self.assertEqual(ct.decision_positions("  #12\nAnswer: #10"), [3, 4, 15, 16])

  def test_matches_the_original_trace(self):
    # The trace of countdown_test's hand example, as search_trace wrote it before the refactor.
    text = cs.search_trace(cd.Problem((1, 2, 3), 9)).trace
    self.assertEqual(text.splitlines()[:3],
                     ["Goal 9 from [1 2 3]", "#0 [1 2 3] h=6", "  2+1=3 -> [3 3] h=0 #1"])
    self.assertEqual(ct.parse_search(text).solution, ("2+1=3", "3*3=9"))

  @parameterized.named_parameters(
      ("bad_header", "Goal 9 of [1 2 3]", "line 1: expected 'Goal"),
      ("bad_node", "Goal 9 from [1 2 3]\n#0 [1 2 3] h=x", "line 2: expected a node line"),
      ("missing_dead_end", "Goal 9 from [1 2]\n#0 [1 2] h=None\n  2+1=3 -> [3] x\n"
       "No solution after 1 nodes.", "line 4: expected '  dead end'"),
      ("wrong_count", "Goal 9 from [1 2]\n#0 [1 2] h=None\n  2+1=3 -> [3] x\n  dead end\n"
       "No solution after 2 nodes.", "line 5: says 2 nodes, the trace expands 1"),
      ("trailing", "Goal 9 from [1 2]\n#0 [1 2] h=None\n  2+1=3 -> [3] x\n  dead end\n"
       "No solution after 1 nodes.\n", "line 6: expected end of text"),
      ("bad_answer", "Goal 3 from [1 2]\n#0 [1 2] h=0\n  2+1=3 -> [3] goal\nAnswer:\n2 + 1",
       "line 5: expected a step line"))
  def test_malformed_raises(self, text, message):
    with self.assertRaisesRegex(ValueError, message):
      ct.parse_search(text)


class AprTraceTest(parameterized.TestCase):

  def test_fixture(self):
    trace = ct.apr_trace(FIXTURE_PROBLEM, max_children=2, child_expansions=2)
    self.assertEqual(ct.apr_texts(trace), (FIXTURE_PARENT, FIXTURE_CHILDREN))
    self.assertEqual(trace.spawned, (4, 1))
    self.assertEqual(trace.outcomes, (None, ("2+1=3", "4*3=12")))
    self.assertEqual(ct.answer_text(FIXTURE_PARENT), "Answer:\n1+1=2\n2+1=3\n4*3=12")
    self.assertEqual(cd.verify(FIXTURE_PROBLEM, ct.answer_text(FIXTURE_PARENT)), (True, "ok"))
    self.assertEqual(ct.parse_apr(FIXTURE_PARENT, FIXTURE_CHILDREN), trace)
    self.assertEqual([ct.child_outcome(t) for t in FIXTURE_CHILDREN], list(trace.outcomes))

  def test_training_trace_is_prefix_join_rest(self):
    before = ct.parent_before_spawn(ct.apr_trace(FIXTURE_PROBLEM, 2, 2))
    self.assertTrue(before.endswith("\nspawn\n  #4\n  #1\n|"))
    joined = ct.join_context(before, [None, ("2+1=3", "4*3=12")])
    self.assertEqual(joined, FIXTURE_PARENT[:FIXTURE_PARENT.index("Answer:")])
    self.assertEqual(ct.child_prompts(before),
                     ["Goal 12 from [1 1 5]\n", "Goal 12 from [1 2 4]\n"])

  @parameterized.parameters((1, 2), (2, 20), (4, 3), (100, 100))
  def test_round_trip_and_verify(self, max_children, child_expansions):
    for p in problems():
      trace = ct.apr_trace(p, max_children, child_expansions)
      parent, children = ct.apr_texts(trace)
      self.assertEqual(ct.parse_apr(parent, children), trace)
      self.assertEqual(ct.apr_texts(ct.parse_apr(parent, children)), (parent, children))
      self.assertLessEqual(set(parent + "".join(children)), set(cdd.TRACE_ALPHABET))
      self.assertLessEqual(len(trace.spawned), max_children)
      self.assertEqual(cd.verify(p, ct.answer_text(parent))[0], trace.solution is not None)
      for child, text in zip(trace.children, children):
        self.assertTrue(text.startswith(ct.thread_prompt(p.target, child.start)))
        if child.solution is not None:
          self.assertEqual(cd.verify(cd.Problem(child.start, p.target), text), (True, "ok"))
      if trace.spawned:
        before = ct.parent_before_spawn(trace)
        self.assertTrue(parent.startswith(ct.join_context(before, trace.outcomes)))
        self.assertEqual(ct.spawned_children(before),
                         [(i, c.start) for i, c in zip(trace.spawned, trace.children)])

  def test_solvable_problems_end_in_a_verified_answer(self):
    # Every open child spawned, enough child budget: each child's search is exhaustive.
    for p in problems(count=15, seed=9):
      parent, _ = ct.apr_texts(ct.apr_trace(p, max_children=100, child_expansions=10_000))
      self.assertEqual(cd.verify(p, ct.answer_text(parent)), (True, "ok"), parent)

  def test_gives_up_when_children_fail(self):
    trace = ct.apr_trace(FIXTURE_PROBLEM, max_children=1, child_expansions=2)
    parent, _ = ct.apr_texts(trace)
    self.assertEqual(trace.outcomes, (None,))
    self.assertTrue(parent.endswith("  #4 no solution\nNo solution."))
    self.assertFalse(cd.verify(FIXTURE_PROBLEM, ct.answer_text(parent))[0])

  def test_two_numbers_answer_without_spawn(self):
    parent, children = ct.apr_texts(ct.apr_trace(cd.Problem((3, 4), 12)))
    self.assertEqual(parent, "Goal 12 from [3 4]\n#0 [3 4] h=0\n  4*3=12 -> [12] goal\n"
                     "Answer:\n4*3=12")
    self.assertEqual(children, ())

  def test_child_outcome_of_cut_or_bad_text(self):
    self.assertIsNone(ct.child_outcome(FIXTURE_CHILDREN[1][:-30]))
    self.assertIsNone(ct.child_outcome("Goal 3 from [1 2]\nAnswer:\n2+1 = 3"))
    self.assertIsNone(ct.child_outcome("Goal 3 from [1 2]\nAnswer:\n"))

  def test_malformed_raises(self):
    bad_spawn = FIXTURE_PARENT.replace("spawn\n  #4\n", "spawn\n  #6\n")
    with self.assertRaisesRegex(ValueError, "APR parent: spawned #6 is not an open child"):
      ct.parse_apr(bad_spawn, FIXTURE_CHILDREN)
    bad_order = FIXTURE_PARENT.replace("#4 no solution", "#5 no solution")
    with self.assertRaisesRegex(ValueError, "line 13: outcome of #5, expected #4"):
      ct.parse_apr(bad_order, FIXTURE_CHILDREN)
    lying = FIXTURE_PARENT.replace("#4 no solution", "#4 goal 4+1=5 5*1=5")
    with self.assertRaisesRegex(ValueError, "child #4: its search .* disagrees"):
      ct.parse_apr(lying, FIXTURE_CHILDREN)
    no_step = FIXTURE_PARENT.replace("#4 no solution", "#4 goal 5*1=5")
    with self.assertRaisesRegex(ValueError, r"line 13: a goal path must start with the step of "
                                r"#4 \(4\+1=5\)"):
      ct.parse_apr(no_step, FIXTURE_CHILDREN)
    with self.assertRaisesRegex(ValueError, "1 child texts for 2 spawned"):
      ct.parse_apr(FIXTURE_PARENT, FIXTURE_CHILDREN[:1])
    with self.assertRaisesRegex(ValueError, "APR child #1, line 2: expected a node line"):
      ct.parse_apr(FIXTURE_PARENT, (FIXTURE_CHILDREN[0], "Goal 12 from [1 2 4]\n#1"))
    with self.assertRaisesRegex(ValueError, "APR parent, line 12: expected 'join'"):
      ct.parse_apr(FIXTURE_PARENT.replace("\njoin\n", "\nj\n"), FIXTURE_CHILDREN)
    with self.assertRaisesRegex(ValueError, "line 15: answers with #4, which found no goal"):
      ct.parse_apr(FIXTURE_PARENT.replace("Answer: #1", "Answer: #4"), FIXTURE_CHILDREN)
    copied = FIXTURE_PARENT.replace("Answer: #1", "Answer:\n1+1=2\n2+1=3\n4*3=12")
    with self.assertRaisesRegex(ValueError, "line 15: expected 'Answer: #<id>' or 'No solution.'"):
      ct.parse_apr(copied, FIXTURE_CHILDREN)

  def test_answer_text(self):
    # A parent names the goal child whose path it takes; the verifier reads that path.
    self.assertFalse(cd.verify(FIXTURE_PROBLEM, FIXTURE_PARENT)[0])
    for name, want in (("#1", True), ("#4", False), ("#7", False)):
      text = FIXTURE_PARENT.replace("Answer: #1", f"Answer: {name}")
      self.assertEqual(cd.verify(FIXTURE_PROBLEM, ct.answer_text(text))[0], want, name)
    self.assertEqual(ct.answer_text(FIXTURE_PARENT.replace("Answer: #1", "Answer: #4")),
                     FIXTURE_PARENT.replace("Answer: #1", "Answer: #4"))  # no goal: as it is
    own = "Goal 12 from [3 4]\n#0 [3 4] h=0\n  4*3=12 -> [12] goal\nAnswer:\n4*3=12"
    self.assertEqual(ct.answer_text(own), own)  # no reference: its own answer
    second = FIXTURE_PARENT.replace("#4 no solution", "#4 goal 4+1=5 5*1=5").replace(
        "Answer: #1", "Answer: #4")
    self.assertEqual(ct.answer_text(second), "Answer:\n4+1=5\n5*1=5")

  def test_join_context_checks(self):
    before = ct.parent_before_spawn(ct.apr_trace(FIXTURE_PROBLEM, 2, 2))
    with self.assertRaisesRegex(ValueError, "1 outcomes for 2 spawned"):
      ct.join_context(before, [None])
    with self.assertRaisesRegex(ValueError, "must end with a spawn block"):
      ct.join_context(before[:-2], [None, None])
    with self.assertRaisesRegex(ValueError, "empty goal path"):
      ct.join_context(before, [None, ()])
    with self.assertRaisesRegex(ValueError, "spawn block, line 2: expected a spawned child"):
      ct.child_prompts(before.replace("  #4\n", "  #4 [1 1 5]\n"))
    # The children's pools come from the parent's own edges: naming the root or an unknown
    # node is an error (the orchestrator's "malformed"), never a guessed pool.
    for node in ("#6", "#0"):
      with self.assertRaisesRegex(ValueError, f"spawned {node} is not an open child"):
        ct.child_prompts(before.replace("spawn\n  #4\n", f"spawn\n  {node}\n"))
    # An edge line the grammar cannot read ends the expansion: #4 after it is no open child.
    with self.assertRaisesRegex(ValueError, "spawned #4 is not an open child"):
      ct.child_prompts(before.replace("  1-1=0 -> [0 1 4] h=8 #2", "  1-1=0 [0 1 4]"))


if __name__ == "__main__":
  absltest.main()
