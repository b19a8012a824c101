"""A benchmark's scores as the field reports them: human-normalised aggregates with 95 %
stratified-bootstrap intervals (Agarwal et al., 2021, "Deep RL at the Edge of the
Statistical Precipice", computed with their `rliable`), a per-game table, and a picture.

    python -m dqn_tf.report benchmarks/atari100k/drq_eps/scores.csv \\
        --reference DER,DrQ_eps,SPR --out docs/atari100k.png

Reads our runs from the sweep's scores.csv (`dqn_tf.sweep.SCORE_COLUMNS`: one row per
run, its final evaluation's mean_return) and each reference's published runs from
<reference_dir>/<NAME>.csv (game,run,score; each file headed by its source). Every
score is normalised by <reference_dir>/random_human.csv (rliable's Atari 100k table; the
report names the source its header gives):

    HNS = (score - random) / (human - random)

and the runs of each algorithm form a [runs, games] matrix, over which it prints:

  IQM             mean of the middle 50 % of all runs' scores (25 % trimmed mean)
  Median, Mean    of the per-game mean scores
  Optimality gap  1 - mean(min(score, 1)): how far below human level, on average

each with a 95 % interval from 50,000 stratified bootstrap resamples (runs redrawn
within each game; rliable's `get_interval_estimates`, percentile method); then ours
(mean ± sd over seeds) beside each reference's mean, game by game. The PNG shows the
intervals and the performance profiles (the fraction of runs scoring above tau, with
95 % bands).

While a sweep is under way, the aggregates and the per-game table cover the games
that have runs and the seeds that every one of them has, and the references are
restricted to the same games: a partial table says so in its header.
Bootstrap draws are seeded (--seed): the same command prints the same numbers.
"""

import csv
import os
import re
import sys
import textwrap

from absl import app, flags, logging
import numpy as np

from dqn_tf.errors import UserInputError

REFERENCE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "benchmarks", "atari100k", "reference")
NORMALISATION = "random_human.csv"
AGENT_STEPS = 100_000  # Atari 100k: the length of every run, ours and the references'.
METRICS = ("IQM", "Median", "Mean", "Optimality gap")
# HNS thresholds of the profiles: rliable's Atari 100k notebook goes to 8; past 4 every
# profile here is near 0, so the picture stops there.
PROFILE_TAUS = np.linspace(0.0, 4.0, 81)


def read_rows(path: str, columns: tuple) -> list:
    """[(line number, {column: text})] of a CSV file whose lines starting with '#' are
    comments (sources) and whose header has `columns` (among others).

    Raises:
      UserInputError: the file cannot be read as text, or its header lacks a column.
    """
    try:
        with open(path, newline="") as f:
            numbered = [(n, line) for n, line in enumerate(f, start=1)
                        if not line.startswith("#")]
    except OSError as error:
        raise UserInputError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UserInputError(f"{path} is not a text CSV file") from None
    reader = csv.DictReader(line for _, line in numbered)
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        raise UserInputError(f"{path} has no column {', '.join(missing)}: its header must "
                             f"hold {','.join(columns)}")
    # reader.line_num counts the lines it has read: the row's own line among `numbered`.
    return [(numbered[reader.line_num - 1][0], row) for row in reader]


def number(path: str, line: int, row: dict, column: str, integer: bool = False):
    """The finite number (an int if `integer`) in `column` of the row at `line` of `path`.

    Raises:
      UserInputError: the cell is empty or is not such a number.
    """
    text = row.get(column)
    try:
        value = int(text) if integer else float(text)
    except (TypeError, ValueError):
        value = None
    if value is None or not np.isfinite(value):
        kind = "a whole number" if integer else "a finite number"
        said = "empty" if text in (None, "") else repr(text)
        raise UserInputError(f"{path} line {line}: {column} is {said}, not {kind}")
    return value


