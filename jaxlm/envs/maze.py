"""Grid maze as a text environment (LMRL-Gym "Maze", Abdulhai et al. 2023, Sec. 4).

The default layout is LMRL-Gym's double-T maze with the goal at the bottom of the stem (row 8,
column 6); each episode starts at a uniformly random free cell other than the goal. Actions are
"move up/down/left/right" (a trailing newline is part of the dataset text; surrounding
whitespace is ignored). Reward: -1 per step, 0 for the step that reaches the goal (done,
observation "Success\\n"); text that is not one of the four moves costs `illegal_reward` (-4 as
in LMRL-Gym's standard reward) and does not move; walking into a wall costs -1 and does not move.
After `max_steps` (100) actions the episode ends with "Failure\\n".

Observations (numbers written digit by digit, as in LMRL-Gym):
  fully observed:     "The goal is at position 8, 6. Your current position is at position 1, 1.
                       There are walls to your left, above you, below you.\\n"
  partially observed: only the wall sentence (position and goal are never shown).

Score normalisation (`MAZE_SCORES`): min = -max_steps (never reaching the goal with legal moves),
max = mean optimal return over start cells (BFS), dataset mean = mean return of
`maze_dataset`'s default recipe. LMRL-Gym's constants (-101, -83, -6.84) count one extra failure
step.
"""

import collections
import re
from typing import Sequence

import numpy as np

from jaxlm.data.trajectory import TextTrajectory
from jaxlm.envs.base import History, PolicyFn, ScoreConstants, rollout

DOUBLE_T_MAZE = (
    "#############",
    "#.....#.....#",
    "###.#####.###",
    "###.#####.###",
    "###.#####.###",
    "###.......###",
    "######.######",
    "######.######",
    "######.######",
    "#############",
)
DOUBLE_T_GOAL = (8, 6)
MOVES = {"move up": (-1, 0), "move down": (1, 0), "move left": (0, -1), "move right": (0, 1)}
_WALL_WORDS = (("to your right", (0, 1)), ("to your left", (0, -1)), ("above you", (-1, 0)),
               ("below you", (1, 0)))
# The sentences of Maze text, as phrase tokens (`SimpleTokenizer.phrases`): a move is one token,
# and so is each coordinate (" 1 0" is ten), so a position reads as two tokens.
def _digits(n: int) -> str:
  return " ".join(str(n))


# Wall sentences open partially observed observations and follow a space in fully observed ones.
_WALL_SENTENCES = ("There are walls", "There is a wall", "There are no walls near you.")
PHRASES = tuple(m + "\n" for m in MOVES) + (
    "The goal is at position", " Your current position is at position", "Success\n",
    "Failure\n") + _WALL_SENTENCES + tuple(" " + s for s in _WALL_SENTENCES) + tuple(
        " " + w for w, _ in _WALL_WORDS) + tuple(" " + _digits(n) for n in range(10, 100))
_POS_RE = re.compile(r"current position is at position ([\d ]+), ([\d ]+)\.")


def describe_walls(walls: Sequence[str]) -> str:
  if not walls:
    return "There are no walls near you."
  if len(walls) == 1:
    return f"There is a wall {walls[0]}."
  return f"There are walls {', '.join(walls)}."


class Maze:
  """Maze `TextEnv` (module docstring)."""

  def __init__(self, fully_observed: bool = True, layout: Sequence[str] = DOUBLE_T_MAZE,
               goal: tuple[int, int] = DOUBLE_T_GOAL, max_steps: int = 100,
               illegal_reward: float = -4.0):
    self.walls = np.array([[c == "#" for c in row] for row in layout])
    if self.walls[goal]:
      raise ValueError(f"goal {goal} is a wall")
    if not (self.walls[0].all() and self.walls[-1].all() and self.walls[:, 0].all()
            and self.walls[:, -1].all()):
      raise ValueError("layout must be enclosed by walls")
    self.fully_observed = fully_observed
    self.goal = tuple(goal)
    self.max_steps = max_steps
    self.illegal_reward = illegal_reward
    self.distance = self._bfs()
    self.starts = [tuple(p) for p in np.argwhere(~self.walls) if tuple(p) != self.goal]
    unreachable = [p for p in self.starts if self.distance[p] < 0]
    if unreachable:
      raise ValueError(f"cells {unreachable[:3]} cannot reach the goal")
    self.position, self.steps = None, 0

  def _bfs(self) -> np.ndarray:
    dist = np.full(self.walls.shape, -1, np.int32)
    dist[self.goal] = 0
    queue = collections.deque([self.goal])
    while queue:
      r, c = queue.popleft()
      for dr, dc in MOVES.values():
        if not self.walls[r + dr, c + dc] and dist[r + dr, c + dc] < 0:
          dist[r + dr, c + dc] = dist[r, c] + 1
          queue.append((r + dr, c + dc))
    return dist

  def describe(self) -> str:
    r, c = self.position
    walls = [w for w, (dr, dc) in _WALL_WORDS if self.walls[r + dr, c + dc]]
    text = describe_walls(walls)
    if self.fully_observed:
      text = (f"The goal is at position {_digits(self.goal[0])}, {_digits(self.goal[1])}. "
              f"Your current position is at position {_digits(r)}, {_digits(c)}. {text}")
    return text + "\n"

  def reset(self, seed: int) -> str:
    self.position = self.starts[np.random.default_rng(seed).integers(len(self.starts))]
    self.steps = 0
    return self.describe()

  def step(self, action: str) -> tuple[str, float, bool]:
    if self.position is None or self.position == self.goal or self.steps >= self.max_steps:
      raise ValueError("step() called on a finished episode; call reset(seed) first")
    move = MOVES.get(" ".join(action.split()))
    reward = -1.0
    if move is None:
      reward = float(self.illegal_reward)
    elif not self.walls[self.position[0] + move[0], self.position[1] + move[1]]:
      self.position = (self.position[0] + move[0], self.position[1] + move[1])
    self.steps += 1
    if self.position == self.goal:
      return "Success\n", 0.0, True
    if self.steps >= self.max_steps:
      return "Failure\n", reward, True
    return self.describe(), reward, False

  def texts(self) -> list[str]:
    """Every text this maze can emit or accept in a dataset (observations and moves), e.g.
    to build a word-level tokenizer: SimpleTokenizer.words(maze.texts())."""
    saved, out = self.position, ["Success\n", "Failure\n"] + [m + "\n" for m in MOVES]
    for p in self.starts:
      self.position = p
      out.append(self.describe())
    self.position = saved
    return out

  def optimal_move(self, position: tuple[int, int]) -> str:
    """A BFS-shortest-path move (ties broken in MOVES order), with trailing newline."""
    r, c = position
    for name, (dr, dc) in MOVES.items():
      nxt = (r + dr, c + dc)
      if not self.walls[nxt] and self.distance[nxt] == self.distance[r, c] - 1:
        return name + "\n"
    raise ValueError(f"no move from {position} gets closer to the goal")

  def optimal_return(self) -> float:
    """Mean return of the BFS policy over start cells: -(distance - 1) per start."""
    return float(np.mean([-(self.distance[p] - 1) for p in self.starts]))


