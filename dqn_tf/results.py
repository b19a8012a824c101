"""A run's results as machine-readable files beside TensorBoard, for plots and tables.

  <output_dir>/train_returns.csv   agent_steps,frames,return,length: one line per
                                   training game, its raw full-game return
  <output_dir>/evaluations.jsonl   one JSON object per evaluation: agent_steps, frames,
                                   returns, mean, std, and how the games were played
  <output_dir>/progress.json       where the run is now: state (running, finished,
                                   stopped), agent steps of --num_steps, steps/s, epsilon,
                                   the latest evaluation; rewritten at each summary and
                                   at the end (what `dqn_tf.sweep` shows and skips by)

Lines are appended as the run goes and flushed with each checkpoint. A resumed run
first drops the lines past its checkpoint's step (a killed process may have written
them, and those steps are played again), as `summaries.discard_events_after` does
for TensorBoard, so every step appears once.
"""

import csv
import json
import os

TRAIN_RETURNS = "train_returns.csv"
EVALUATIONS = "evaluations.jsonl"
PROGRESS = "progress.json"
_TRAIN_HEADER = ["agent_steps", "frames", "return", "length"]


def _trim(path: str, keep) -> None:
    """Rewrites `path` with the lines `keep(line)` accepts (atomically)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        lines = f.readlines()
    # A last line without its newline was cut short by a crash: never kept, or the next
    # line appended would run on from it.
    kept = [line for line in lines if line.endswith("\n") and keep(line)]
    if len(kept) == len(lines):
        return
    with open(path + ".tmp", "w") as f:
        f.writelines(kept)
    os.replace(path + ".tmp", path)


def _step_of_csv_line(line: str) -> float:
    try:
        return int(line.split(",", 1)[0])
    except ValueError:
        return float("inf")  # A line cut short by a crash, or garbage: dropped.


def _step_of_json_line(line: str) -> float:
    try:
        return int(json.loads(line)["agent_steps"])
    except (ValueError, KeyError, TypeError):
        return float("inf")


class ResultsLog:
    """Appends a run's training games and evaluations to its results files."""

    def __init__(self, output_dir: str, restart_step: int):
        """Args:
          output_dir: the run directory.
          restart_step: the agent step the run goes on from; lines past it are dropped
            (-1 for a new run: every line).
        """
        train_path = os.path.join(output_dir, TRAIN_RETURNS)
        eval_path = os.path.join(output_dir, EVALUATIONS)
        _trim(train_path, lambda line: line.startswith("agent_steps") or
              _step_of_csv_line(line) <= restart_step)
        _trim(eval_path, lambda line: _step_of_json_line(line) <= restart_step)
        new = not os.path.exists(train_path) or os.path.getsize(train_path) == 0
        self._train = open(train_path, "a", newline="")
        self._train_csv = csv.writer(self._train)
        if new:
            self._train_csv.writerow(_TRAIN_HEADER)
        self._evaluations = open(eval_path, "a")

    def train_game(self, agent_steps: int, frames: int, episode_return: float,
                   length: int) -> None:
        self._train_csv.writerow([agent_steps, frames, episode_return, length])

    def evaluation(self, record: dict) -> None:
        """One evaluation: agent_steps, frames, returns, mean, std and its settings."""
        self._evaluations.write(json.dumps(record) + "\n")

    def flush(self) -> None:
        self._train.flush()
        self._evaluations.flush()

    def close(self) -> None:
        self._train.close()
        self._evaluations.close()


def write_progress(output_dir: str, progress: dict) -> None:
    """Replaces `progress.json` atomically (a reader never sees half of it)."""
    path = os.path.join(output_dir, PROGRESS)
    with open(path + ".tmp", "w") as f:
        json.dump(progress, f)
    os.replace(path + ".tmp", path)


def read_progress(run_dir: str) -> dict | None:
    try:
        with open(os.path.join(run_dir, PROGRESS)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_train_returns(run_dir: str) -> dict:
    """{"agent_steps", "frames", "return", "length"}: lists over a run's training games."""
    columns = {name: [] for name in _TRAIN_HEADER}
    path = os.path.join(run_dir, TRAIN_RETURNS)
    if os.path.exists(path):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                try:
                    values = [float(row[name]) for name in _TRAIN_HEADER]
                except (TypeError, ValueError):
                    continue
                for name, value in zip(_TRAIN_HEADER, values):
                    columns[name].append(value)
    return columns


def read_evaluations(run_dir: str) -> list:
    """A run's evaluation records, oldest first."""
    path = os.path.join(run_dir, EVALUATIONS)
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
    return records