def read_normalisation(path: str) -> dict:
    """{game: (random, human)} from a game,random,human CSV."""
    return {row["game"]: (number(path, line, row, "random"), number(path, line, row, "human"))
            for line, row in read_rows(path, ("game", "random", "human"))}


def source_of(path: str) -> str:
    """The repository@commit:path that the comment lines heading a CSV name as its source
    (the file's name if they name none)."""
    with open(path) as f:
        header = "".join(line for line in f if line.startswith("#"))
    found = re.search(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}:\S+", header)
    return found.group(0) if found else os.path.basename(path)


def read_ours(path: str) -> dict:
    """{game: {seed: mean return}} of our runs, from a sweep's scores.csv.

    Raises:
      UserInputError: a column is missing, a cell is not a number, a game and seed come
        twice, or a run is not of `AGENT_STEPS` (agent_steps).
    """
    runs = {}
    try:
        rows = read_rows(path, ("game", "seed", "agent_steps", "mean_return"))
    except UserInputError as error:
        raise UserInputError(f"{error} (it is not a sweep's scores.csv: python -m "
                             "dqn_tf.sweep writes one)") from None
    for line, row in rows:
        game, seed = row["game"], number(path, line, row, "seed", integer=True)
        if seed in runs.setdefault(game, {}):
            raise UserInputError(f"{path} has two rows of {game} seed {seed} (line {line}): "
                                 "each run once (python -m dqn_tf.sweep writes it so)")
        runs[game][seed] = number(path, line, row, "mean_return")
        steps = number(path, line, row, "agent_steps", integer=True)
        if steps != AGENT_STEPS:
            raise UserInputError(f"{path} line {line}: runs of {steps:,} agent steps; Atari "
                                 f"100k scores are taken after {AGENT_STEPS:,}, as the "
                                 "references' are")
    return runs


def read_reference(path: str) -> dict:
    """{game: [R] published scores of its runs, in run order} from a game,run,score CSV."""
    runs = {}
    rows = read_rows(path, ("game", "run", "score"))
    for line, row in sorted(rows, key=lambda r: (r[1]["game"],
                                                 number(path, r[0], r[1], "run", True))):
        runs.setdefault(row["game"], []).append(number(path, line, row, "score"))
    return {game: np.array(scores) for game, scores in runs.items()}


def common_seeds(ours: dict) -> list:
    """The seeds that every game of `ours` ({game: {seed: score}}) has runs of, sorted."""
    return sorted(set.intersection(*(set(runs) for runs in ours.values()))) if ours else []


def runs_of(ours: dict, seeds: list) -> dict:
    """{game: [len(seeds)] our scores of `seeds`, in that order}."""
    return {game: np.array([runs[seed] for seed in seeds]) for game, runs in ours.items()}


def normalised_matrix(scores: dict, games: list, num_runs: int, table: dict) -> np.ndarray:
    """[num_runs, games] human-normalised scores: the first `num_runs` runs of each game."""
    columns = []
    for game in games:
        random_score, human_score = table[game]
        columns.append((scores[game][:num_runs] - random_score) / (human_score - random_score))
    return np.stack(columns, axis=1)


def aggregate(matrix: np.ndarray) -> np.ndarray:
    """[4] `METRICS` of a [runs, games] HNS matrix (rliable's estimators)."""
    from rliable import metrics
    return np.array([metrics.aggregate_iqm(matrix), metrics.aggregate_median(matrix),
                     metrics.aggregate_mean(matrix), metrics.aggregate_optimality_gap(matrix)])


def interval_estimates(matrices: dict, reps: int, seed: int) -> tuple:
    """({name: [4] point estimates}, {name: [2, 4] lower and upper 95 % bounds}).

    rliable's StratifiedBootstrap draws its indices from NumPy's global generator: it
    is seeded here, per algorithm, so each algorithm's interval is the same whichever
    others are in the report."""
    from rliable import library
    points, intervals = {}, {}
    for name, matrix in matrices.items():
        np.random.seed(seed)
        point, interval = library.get_interval_estimates({name: matrix}, aggregate, reps=reps)
        points[name], intervals[name] = point[name], interval[name]
    return points, intervals


