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

While a sweep is under way, the aggregates cover the games that have runs, with as
many runs per game as every one of them has (the lowest seeds), and the references
are restricted to the same games: a partial table says so in its header.
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
METRICS = ("IQM", "Median", "Mean", "Optimality gap")
# HNS thresholds of the profiles: rliable's Atari 100k notebook goes to 8; past 4 every
# profile here is near 0, so the picture stops there.
PROFILE_TAUS = np.linspace(0.0, 4.0, 81)


def read_rows(path: str) -> list:
    """The rows of a CSV file whose lines starting with '#' are comments (sources)."""
    try:
        with open(path, newline="") as f:
            return list(csv.DictReader(line for line in f if not line.startswith("#")))
    except OSError as error:
        raise UserInputError(f"cannot read {path}: {error.strerror}") from None


def read_normalisation(path: str) -> dict:
    """{game: (random, human)} from a game,random,human CSV."""
    return {r["game"]: (float(r["random"]), float(r["human"])) for r in read_rows(path)}


def source_of(path: str) -> str:
    """The repository@commit:path that the comment lines heading a CSV name as its source
    (the file's name if they name none)."""
    with open(path) as f:
        header = "".join(line for line in f if line.startswith("#"))
    found = re.search(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}:\S+", header)
    return found.group(0) if found else os.path.basename(path)


def read_ours(path: str) -> dict:
    """{game: [B] mean returns of our runs, by seed} from a sweep's scores.csv."""
    runs = {}
    rows = read_rows(path)
    if rows and not {"game", "seed", "mean_return"} <= set(rows[0]):
        raise UserInputError(f"{path} is not a sweep's scores.csv: it needs the columns "
                             "game,seed,mean_return (python -m dqn_tf.sweep writes it)")
    seen = set()
    for row in sorted(rows, key=lambda r: (r["game"], int(r["seed"]))):
        key = (row["game"], int(row["seed"]))
        if key in seen:
            raise UserInputError(f"{path} has two rows of {row['game']} seed {row['seed']}: "
                                 "each run once (python -m dqn_tf.sweep writes it so)")
        seen.add(key)
        runs.setdefault(row["game"], []).append(float(row["mean_return"]))
    return {game: np.array(scores) for game, scores in runs.items()}


def read_reference(path: str) -> dict:
    """{game: [R] published scores of its runs, in run order} from a game,run,score CSV."""
    runs = {}
    for row in sorted(read_rows(path), key=lambda r: (r["game"], int(r["run"]))):
        runs.setdefault(row["game"], []).append(float(row["score"]))
    return {game: np.array(scores) for game, scores in runs.items()}


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


def select(ours: dict, references: dict, table: dict) -> tuple:
    """(games, runs of ours per game) that the aggregates cover: the games ours has runs
    of, with as many runs as each has; every reference must have them all.

    Raises:
      UserInputError: a game has no random/human scores, or a reference lacks it.
    """
    if not ours:
        raise UserInputError("the scores file has no runs yet")
    unknown = sorted(set(ours) - set(table))
    if unknown:
        raise UserInputError(f"no random/human scores for {', '.join(unknown)}: the "
                             f"normalisation table has {', '.join(sorted(table))}")
    games = sorted(ours)
    for name, scores in references.items():
        missing = sorted(set(games) - set(scores))
        if missing:
            raise UserInputError(f"reference {name} has no runs of {', '.join(missing)}")
    return games, min(len(ours[game]) for game in games)


def format_aggregates(names: list, matrices: dict, points: dict, intervals: dict,
                      markdown: bool = False) -> str:
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
        axis.set_title(metric)
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


def coverage_note(games: int, all_games: int, runs: int, most_runs: int) -> str:
    """What the aggregates cover, said in the report's first line: `games` of the
    benchmark's `all_games`, `runs` per game (the most any game has: `most_runs`)."""
    if games < all_games:
        note = (f"PARTIAL: the {games} of {all_games} games with runs so far, the references "
                "on the same games")
    else:
        note = f"all {all_games} games"
    if runs < most_runs:
        note += (f"; PARTIAL: {runs} run{'s' * (runs != 1)} per game (the lowest seeds), as "
                 "some games have no "
                 f"more yet (up to {most_runs})")
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
    references = {}
    for ref in reference_names:
        path = os.path.join(reference_dir, f"{ref}.csv")
        if not os.path.exists(path):
            known = sorted(f[:-4] for f in os.listdir(reference_dir)
                           if f.endswith(".csv") and f != NORMALISATION)
            raise UserInputError(f"--reference={ref}: no {path}; known: {', '.join(known)}")
        references[ref] = read_reference(path)
    games, runs = select(ours, references, table)
    matrices = {name: normalised_matrix(ours, games, runs, table)}
    for ref, scores in references.items():
        matrices[ref] = normalised_matrix(scores, games, min(len(scores[g]) for g in games),
                                          table)
    names = list(matrices)
    points, intervals = interval_estimates(matrices, reps, seed)
    coverage = coverage_note(len(games), len(table), runs, max(len(ours[g]) for g in games))
    normalisation = os.path.join(reference_dir, NORMALISATION)
    text = [f"Atari 100k, human-normalised scores (random/human: {NORMALISATION}, from "
            f"{source_of(normalisation)}); "
            f"{coverage}.",
            f"95 % stratified-bootstrap intervals: rliable, {reps:,} resamples of runs within "
            f"each game, seed {seed}.",
            format_aggregates(names, matrices, points, intervals, markdown), "",
            format_games(name, ours, references, table, markdown)]
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
