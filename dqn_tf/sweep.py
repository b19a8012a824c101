"""Runs games x seeds of one preset on Ray, resumably:

    python -m dqn_tf.sweep --games=SpaceInvaders,MsPacman --seeds=0,1,2 \\
        --flagfile=flags/dqn_modern.cfg --output_root=runs/sweep [--num_steps=...]
    python -m dqn_tf.sweep --games=atari100k --seeds=0,1,2 --flagfile=flags/drq_eps.cfg \\
        --output_root=runs/atari100k --cpus_per_run=1

Each (game, seed) is one `python -m dqn_tf.main` run in its own directory,
`<output_root>/<preset>-<Game>-<seed>`, launched by a Ray task that reserves
--cpus_per_run CPUs (and --gpus_per_run GPUs). Every training flag given here (from
the flagfile or the command line) is passed to every run. Ray starts on this machine
(on 127.0.0.1) unless --ray_address names a cluster; on a cluster, --output_root must
be a filesystem every node sees.

Rerunning the same command resumes the sweep: a run whose progress.json says it
finished is skipped, an interrupted one resumes from its checkpoints (its directory
lock keeps a second writer out), and a run whose node is lost is retried on another
(Ray's task retries; the training process dies with its worker, so the lock is freed).
A run that exits 75 (stopped by a signal) is retried too; any other failure is
reported with the run's last error line and not retried.

SIGTERM or Ctrl-C stops the sweep cleanly: each running run is sent SIGTERM, writes a
checkpoint and exits 75, and the sweep exits 75 once they all have; the same command
resumes it. A finished run's saved replay (about 7 KB per transition, only needed to
train past --num_steps) and all but its newest checkpoint are deleted
(--noprune_finished keeps them): 26 Atari-100k games x 3 seeds would otherwise keep
55 GB of replay.

Each run's TensorFlow gets --cpus_per_run inter-op threads (TF_NUM_INTEROP_THREADS,
unless set): TF's default, one per core, lets runs that share a machine contend.

While it runs, a table shows one line per run: state, agent step, latest evaluation
and steps/s. At the end it writes <output_root>/sweep_summary.json, the learning
curves of all runs (<output_root>/curves.png, `dqn_tf.plot`) and <output_root>/scores.csv:
one row per finished run, its final evaluation and what the run cost (`SCORE_COLUMNS`),
what `dqn_tf.report` reads. --scores names another file, which is also the sweep's ledger:
a game and seed already there count as finished (their rows are kept), so a sweep goes on
from a committed scores.csv on a machine where the earlier run directories are gone. Keep
one such file per preset: its rows must be runs of the sweep's --num_steps (checked), and
of its flags (not checked: the file does not record them).
"""

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

from absl import app, flags

from dqn_tf import protocols, ray_cluster, results, run_directory
from dqn_tf import config as config_lib
from dqn_tf.atari_env import resolve_env_id
from dqn_tf.errors import UserInputError

# Set by the sweep for each run, never passed through from the sweep's own flags.
_PER_RUN_FLAGS = ("env", "seed", "output_dir", "progress", "overwrite", "ray_address")
SWEEP_FLAGS = "sweep_flags.json"  # In each run directory: the flags the sweep ran it with.
SCORES = "scores.csv"  # In --output_root: one row per finished run.
# game: ALE short name; agent_steps, episodes, mean_return: the final evaluation's;
# wall_seconds: the run's running time, evaluations included, summed over its processes
# from the start of their loops (building, tracing and restoring are left out, and so is
# the work of a killed process past its last checkpoint, which the next one redoes and
# counts); eval_seconds: its evaluations' time; steps_per_second: agent steps per second
# of training (wall_seconds less eval_seconds).
SCORE_COLUMNS = ("game", "seed", "agent_steps", "episodes", "mean_return", "wall_seconds",
                 "eval_seconds", "steps_per_second")