def performance_profiles(matrices: dict, reps: int, seed: int) -> tuple:
    """({name: [T] fraction of runs above each tau}, {name: [2, T] 95 % bands})."""
    from rliable import library
    profiles, bands = {}, {}
    for name, matrix in matrices.items():
        np.random.seed(seed)
        profile, band = library.create_performance_profile({name: matrix}, PROFILE_TAUS,
                                                           reps=reps)
        profiles[name], bands[name] = profile[name], band[name]
    return profiles, bands


def hns_matrices(name: str, ours: dict, references: dict, table: dict) -> tuple:
    """(games, seeds, {method: [runs, games] HNS matrix}) that the aggregates take: ours
    (as `name`) over the seeds every game has, then each reference over its runs of the
    same games (as many for each game: the fewest any of them has)."""
    games, seeds = select(ours, references, table)
    matrices = {name: normalised_matrix(runs_of(ours, seeds), games, len(seeds), table)}
    for ref, scores in references.items():
        matrices[ref] = normalised_matrix(scores, games, min(len(scores[g]) for g in games),
                                          table)
    return games, seeds, matrices


def select(ours: dict, references: dict, table: dict) -> tuple:
    """(games, seeds) that the aggregates cover: the games ours ({game: {seed: score}})
    has runs of, and the seeds that every one of them has; every reference must have
    those games.

    Raises:
      UserInputError: no runs, a game without random/human scores, no seed that every
        game has, or a reference that lacks a game.
    """
    if not ours:
        raise UserInputError("the scores file has no runs yet")
    unknown = sorted(set(ours) - set(table))
    if unknown:
        raise UserInputError(f"no random/human scores for {', '.join(unknown)}: the "
                             f"normalisation table has {', '.join(sorted(table))}")
    games, seeds = sorted(ours), common_seeds(ours)
    if not seeds:
        held = "; ".join(f"{game} {','.join(map(str, sorted(ours[game])))}" for game in games)
        raise UserInputError(f"no seed has runs of every game yet (seeds by game: {held}): "
                             "the aggregates need the same seeds of every game")
    for name, scores in references.items():
        missing = sorted(set(games) - set(scores))
        if missing:
            raise UserInputError(f"reference {name} has no runs of {', '.join(missing)}")
    return games, seeds


def format_aggregates(names: list, matrices: dict, points: dict, intervals: dict,
                      markdown: bool = False) -> str:
    """One line per algorithm: its games × runs and each of `METRICS` as point [low, high]
    (`points`: {name: [4]}, `intervals`: {name: [2, 4]}); a Markdown table if `markdown`."""
    def cell(name, i):
        return f"{points[name][i]:.3f} [{intervals[name][0, i]:.3f}, {intervals[name][1, i]:.3f}]"

    if markdown:
        lines = ["| | games × runs | " + " | ".join(METRICS) + " |",
                 "|---" * (len(METRICS) + 2) + "|"]
        for name in names:
            runs, games = matrices[name].shape
            lines.append(f"| {name} | {games} × {runs} | " +
                         " | ".join(cell(name, i) for i in range(len(METRICS))) + " |")
        return "\n".join(lines)
    lines = [f"{'':<12} {'games x runs':>13}" +
             "".join(f"  {metric:<22}" for metric in METRICS)]
    for name in names:
        runs, games = matrices[name].shape
        cells = "".join(f"  {cell(name, i):<22}" for i in range(len(METRICS)))
        lines.append(f"{name:<12} {f'{games} x {runs}':>13}{cells}")
    return "\n".join(lines)


