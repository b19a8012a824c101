"""Runs games x seeds of one preset on Ray, resumably:

    python -m dqn_tf.sweep --games=SpaceInvaders,MsPacman --seeds=0,1,2 \\
        --flagfile=flags/dqn_modern.cfg --output_root=runs/sweep [--num_steps=...]

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

While it runs, a table shows one line per run: state, agent step, latest evaluation
and steps/s. At the end it writes <output_root>/sweep_summary.json and the learning
curves of all runs (<output_root>/curves.png, `dqn_tf.plot`).
"""

import dataclasses
import json
import os
import subprocess
import sys

from absl import app, flags

from dqn_tf import plot, ray_cluster, results
from dqn_tf import config as config_lib
from dqn_tf.atari_env import resolve_env_id
from dqn_tf.errors import UserInputError

# Set by the sweep for each run, never passed through from the sweep's own flags.
_PER_RUN_FLAGS = ("env", "seed", "output_dir", "progress", "overwrite", "ray_address")
SWEEP_FLAGS = "sweep_flags.json"  # In each run directory: the flags the sweep ran it with.
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


def run_directory(output_root: str, preset: str, game: str, seed: int) -> str:
    return os.path.join(output_root, f"{preset}-{game}-{seed}")


def plan(games: list, seeds: list, preset: str, output_root: str, training_flags: list,
         num_steps: int) -> list:
    """The RunSpecs of games x seeds; `training_flags` are `--name=value` for every run."""
    specs = []
    for game in games:
        short = resolve_env_id(game).split("/")[-1].split("-v")[0]
        for seed in seeds:
            directory = os.path.abspath(run_directory(output_root, preset, short, seed))
            command = (sys.executable, "-m", "dqn_tf.main", *training_flags, f"--env={game}",
                       f"--seed={seed}", f"--output_dir={directory}", "--noprogress")
            specs.append(RunSpec(short, seed, directory, command, num_steps))
    return specs


def _run_flags(spec: RunSpec) -> list:
    """The run's flags, but the cluster's address (which changes between sweeps)."""
    return [arg for arg in spec.command[3:] if not arg.startswith("--ray_address=")]


def is_finished(spec: RunSpec) -> bool:
    """Whether the run finished --num_steps with the flags this sweep would give it."""
    progress = results.read_progress(spec.output_dir)
    if not (progress and progress.get("state") == "finished"
            and progress.get("num_steps", 0) >= spec.num_steps):
        return False
    try:
        with open(os.path.join(spec.output_dir, SWEEP_FLAGS)) as f:
            return json.load(f) == _run_flags(spec)
    except (OSError, ValueError):
        return False


def train_one(spec: RunSpec) -> dict:
    """Runs one training process to its end (inside a Ray task); returns its outcome.

    Raises:
      RunInterrupted: it was stopped by a signal (exit 75); Ray retries the task.
    """
    os.makedirs(spec.output_dir, exist_ok=True)
    flags_path = os.path.join(spec.output_dir, SWEEP_FLAGS)
    if os.path.exists(flags_path):  # Written again only if this attempt finishes.
        os.remove(flags_path)
    log_path = os.path.join(spec.output_dir, "sweep_run.log")
    with open(log_path, "a") as log:
        log.write(f"\n$ {' '.join(spec.command)}\n")
        log.flush()
        # The training process dies with this Ray worker, as it would with its node:
        # dqn_tf.main asks the kernel for SIGKILL when its parent goes.
        source_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        proc = subprocess.run(spec.command, stdout=log, stderr=subprocess.STDOUT,
                              env=dict(os.environ, DQN_TF_PARENT_PID=str(os.getpid())),
                              cwd=source_root if os.path.isdir(source_root) else None)
    if proc.returncode == _EXIT_STOPPED_BY_SIGNAL:
        raise RunInterrupted(f"{spec.output_dir} was stopped by a signal")
    if proc.returncode != 0:
        with open(log_path) as log:
            errors = [line.strip() for line in log if line.startswith("error:")]
        return {"state": "failed", "returncode": proc.returncode,
                "error": errors[-1] if errors else f"exit {proc.returncode}, see {log_path}"}
    with open(flags_path, "w") as f:  # What makes a rerun skip it.
        json.dump(_run_flags(spec), f)
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