_EXIT_STOPPED_BY_SIGNAL = 75  # main.EXIT_STOPPED_BY_SIGNAL (main imports TF: not here).


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run of a sweep."""

    game: str  # short name, e.g. SpaceInvaders
    seed: int
    output_dir: str
    command: tuple  # the argv of `python -m dqn_tf.main`
    num_steps: int  # the agent steps it trains for


class RunInterrupted(Exception):
    """The run stopped before --num_steps (a signal, exit 75): retry it."""


class SweepStop:
    """SIGINT/SIGTERM to the sweep: stop its runs with checkpoints, then exit 75; a
    second one kills them (their last periodic checkpoints stay)."""

    def __init__(self):
        self.requested = False
        self.forced = False

    def __call__(self, signum, frame):
        self.forced = self.requested
        self.requested = True


def run_path(output_root: str, preset: str, game: str, seed: int) -> str:
    return os.path.join(output_root, f"{preset}-{game}-{seed}")


def plan(games: list, seeds: list, preset: str, output_root: str, training_flags: list,
         num_steps: int) -> list:
    """The RunSpecs of games x seeds, seed by seed (every game's first seed first, so a
    sweep cut short has whole benchmarks at its first seeds); `training_flags` are
    `--name=value` for every run."""
    specs = []
    for seed in seeds:
        for game in games:
            short = resolve_env_id(game).split("/")[-1].split("-v")[0]
            directory = os.path.abspath(run_path(output_root, preset, short, seed))
            command = (sys.executable, "-m", "dqn_tf.main", *training_flags, f"--env={game}",
                       f"--seed={seed}", f"--output_dir={directory}", "--noprogress")
            specs.append(RunSpec(short, seed, directory, command, num_steps))
    return specs


def expand_games(games: list) -> list:
    """--games with benchmark names expanded: "atari100k" is its 26 games."""
    expanded = []
    for game in games:
        expanded.extend(protocols.ATARI_100K_GAMES if game.lower() == "atari100k" else [game])
    return expanded


def _run_flags(spec: RunSpec) -> list:
    """The run's flags, but the cluster's address (which changes between sweeps) and its
    directory (the same run wherever --output_root is mounted)."""
    return _comparable(spec.command[3:])


def _comparable(flags: list) -> list:
    return [arg for arg in flags
            if not arg.startswith(("--ray_address=", "--output_dir="))]


def is_finished(spec: RunSpec) -> bool:
    """Whether the run finished --num_steps with the flags this sweep would give it."""
    progress = results.read_progress(spec.output_dir)
    if not (progress and progress.get("state") == "finished"
            and progress.get("num_steps", 0) >= spec.num_steps):
        return False
    try:
        with open(os.path.join(spec.output_dir, SWEEP_FLAGS)) as f:
            return _comparable(json.load(f)) == _run_flags(spec)
    except (OSError, ValueError):
        return False


def train_one(spec: RunSpec, inter_op_threads: int = 1) -> dict:
    """Runs one training process to its end (inside a Ray task); returns its outcome.

    `ray.cancel` (the sweep was asked to stop) raises KeyboardInterrupt here: the
    process is sent SIGTERM and waited for (it checkpoints and exits 75) first.

    Raises:
      RunInterrupted: it was stopped by a signal (exit 75); Ray retries the task.
    """
    try:  # ray.cancel interrupts like SIGINT, which does nothing where SIGINT is ignored:
        # in a sweep started in the background (`cmd &`), which its Ray workers inherit.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # Not the main thread: Ray runs tasks there; leave it.
        pass
    os.makedirs(spec.output_dir, exist_ok=True)
    flags_path = os.path.join(spec.output_dir, SWEEP_FLAGS)  # Written when it finishes.
    log_path = os.path.join(spec.output_dir, "sweep_run.log")
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(spec.command)}\n")
        log.flush()
        # The training process dies with this Ray worker, as it would with its node:
        # dqn_tf.main asks the kernel for SIGKILL when its parent goes.
        source_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ, DQN_TF_PARENT_PID=str(os.getpid()))
        env.setdefault("TF_NUM_INTEROP_THREADS", str(inter_op_threads))
        proc = None
        try:
            proc = subprocess.Popen(spec.command, stdout=log, stderr=subprocess.STDOUT,
                                    env=env,
                                    cwd=source_root if os.path.isdir(source_root) else None)
            returncode = None
            while returncode is None:  # Ray's KeyboardInterrupt lands between waits.
                try:
                    returncode = proc.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    pass
        finally:  # ray.cancel (the sweep is stopping): the run checkpoints and exits.
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait()
    if returncode == _EXIT_STOPPED_BY_SIGNAL:
        raise RunInterrupted(f"{spec.output_dir} was stopped by a signal")
    if returncode != 0:
        with open(log_path) as log:
            errors = [line.strip() for line in log if line.startswith("error:")]
        return {"state": "failed", "returncode": returncode,
                "error": errors[-1] if errors else f"exit {returncode}, see {log_path}"}
    with open(flags_path + ".tmp", "w") as f:  # What makes a rerun skip it.
        json.dump(_run_flags(spec), f)
    os.replace(flags_path + ".tmp", flags_path)
    return {"state": "finished", "returncode": 0}


def runs_that_fit(resources: dict, cpus_per_run: float, gpus_per_run: float,
                  actor_cpus_per_run: float) -> int:
    """How many runs the cluster's `resources` hold at once, each with its own actors.

    Ray would otherwise start as many runs as it can place, and their actors could find
    no CPU left: every run would wait for its actors forever.

    Raises:
      UserInputError: not even one run fits.
    """
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    need = cpus_per_run + actor_cpus_per_run
    fit = int(cpus // need) if need > 0 else 1
    if gpus_per_run > 0:
        fit = min(fit, int(gpus // gpus_per_run))
    if fit < 1:
        raise UserInputError(
            f"a run needs {cpus_per_run:g} CPUs (--cpus_per_run) + {actor_cpus_per_run:g} for "
            f"its actors and {gpus_per_run:g} GPUs (--gpus_per_run); the cluster has "
            f"{cpus:g} CPUs and {gpus:g} GPUs: lower --cpus_per_run, --num_actors or "
            "--gpus_per_run, or add nodes")
    return fit


def prune_finished(output_dir: str) -> int:
    """Deletes a finished run's saved replay (the replay chunks its checkpoints share) and
    all but its newest checkpoint, under the run's lock; returns the bytes freed (0 if a
    process holds the run). Its results, TensorBoard, SavedModels and newest checkpoint
    stay, that checkpoint whole: training the run further (a larger --num_steps) restores
    it with the chunks missing, which costs their transitions, not the checkpoint
    (`ReplayStore.read`): the replay refills --min_replay_size transitions first."""
    checkpoints = os.path.join(output_dir, "checkpoints")
    if not os.path.isdir(checkpoints):
        return 0
    try:
        lock = run_directory.RunLock(output_dir)
    except UserInputError:  # Another process is writing the run: leave it.
        return 0
    try:
        names = sorted(os.listdir(checkpoints))
        complete = [n for n in names if n.startswith("ckpt-") and "." not in n]
        freed = 0
        for name in (n for n in names if n not in complete[-1:]):
            path = os.path.join(checkpoints, name)
            for root, _, files in os.walk(path):
                freed += sum(os.path.getsize(os.path.join(root, f)) for f in files)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        return freed
    finally:
        lock.release()


def _table(specs: list, states: dict, started: float = 0.0) -> str:
    lines = [f"{'run':<40} {'state':<10} {'agent step':>12} {'latest eval':>12} "
             f"{'steps/s':>8}"]
    for spec in specs:
        progress = results.read_progress(spec.output_dir) or {}
        state = states[spec.output_dir]
        log = os.path.join(spec.output_dir, "sweep_run.log")
        if state == "running" and not (os.path.exists(log) and
                                       os.path.getmtime(log) >= started):
            state = "queued"  # Launched, but Ray has not started it yet.
        elif state == "running" and progress.get("agent_steps") is None:
            state = "starting"
        step = progress.get("agent_steps")
        evaluation = progress.get("last_eval_return")
        sps = progress.get("steps_per_second")
        lines.append(
            f"{os.path.basename(spec.output_dir):<40} {state:<10} "
            f"{f'{step:,}' if step is not None else '-':>12} "
            f"{f'{evaluation:.1f}' if evaluation is not None else '-':>12} "
            f"{f'{sps:.0f}' if sps else '-':>8}")
    return "\n".join(lines)


def run_sweep(specs: list, *, cpus_per_run: float, gpus_per_run: float = 0.0,
              max_retries: int = 3, poll_seconds: float = 10.0, show=print,
              max_running: int | None = None, stop: SweepStop | None = None,
              prune: bool = False, scores_path: str | None = None,
              recorded: dict | None = None) -> dict:
    """Runs every spec not finished yet as a Ray task (Ray must be initialised), at most
    `max_running` at once (default: as many as Ray places); returns {output_dir: outcome
    dict}. Shows the table whenever a state changes, and every few polls. When `stop`
    is requested, the running runs are stopped with checkpoints ("stopped") and the
    queued ones left ("not started"). With `prune`, `prune_finished` each finished run.
    With `scores_path`, `write_scores` there each time a run finishes: a day-long sweep's
    scores are readable (and survive a stop of the machine) run by run. A run whose
    (game, seed) is in `recorded` (`read_scores`) is skipped as finished."""
    import ray  # The sweep is the part of dqn_tf that needs Ray.
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries,
                      retry_exceptions=[RunInterrupted])(train_one)
    inter_op_threads = max(1, int(cpus_per_run))
    started = time.time()
    states, outcomes, pending, queued = {}, {}, {}, []
    recorded = recorded or {}
    for spec in specs:
        if is_finished(spec) or (spec.game, spec.seed) in recorded:
            states[spec.output_dir] = "skipped"
            outcomes[spec.output_dir] = {"state": "skipped (finished before)"}
        else:
            states[spec.output_dir] = "queued"
            queued.append(spec)

    def launch():
        while queued and (max_running is None or len(pending) < max_running):
            spec = queued.pop(0)
            states[spec.output_dir] = "running"
            pending[task.remote(spec, inter_op_threads)] = spec

    launch()
    show(_table(specs, states, started))
    polls, stopping, forced = 0, False, False
    while pending:
        if stop is not None and stop.forced and not forced:
            forced = True
            show("sweep: second signal: killing the runs")
            for ref in pending:
                ray.cancel(ref, force=True)
        if stop is not None and stop.requested and not stopping:
            stopping = True
            show("sweep: stopping: each running run writes a checkpoint and exits")
            for spec in queued:
                states[spec.output_dir] = "not started"
                outcomes[spec.output_dir] = {"state": "not started"}
            queued.clear()
            for ref in pending:
                ray.cancel(ref)  # train_one sends its process SIGTERM and waits.
        done, _ = ray.wait(list(pending), num_returns=1,
                           timeout=1.0 if stop is not None else poll_seconds)
        polls += 1
        for ref in done:
            spec = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except Exception as error:  # noqa: BLE001 - retries exhausted, node lost, ...
                outcome = ({"state": "stopped"} if stopping else
                           {"state": "failed", "error": str(error).strip().splitlines()[-1]})
            if outcome["state"] == "finished" and prune:
                outcome["pruned_bytes"] = prune_finished(spec.output_dir)
            outcomes[spec.output_dir] = outcome
            states[spec.output_dir] = outcome["state"]
            if outcome["state"] == "finished" and scores_path:
                write_scores(specs, scores_path, recorded)
        launch()
        if done or polls % (6 if stop is None else 60) == 0:
            show(_table(specs, states, started))
    return outcomes


def score_row(spec: RunSpec) -> dict | None:
    """The `SCORE_COLUMNS` of a finished run (its evaluation at --num_steps), or None."""
    if not is_finished(spec):  # Not finished, or with other flags than this sweep's.
        return None
    progress = results.read_progress(spec.output_dir) or {}
    finals = [r for r in results.read_evaluations(spec.output_dir)
              if r.get("agent_steps", 0) >= spec.num_steps]
    if not finals:
        return None
    final = finals[-1]
    wall = progress.get("run_seconds")
    evals = sum(r.get("seconds", 0.0) for r in results.read_evaluations(spec.output_dir))
    return {"game": spec.game, "seed": spec.seed, "agent_steps": final["agent_steps"],
            "episodes": len(final["returns"]), "mean_return": final["mean"],
            "wall_seconds": wall, "eval_seconds": round(evals, 1),
            "steps_per_second": (round(progress["agent_steps"] / (wall - evals), 2)
                                 if wall and wall > evals else None)}


def read_scores(path: str, num_steps: int) -> dict:
    """{(game, seed): row} of the scores.csv at `path` ({} if there is none), the ledger
    of a sweep whose runs train for `num_steps` agent steps.

    Raises:
      UserInputError: the file is not a scores.csv (empty, another header, a row that is
        not a run's, a game and seed twice), or it holds runs of another length.
    """
    def refuse(problem: str) -> UserInputError:
        return UserInputError(f"--scores={path} {problem}; name another file")

    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                raise refuse(f"is empty, not a sweep's scores.csv ({','.join(SCORE_COLUMNS)})")
            if tuple(reader.fieldnames) != SCORE_COLUMNS:
                raise refuse(f"is not a sweep's scores.csv: its header is "
                             f"{','.join(reader.fieldnames)}, not {','.join(SCORE_COLUMNS)}")
            recorded = {}
            for line, row in enumerate(reader, start=2):
                try:
                    key, steps = (row["game"], int(row["seed"])), int(row["agent_steps"])
                except (TypeError, ValueError):
                    raise refuse(f"line {line} is not a run's row (its seed and agent_steps "
                                 "must be integers)") from None
                if key in recorded:
                    raise refuse(f"holds {key[0]} seed {key[1]} twice (line {line})")
                if steps != num_steps:
                    raise refuse(f"holds a run of {steps:,} agent steps ({key[0]} seed "
                                 f"{key[1]}); this sweep trains for {num_steps:,}")
                recorded[key] = row
            return recorded
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise refuse(f"cannot be read as a CSV file ({error.__class__.__name__})") from None


def write_scores(specs: list, path: str, recorded: dict | None = None) -> int:
    """Writes the `recorded` rows (`read_scores`), then the finished runs' `score_row`s
    that are not among them, to `path` (CSV); returns how many rows."""
    recorded = recorded or {}
    rows = list(recorded.values()) + [
        row for row in map(score_row, specs)
        if row is not None and (row["game"], row["seed"]) not in recorded]
    with open(path + ".tmp", "w", newline="") as f:
        writer = csv.DictWriter(f, SCORE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(path + ".tmp", path)
    return len(rows)


def summarise(specs: list, outcomes: dict, output_root: str, window: tuple,
              scores_path: str, recorded: dict | None = None) -> dict:
    """Writes sweep_summary.json, curves.png and `scores_path` over every run (and the
    `recorded` rows); returns the summary."""
    from dqn_tf import plot  # Reads TensorBoard files with TensorFlow: only here, at the end.
    summary = []
    for spec in specs:
        progress = results.read_progress(spec.output_dir) or {}
        entry = {"game": spec.game, "seed": spec.seed, "output_dir": spec.output_dir,
                 **outcomes.get(spec.output_dir, {}),
                 "agent_steps": progress.get("agent_steps"),
                 "last_eval_return": progress.get("last_eval_return")}
        if os.path.exists(os.path.join(spec.output_dir, "config.json")):
            mean, games = plot.window_mean(plot.load_run(spec.output_dir), *window)
            entry.update(window_mean_train_return=mean if games else None,
                         window_games=games)
        summary.append(entry)
    with open(os.path.join(output_root, "sweep_summary.json"), "w") as f:
        json.dump({"window_frames": list(window), "runs": summary}, f, indent=1)
    write_scores(specs, scores_path, recorded)
    runs = [plot.load_run(s.output_dir) for s in specs
            if os.path.exists(os.path.join(s.output_dir, "config.json"))]
    if runs:
        plot.plot(plot.group_runs(runs), os.path.join(output_root, "curves.png"), 100_000, [])
    return {"runs": summary}


def preset_name(argv: list) -> str:
    """The name of the sweep's last --flagfile ("dqn_modern" for flags/dqn_modern.cfg,
    given as --flagfile=F or --flagfile F); absl expands flagfiles while it parses, so
    they are read off the command line."""
    files = []
    for i, arg in enumerate(argv):
        if arg.startswith("--flagfile="):
            files.append(arg.split("=", 1)[1])
        elif arg == "--flagfile" and i + 1 < len(argv):
            files.append(argv[i + 1])
    return os.path.splitext(os.path.basename(files[-1]))[0] if files else "dqn_default"


def training_flags_given(flag_values) -> list:
    """`--name=value` of every training flag set for the sweep (flagfile or command line),
    except those the sweep sets per run."""
    names = [f.name for f in dataclasses.fields(config_lib.Config)]
    given = []
    for name in names:
        flag = flag_values[name]
        if flag.present and name not in _PER_RUN_FLAGS:
            given.append(flag.serialize())
    return given


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    f = flags.FLAGS
    try:
        if not f.games or not f.seeds:
            raise UserInputError("--games and --seeds are required, e.g. --games=Pong,Breakout "
                                 "--seeds=0,1,2")
        try:
            seeds = [int(s) for s in f.seeds]
        except ValueError:
            raise UserInputError(f"--seeds={','.join(f.seeds)} is invalid: it must be a "
                                 "comma-separated list of integers >= 0") from None
        if min(seeds) < 0 or f.cpus_per_run <= 0 or f.gpus_per_run < 0:
            raise UserInputError("--seeds must be >= 0, --cpus_per_run > 0 and "
                                 "--gpus_per_run >= 0")
        try:
            low, high = (float(v) for v in f.window.split(":"))
        except ValueError:
            raise UserInputError(f"--window={f.window} is invalid: it must be "
                                 "FROM_FRAMES:TO_FRAMES, e.g. 1000000:2000000") from None
        preset = f.name or preset_name(sys.argv)
        specs = plan(expand_games(f.games), seeds, preset, f.output_root,
                     training_flags_given(f), f.num_steps)
        scores_path = f.scores or os.path.join(f.output_root, SCORES)
        # Only a file named by --scores is a ledger: the default one is rewritten from the
        # run directories, which decide (with their flags) what is finished.
        recorded = read_scores(f.scores, specs[0].num_steps) if f.scores else {}
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    os.makedirs(f.output_root, exist_ok=True)
    if all(is_finished(s) or (s.game, s.seed) in recorded for s in specs):  # Nothing to run: no need for Ray.
        outcomes = {s.output_dir: {"state": "skipped (finished before)"} for s in specs}
        print(_table(specs, {s.output_dir: "skipped" for s in specs}))
    else:
        try:
            ray = ray_cluster.connect(f.ray_address, num_cpus=os.cpu_count() or 1,
                                      what="dqn_tf.sweep")
        except UserInputError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        try:
            max_running = runs_that_fit(ray.cluster_resources(), f.cpus_per_run,
                                        f.gpus_per_run, f.num_actors * f.actor_cpus)
            if f.num_actors > 0:  # Each run's actors join this cluster, wherever it runs.
                address = f"--ray_address={ray_cluster.address_for_children(ray)}"
                specs = [dataclasses.replace(s, command=s.command + (address,))
                         for s in specs]
            stop = SweepStop()
            for signum in (signal.SIGINT, signal.SIGTERM):  # ray.init installed its own.
                signal.signal(signum, stop)
            outcomes = run_sweep(specs, cpus_per_run=f.cpus_per_run,
                                 gpus_per_run=f.gpus_per_run, max_retries=f.max_retries,
                                 max_running=max_running if f.num_actors > 0 else None,
                                 stop=stop, prune=f.prune_finished,
                                 scores_path=scores_path, recorded=recorded)
        except UserInputError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        finally:
            ray.shutdown()
    summary = summarise(specs, outcomes, f.output_root, (low, high), scores_path, recorded)
    if any(o.get("state") in ("stopped", "not started") for o in outcomes.values()):
        print("sweep: stopped by a signal, its running runs checkpointed: rerun the same "
              "command to resume", file=sys.stderr)
        sys.exit(_EXIT_STOPPED_BY_SIGNAL)
    failed = [r for r in summary["runs"] if r.get("state") == "failed"]
    skipped = sum(1 for r in summary["runs"] if r.get("state", "").startswith("skipped"))
    print(f"sweep: {len(specs) - len(failed)} of {len(specs)} runs finished ({skipped} "
          f"skipped: finished before); "
          f"{os.path.join(f.output_root, 'sweep_summary.json')}, "
          f"{os.path.join(f.output_root, 'curves.png')}, {scores_path}")
    for run in failed:
        print(f"failed: {run['output_dir']}: {run.get('error')}", file=sys.stderr)
    sys.exit(1 if failed else 0)


def define_flags():
    flags.DEFINE_list("games", None, "Games, comma-separated (any name --env takes), or "
                      "atari100k for its 26 games.")
    flags.DEFINE_list("seeds", None, "Seeds, comma-separated.")
    flags.DEFINE_string("name", None, "The preset's name in run directories (default: the "
                        "--flagfile's name without .cfg, or dqn_default).")
    flags.DEFINE_string("output_root", "runs/sweep", "Where the runs' directories go, "
                        "<output_root>/<preset>-<Game>-<seed>.")
    flags.DEFINE_float("cpus_per_run", 2, "CPUs Ray reserves for each run.")
    flags.DEFINE_float("gpus_per_run", 0, "GPUs Ray reserves for each run.")
    flags.DEFINE_integer("max_retries", 3, "Times Ray retries a run that was stopped by a "
                         "signal or lost with its node.")
    flags.DEFINE_boolean("prune_finished", True, "Delete a finished run's saved replay and "
                         "all but its newest checkpoint (keep them to train it further "
                         "with its replay).")
    flags.DEFINE_string("scores", None, "The scores CSV to write (default: "
                        "<output_root>/scores.csv, rewritten from the run directories). A "
                        "file named here is the sweep's ledger: a (game, seed) it already "
                        "holds counts as finished and keeps its row. Point it at a committed "
                        "benchmarks/<preset>/scores.csv to go on with a sweep on another "
                        "machine, where the run directories are gone; one file per preset.")
    flags.DEFINE_string("window", "1000000:2000000", "FROM_FRAMES:TO_FRAMES of the mean "
                        "training return in the summary.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