def format_games(name: str, ours: dict, references: dict, table: dict,
                 markdown: bool = False) -> str:
    """One line per game: random, human, ours (mean ± sd over runs), each reference's mean."""
    rows = []
    for game in sorted(table):
        random_score, human_score = table[game]
        if game in ours:
            scores = ours[game]
            sd = scores.std(ddof=1) if len(scores) > 1 else 0.0
            ours_cell = f"{scores.mean():.1f} ± {sd:.1f} ({len(scores)})"
        else:
            ours_cell = "-"
        refs = [f"{scores[game].mean():.1f}" if game in scores else "-"
                for scores in references.values()]
        rows.append([game, f"{random_score:.1f}", f"{human_score:.1f}", ours_cell] + refs)
    header = ["game", "random", "human", f"{name} mean ± sd (runs)"] + list(references)
    if markdown:
        return "\n".join(["| " + " | ".join(header) + " |", "|---" * len(header) + "|"] +
                          ["| " + " | ".join(row) + " |" for row in rows])
    widths = [16, 8, 9, 28] + [9] * len(references)
    return "\n".join(f"{row[0]:<16}" + "".join(f" {c:>{w}}" for c, w in zip(row[1:], widths[1:]))
                     for row in [header] + rows)


def plot(names: list, points: dict, intervals: dict, profiles: dict, bands: dict,
         path: str, title: str) -> None:
    """The interval estimates, one panel per metric, over the performance profiles."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import plot_utils
    colors = dict(zip(names, plt.get_cmap("tab10").colors))
    # Constrained layout leaves room for a title of several lines above the panels.
    figure = plt.figure(figsize=(15, 4.6 + 0.45 * len(names)), layout="constrained")
    grid = figure.add_gridspec(2, len(METRICS), height_ratios=[0.35 * len(names), 3.2])
    for i, metric in enumerate(METRICS):
        axis = figure.add_subplot(grid[0, i])
        for row, name in enumerate(names):
            low, high = intervals[name][:, i]
            axis.barh(row, high - low, left=low, height=0.6, color=colors[name], alpha=0.75)
            axis.vlines(points[name][i], row - 0.3, row + 0.3, color="k", alpha=0.6)
        axis.set_yticks(range(len(names)), names if i == 0 else [""] * len(names))
        axis.invert_yaxis()
        axis.set_title(metric + (" (lower is better)" if metric == "Optimality gap" else ""))
        axis.grid(True, axis="x", alpha=0.3)
        axis.set_xlabel("human-normalised score")
    axis = figure.add_subplot(grid[1, :])
    plot_utils.plot_performance_profiles(
        {n: profiles[n] for n in names}, PROFILE_TAUS, performance_profile_cis=bands,
        colors=colors, ax=axis, xlabel=r"human-normalised score ($\tau$)",
        ylabel=r"fraction of runs with score $> \tau$", labelsize="medium",
        ticklabelsize="medium", legend=True)
    axis.legend(loc="upper right")
    figure.suptitle(textwrap.fill(title, 110))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)


def seed_names(seeds: list) -> str:
    """'seed 0', 'seeds 0–2' (consecutive) or 'seeds 0, 2'."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def coverage_note(games: int, all_games: int, seeds: list, most_runs: int) -> str:
    """What the aggregates cover, said in the report's first line: `games` of the
    benchmark's `all_games`, the `seeds` every one of them has (some game has
    `most_runs`)."""
    if games < all_games:
        note = (f"PARTIAL: the {games} of {all_games} games with runs so far, the references "
                "on the same games")
    else:
        note = f"all {all_games} games"
    runs = len(seeds)
    if runs < most_runs:
        note += (f"; PARTIAL: {runs} run{'s' * (runs != 1)} per game ({seed_names(seeds)}, "
                 f"which every game has; some have up to {most_runs}), here and game by game")
    if runs == 1:
        note += ("; one run per game: ours has intervals of no width, as the bootstrap "
                 "resamples runs within each game")
    return note