def _table(specs: list, states: dict) -> str:
    lines = [f"{'run':<40} {'state':<10} {'agent step':>12} {'latest eval':>12} "
             f"{'steps/s':>8}"]
    for spec in specs:
        progress = results.read_progress(spec.output_dir) or {}
        state = states[spec.output_dir]
        if state == "running" and not progress:
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
              max_running: int | None = None) -> dict:
    """Runs every spec not finished yet as a Ray task (Ray must be initialised), at most
    `max_running` at once (default: as many as Ray places); returns {output_dir: outcome
    dict}. Shows the table whenever a state changes, and every few polls."""
    import ray  # The sweep is the part of dqn_tf that needs Ray.
    task = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=max_retries,
                      retry_exceptions=[RunInterrupted])(train_one)
    states, outcomes, pending, queued = {}, {}, {}, []
    for spec in specs:
        if is_finished(spec):
            states[spec.output_dir] = "skipped"
            outcomes[spec.output_dir] = {"state": "skipped (finished before)"}
        else:
            states[spec.output_dir] = "queued"
            queued.append(spec)

    def launch():
        while queued and (max_running is None or len(pending) < max_running):
            spec = queued.pop(0)
            states[spec.output_dir] = "running"
            pending[task.remote(spec)] = spec

    launch()
    show(_table(specs, states))
    polls = 0
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1, timeout=poll_seconds)
        polls += 1
        for ref in done:
            spec = pending.pop(ref)
            try:
                outcome = ray.get(ref)
            except Exception as error:  # noqa: BLE001 - retries exhausted, node lost, ...
                outcome = {"state": "failed", "error": str(error).strip().splitlines()[-1]}
            outcomes[spec.output_dir] = outcome
            states[spec.output_dir] = outcome["state"]
        launch()
        if done or polls % 6 == 0:
            show(_table(specs, states))
    return outcomes


def summarise(specs: list, outcomes: dict, output_root: str, window: tuple) -> dict:
    """Writes sweep_summary.json and curves.png over every run; returns the summary."""
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
        specs = plan(f.games, seeds, preset, f.output_root, training_flags_given(f),
                     f.num_steps)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    os.makedirs(f.output_root, exist_ok=True)
    if all(is_finished(spec) for spec in specs):  # Nothing to run: no need for Ray.
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
            outcomes = run_sweep(specs, cpus_per_run=f.cpus_per_run,
                                 gpus_per_run=f.gpus_per_run, max_retries=f.max_retries,
                                 max_running=max_running if f.num_actors > 0 else None)
        except UserInputError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        finally:
            ray.shutdown()
    summary = summarise(specs, outcomes, f.output_root, (low, high))
    failed = [r for r in summary["runs"] if r.get("state") == "failed"]
    skipped = sum(1 for r in summary["runs"] if r.get("state", "").startswith("skipped"))
    print(f"sweep: {len(specs) - len(failed)} of {len(specs)} runs finished ({skipped} "
          f"skipped: finished before); "
          f"{os.path.join(f.output_root, 'sweep_summary.json')}, "
          f"{os.path.join(f.output_root, 'curves.png')}")
    for run in failed:
        print(f"failed: {run['output_dir']}: {run.get('error')}", file=sys.stderr)
    sys.exit(1 if failed else 0)


def define_flags():
    flags.DEFINE_list("games", None, "Games, comma-separated (any name --env takes).")
    flags.DEFINE_list("seeds", None, "Seeds, comma-separated.")
    flags.DEFINE_string("name", None, "The preset's name in run directories (default: the "
                        "--flagfile's name without .cfg, or dqn_default).")
    flags.DEFINE_string("output_root", "runs/sweep", "Where the runs' directories go, "
                        "<output_root>/<preset>-<Game>-<seed>.")
    flags.DEFINE_float("cpus_per_run", 2, "CPUs Ray reserves for each run.")
    flags.DEFINE_float("gpus_per_run", 0, "GPUs Ray reserves for each run.")
    flags.DEFINE_integer("max_retries", 3, "Times Ray retries a run that was stopped by a "
                         "signal or lost with its node.")
    flags.DEFINE_string("window", "1000000:2000000", "FROM_FRAMES:TO_FRAMES of the mean "
                        "training return in the summary.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