def parse_position(observation: str) -> tuple[int, int]:
  """Position from a fully observed maze observation."""
  m = _POS_RE.search(observation)
  if m is None:
    raise ValueError(f"no position in observation {observation!r} (fully observed mazes only)")
  return int(m.group(1).replace(" ", "")), int(m.group(2).replace(" ", ""))


def solver_policy(maze: Maze, epsilon: float = 0.0,
                  rng: np.random.Generator | None = None) -> PolicyFn:
  """BFS policy on fully observed text; with probability epsilon a uniform random move."""
  rng = rng or np.random.default_rng(0)
  names = list(MOVES)

  def act(history: History) -> str:
    if epsilon and rng.random() < epsilon:
      return names[rng.integers(len(names))] + "\n"
    return maze.optimal_move(parse_position(history[-1][0]))
  return lambda histories: [act(h) for h in histories]


def random_policy(rng: np.random.Generator) -> PolicyFn:
  names = list(MOVES)
  return lambda histories: [names[rng.integers(len(names))] + "\n" for _ in histories]


def replay(trajectory: TextTrajectory, env: Maze, seed: int) -> TextTrajectory:
  """Re-runs the actions of `trajectory` in `env` from `seed` (e.g. to re-describe a fully
  observed episode with partially observed text; the maze dynamics are deterministic)."""
  texts, is_action, rewards, done = [env.reset(seed)], [False], [0.0], False
  for text, act in trajectory.segments:
    if act:
      obs, r, done = env.step(text)
      texts += [text, obs]
      is_action += [True, False]
      rewards += [r, 0.0]
  if not np.allclose(rewards, trajectory.rewards) or done != trajectory.done:
    raise ValueError("replay diverged: different rewards (wrong seed or maze?)")
  return TextTrajectory(texts, is_action, rewards, done)


def maze_dataset(n: int, seed: int, *, fully_observed: bool = True,
                 solver_fraction: float = 0.1, solver_epsilon: float = 0.3,
                 max_steps: int = 100) -> list[TextTrajectory]:
  """Offline data: mostly uniformly random walkers plus some suboptimal (epsilon-BFS) solvers.

  A `solver_fraction` of the episodes follow the BFS policy with a random move with probability
  `solver_epsilon`; the rest move uniformly at random. Partially observed data re-describes the
  same episodes (as in LMRL-Gym). Deterministic in `seed`.
  """
  rng = np.random.default_rng(seed)
  env_seeds = rng.integers(2**31 - 1, size=n)
  is_solver = np.arange(n) < round(solver_fraction * n)
  fo = Maze(True, max_steps=max_steps)
  out = [None] * n
  for mask, policy in ((is_solver, solver_policy(fo, solver_epsilon, rng)),
                       (~is_solver, random_policy(rng))):
    idx = np.flatnonzero(mask)
    for i, t in zip(idx, rollout(lambda: Maze(True, max_steps=max_steps), policy,
                                 env_seeds[idx], max_steps)):
      out[i] = t if fully_observed else replay(t, Maze(False, max_steps=max_steps),
                                               int(env_seeds[i]))
  return out


# Default double-T maze, max_steps=100, maze_dataset defaults: mean over 10,000 episodes (seed 0,
# std 36.2); max = Maze().optimal_return() (LMRL-Gym's -6.84). Used for both observation modes
# (the partially observed optimum is lower, so PO scores stay below 100).
MAZE_SCORES = ScoreConstants(min=-100.0, mean=-77.62, max=-6.84)