def report(scores_path: str, reference_names: list, reference_dir: str, name: str,
           out: str | None, reps: int, profile_reps: int, seed: int,
           markdown: bool = False) -> str:
    """Everything the command prints (and the PNG at `out`)."""
    try:
        import rliable  # noqa: F401
    except ImportError:
        raise UserInputError('dqn_tf.report needs rliable: pip install -e ".[report]"') from None
    table = read_normalisation(os.path.join(reference_dir, NORMALISATION))
    ours = read_ours(scores_path)
    references, sources = {}, []
    for ref in reference_names:
        path = os.path.join(reference_dir, f"{ref}.csv")
        if not os.path.exists(path):
            known = sorted(f[:-4] for f in os.listdir(reference_dir)
                           if f.endswith(".csv") and f != NORMALISATION)
            raise UserInputError(f"--reference={ref}: no {path}; known: {', '.join(known)}")
        references[ref] = read_reference(path)
        sources.append(f"{ref} from {source_of(path)}")
    if name in references:
        raise UserInputError(f"--name={name} is a reference's name: name ours otherwise")
    games, seeds, matrices = hns_matrices(name, ours, references, table)
    runs, chosen = len(seeds), runs_of(ours, seeds)
    names = list(matrices)
    points, intervals = interval_estimates(matrices, reps, seed)
    coverage = coverage_note(len(games), len(table), seeds, max(map(len, ours.values())))
    normalisation = os.path.join(reference_dir, NORMALISATION)
    text = [f"Atari 100k, human-normalised scores (random/human: {NORMALISATION}, from "
            f"{source_of(normalisation)}); "
            f"{coverage}.",
            f"95 % stratified-bootstrap intervals: rliable, {reps:,} resamples of runs within "
            f"each game, seed {seed}.",
            *([f"Published runs: {'; '.join(sources)}."] if sources else []),
            format_aggregates(names, matrices, points, intervals, markdown), "",
            format_games(name, chosen, references, table, markdown)]
    if out:
        profiles, bands = performance_profiles(matrices, profile_reps, seed)
        plot(names, points, intervals, profiles, bands, out,
             f"Atari 100k: {name} ({runs} run{'s' if runs != 1 else ''} per game) and "
             f"published runs; {coverage}")
        text.append(f"\nwrote {out}")
    return "\n".join(text)


def main(argv):
    if len(argv) != 2:
        raise app.UsageError("usage: python -m dqn_tf.report SCORES_CSV [--reference ...]")
    f = flags.FLAGS
    if not f["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # rliable logs each algorithm at INFO.
    scores_path = argv[1]
    name = f.name or os.path.basename(os.path.dirname(os.path.abspath(scores_path)))
    try:
        if f.reps < 100 or f.profile_reps < 100:
            raise UserInputError("--reps and --profile_reps must be at least 100")
        print(report(scores_path, f.reference, f.reference_dir, name, f.out, f.reps,
                     f.profile_reps, f.seed, f.markdown))
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def define_flags():
    flags.DEFINE_list("reference", ["DER", "DrQ_eps", "SPR"], "Published run sets to "
                      "compare with: names of CSV files in --reference_dir.")
    flags.DEFINE_string("reference_dir", REFERENCE_DIR, "Where the reference runs and "
                        f"{NORMALISATION} are.")
    flags.DEFINE_string("name", None, "Our algorithm's name in the tables (default: the "
                        "scores file's directory, e.g. drq_eps).")
    flags.DEFINE_string("out", None, "Write the picture here (PNG).")
    flags.DEFINE_integer("reps", 50_000, "Bootstrap resamples for the intervals.")
    flags.DEFINE_integer("profile_reps", 2_000, "Bootstrap resamples for the profiles' bands.")
    flags.DEFINE_integer("seed", 0, "Seed of the bootstrap draws.")
    flags.DEFINE_bool("markdown", False, "Print the tables as Markdown (as README.md and "
                      "docs/atari100k.md show them).")


if __name__ == "__main__":
    define_flags()
    app.run(main)
