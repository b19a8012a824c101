"""Tests for dqn_tf.report: the reference runs and normalisation against published
numbers, the aggregates against NumPy, and the command end to end."""

import csv
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from dqn_tf import report

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TABLE = report.read_normalisation(os.path.join(report.REFERENCE_DIR, report.NORMALISATION))


def reference_matrix(name):
    scores = report.read_reference(os.path.join(report.REFERENCE_DIR, f"{name}.csv"))
    return report.normalised_matrix(scores, sorted(TABLE), 100, TABLE)


def test_the_normalisation_is_atari57s_on_the_26_games_of_atari100k():
    from dqn_tf import protocols
    assert sorted(TABLE) == sorted(protocols.ATARI_100K_GAMES)
    assert all(TABLE[game] == protocols.ATARI57[game] for game in TABLE)


@pytest.mark.parametrize("name, median, mean", [
    # Printed by the cell "Load all score dicts" of google-research/rliable@3ccd9f4:
    # deep_rl_precipice_colab.ipynb, from the original score files: our copies, and our
    # random/human table, give the same numbers.
    ("DER", 0.18936086395020874, 0.35030497562762936),
    ("DrQ_eps", 0.312901399063074, 0.4647412513971657),
    ("SPR", 0.39562938291779215, 0.6157957428691673)])
def test_references_reproduce_the_published_median_and_mean(name, median, mean):
    matrix = reference_matrix(name)
    assert matrix.shape == (100, 26)
    point = report.aggregate(matrix)
    assert point[1] == pytest.approx(median, rel=1e-9)
    assert point[2] == pytest.approx(mean, rel=1e-9)


def test_aggregates_match_numpy():
    matrix = np.random.default_rng(0).gamma(0.7, 0.5, (8, 26))
    flat = np.sort(matrix.ravel())
    quarter = len(flat) // 4  # 208 scores: the middle 104.
    iqm = flat[quarter:len(flat) - quarter].mean()
    per_game = matrix.mean(axis=0)
    expected = [iqm, np.median(per_game), per_game.mean(), np.mean(1 - np.minimum(matrix, 1))]
    np.testing.assert_allclose(report.aggregate(matrix), expected, rtol=1e-12)


def test_intervals_are_seeded_stratified_and_contain_their_point():
    rng = np.random.default_rng(1)
    matrices = {"a": rng.gamma(0.7, 0.5, (5, 26)), "b": rng.gamma(0.7, 0.5, (20, 26))}
    points, intervals = report.interval_estimates(matrices, reps=500, seed=3)
    again, intervals_again = report.interval_estimates({"b": matrices["b"]}, 500, seed=3)
    np.testing.assert_array_equal(intervals["b"], intervals_again["b"])  # Same seed, same.
    for name in matrices:
        low, high = intervals[name]
        assert (low <= points[name]).all() and (points[name] <= high).all()
        assert (low < high).all()
    assert (np.diff(intervals["b"], axis=0) < np.diff(intervals["a"], axis=0)).all()
    # Runs are redrawn within each game: games whose runs all agree leave nothing to draw.
    constant = np.tile(rng.gamma(0.7, 0.5, 26), (5, 1))
    _, fixed = report.interval_estimates({"c": constant}, reps=200, seed=0)
    np.testing.assert_allclose(fixed["c"][0], fixed["c"][1])


def write_scores(path, rows):
    with open(path, "w") as f:
        f.write("game,seed,agent_steps,episodes,mean_return,wall_seconds,eval_seconds,"
                "steps_per_second\n")
        for game, seed, value in rows:
            f.write(f"{game},{seed},100000,100,{value},3000,100,35\n")


def test_the_first_line_says_what_the_aggregates_cover():
    assert report.coverage_note(26, 26, [0, 1, 2], 3) == "all 26 games"
    partial = report.coverage_note(8, 26, [0, 1], 3)
    assert partial.startswith("PARTIAL: the 8 of 26 games")
    assert "PARTIAL: 2 runs per game (seeds 0–1, which every game has" in partial
    assert "no width" not in partial
    # One seed per game: the bootstrap has nothing to resample, which the reader is told.
    assert "intervals of no width" in report.coverage_note(8, 26, [0], 1)
    assert "PARTIAL: 1 run per game (seed 0," in report.coverage_note(26, 26, [0], 2)
    assert "(seeds 0, 2," in report.coverage_note(26, 26, [0, 2], 3)


def test_the_aggregates_take_the_seeds_every_game_has():
    ours = {"Pong": {0: 1.0, 2: 3.0, 1: 2.0}, "Boxing": {0: 5.0, 2: 7.0}, "Alien": {2: 9.0, 0: 8.0}}
    games, seeds = report.select(ours, {}, TABLE)
    assert games == ["Alien", "Boxing", "Pong"] and seeds == [0, 2]  # Not Pong's seed 1.
    runs = report.runs_of(ours, seeds)
    np.testing.assert_array_equal(runs["Pong"], [1.0, 3.0])
    np.testing.assert_array_equal(runs["Alien"], [8.0, 9.0])
    with pytest.raises(report.UserInputError, match="no seed has runs of every game yet"):
        report.select({"Pong": {0: 1.0}, "Boxing": {1: 2.0}}, {}, TABLE)


def test_the_normalisation_is_named_by_its_source():
    source = report.source_of(os.path.join(report.REFERENCE_DIR, report.NORMALISATION))
    assert source.startswith("google-research/rliable@") and source.endswith(".ipynb")


@pytest.mark.slow
def test_command_prints_partial_aggregates_games_and_writes_the_picture(tmp_path):
    scores = tmp_path / "drq_eps" / "scores.csv"
    scores.parent.mkdir()
    # Pong at the human score (HNS 1), Boxing's runs at random and human (HNS 0 and 1);
    # Pong's seed 2 (at random) is left out of the aggregates and the per-game table, as
    # Boxing has no seed 2 yet.
    write_scores(scores, [("Pong", 0, 14.6), ("Pong", 1, 14.6), ("Pong", 2, -21.0),
                          ("Boxing", 0, 0.1), ("Boxing", 1, 12.1)])
    out = tmp_path / "docs" / "report.png"
    proc = subprocess.run(
        [sys.executable, "-m", "dqn_tf.report", str(scores), "--reference=DER,SPR",
         f"--out={out}", "--reps=200", "--profile_reps=100"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    assert "PARTIAL: the 2 of 26 games" in text and "PARTIAL: 2 runs per game" in text
    assert "random/human: random_human.csv, from google-research/rliable@" in text
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    # Ours: 2 games x 2 runs, HNS [[0, 1], [1, 1]] (Boxing, Pong): IQM of 0, 1, 1, 1 is 1;
    # game means 0.5 and 1: median and mean 0.75; optimality gap 1 - 0.75.
    cells = lines["drq_eps"].split()
    assert cells[1:4] == ["2", "x", "2"]
    assert [cells[i] for i in (4, 7, 10, 13)] == ["1.000", "0.750", "0.750", "0.250"]
    assert "2 x 100" in lines["DER"] and "2 x 100" in lines["SPR"]
    assert "6.1 ± 8.5 (2)" in lines["Boxing"] and "14.6 ± 0.0 (2)" in lines["Pong"]
    assert "PARTIAL: 2 runs per game (seeds 0–1," in text
    assert re.search(r"Published runs: DER from [\w-]+/[\w-]+@[0-9a-f]{40}:\S+; SPR from ", text)
    assert lines["Alien"].split()[3] == "-"  # No runs of ours yet.
    assert os.path.getsize(out) > 20_000


GOOD_ROW = "Pong,0,100000,100,1.0,3000,100,35\n"
HEADER = ("game,seed,agent_steps,episodes,mean_return,wall_seconds,eval_seconds,"
          "steps_per_second\n")


@pytest.mark.parametrize("args, contents, message", [
    (["--reference=NoSuch"], None, "--reference=NoSuch: no "),
    (["--reps=5"], None, "--reps and --profile_reps must be at least 100"),
    (["--name=DER"], None, "--name=DER is a reference's name"),
    ([], HEADER + GOOD_ROW + "Boxing,0,100000,100,abc,3000,100,35\n",
     "line 3: mean_return is 'abc', not a finite number"),
    ([], HEADER + GOOD_ROW + "Boxing,0,100000,100,nan,3000,100,35\n",
     "line 3: mean_return is 'nan', not a finite number"),
    ([], HEADER + "Pong,zero,100000,100,1.0,3000,100,35\n",
     "line 2: seed is 'zero', not a whole number"),
    ([], HEADER + GOOD_ROW + "Boxing,0\n", "line 3: mean_return is empty, not a finite number"),
    ([], HEADER + GOOD_ROW + "Boxing,0,50000,100,1.0,3000,100,35\n",
     "line 3: runs of 50,000 agent steps; Atari 100k scores are taken after 100,000"),
    ([], HEADER + "Pong,0,50000,100,1.0,3000,100,35\n",
     "line 2: runs of 50,000 agent steps; Atari 100k scores are taken after 100,000"),
    ([], "game,seed,score\nPong,0,1.0\n", "has no column agent_steps, mean_return"),
    ([], b"\x89PNG\r\n\x1a\n\xff\xfe", "is not a text CSV file"),
])
def test_command_refuses_bad_input_in_one_line(tmp_path, args, contents, message):
    scores = tmp_path / "scores.csv"
    if contents is None:
        write_scores(scores, [("Pong", 0, 1.0)])
    elif isinstance(contents, bytes):
        scores.write_bytes(contents)
    else:
        scores.write_text(contents)
    proc = subprocess.run([sys.executable, "-m", "dqn_tf.report", str(scores), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and message in proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1


def test_a_file_that_is_not_a_sweeps_scores_is_refused(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("game,run,score\nPong,0,1.0\n")
    with pytest.raises(report.UserInputError, match="not a sweep's scores.csv"):
        report.read_ours(str(other))
    twice = tmp_path / "twice.csv"
    write_scores(twice, [("Pong", 0, 1.0), ("Pong", 0, 2.0)])
    with pytest.raises(report.UserInputError, match="two rows of Pong seed 0"):
        report.read_ours(str(twice))
    with pytest.raises(report.UserInputError, match="no random/human scores for Tetris"):
        report.select({"Tetris": {0: 1.0}}, {}, TABLE)


def test_markdown_tables_hold_the_same_figures():
    scores = report.read_ours(os.path.join(ROOT, "benchmarks/atari100k/drq_eps/scores.csv"))
    references = {name: report.read_reference(os.path.join(report.REFERENCE_DIR, f"{name}.csv"))
                  for name in ("DER", "SPR")}
    scores = report.runs_of(scores, report.common_seeds(scores))
    plain = report.format_games("ours", scores, references, TABLE).splitlines()
    markdown = report.format_games("ours", scores, references, TABLE, markdown=True).splitlines()
    assert len(markdown) == len(plain) + 1  # The |---| line.
    for text, row in zip(plain[1:], markdown[2:]):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == text.split()[0] and cells[-1] == text.split()[-1]


COMMITTED_SCORES = os.path.join(ROOT, "benchmarks/atari100k/drq_eps/scores.csv")


def markdown_rows(path, section):
    """{first cell: [cells]} of the Markdown table rows in `section` of the file at `path`."""
    text = open(os.path.join(ROOT, path)).read()
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and not cells[0].startswith("---"):
            rows[cells[0].strip("*`")] = cells
    return rows


def test_the_readmes_aggregates_are_the_committed_scores():
    """README's Atari-100k table must be what the report prints for the scores in the
    repository: its point estimates are recomputed here (the intervals need the full
    bootstrap: `python -m dqn_tf.report ... --markdown` prints them)."""
    ours = report.read_ours(COMMITTED_SCORES)
    references = {name: report.read_reference(os.path.join(report.REFERENCE_DIR, f"{name}.csv"))
                  for name in ("DER", "DrQ_eps", "SPR")}
    games, seeds = report.select(ours, references, TABLE)
    rows = markdown_rows("README.md", "## Atari 100k")
    matrices = {"drq_eps": report.normalised_matrix(report.runs_of(ours, seeds), games,
                                                    len(seeds), TABLE)}
    for name, scores in references.items():
        matrices[name] = report.normalised_matrix(scores, games, 100, TABLE)
    assert set(matrices) <= set(rows), sorted(rows)
    for name, matrix in matrices.items():
        assert rows[name][1] == f"{len(games)} × {matrix.shape[0]}", rows[name]
        printed = [float(cell.split()[0]) for cell in rows[name][2:6]]
        np.testing.assert_allclose(printed, report.aggregate(matrix), atol=5e-4, err_msg=name)


def test_the_per_game_table_of_the_docs_is_the_committed_scores():
    ours = report.read_ours(COMMITTED_SCORES)
    references = {name: report.read_reference(os.path.join(report.REFERENCE_DIR, f"{name}.csv"))
                  for name in ("DER", "DrQ_eps", "SPR")}
    chosen = report.runs_of(ours, report.common_seeds(ours))  # As the report takes them.
    expected = report.format_games("drq_eps", chosen, references, TABLE, markdown=True)
    assert expected in open(os.path.join(ROOT, "docs/atari100k.md")).read()


def load_docs_updater():
    """bench/update_atari100k_docs.py as a module (bench/ is scripts, not a package)."""
    path = os.path.join(ROOT, "bench", "update_atari100k_docs.py")
    spec = importlib.util.spec_from_file_location("update_atari100k_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readmes_status_and_compute_lines_are_the_committed_scores():
    updater = load_docs_updater()
    with open(COMMITTED_SCORES, newline="") as f:
        rows = list(csv.DictReader(f))
    readme = open(os.path.join(ROOT, "README.md")).read()
    status = re.search(r"\*\*(?:In progress|Finished): ([^*]*)\.\*\*", readme).group(1)
    day = re.search(r"\d{4}-\d{2}-\d{2}", status).group(0)  # The day it was updated.
    assert status == updater.status_line(rows, day)
    assert updater.compute_line(rows) in readme
    assert updater.compute_line(rows) in open(os.path.join(ROOT, "docs/atari100k.md")).read()


def test_the_goals_line_is_the_committed_scores():
    """The README's goals line: met or missed from the scores' unrounded IQMs (recomputed
    here through the report's own matrices) and the lower end in the README's table."""
    updater = load_docs_updater()
    readme = open(os.path.join(ROOT, "README.md")).read()
    table = readme.split("<!-- atari_table -->\n", 1)[1].split("<!-- /atari_table -->", 1)[0]
    with open(COMMITTED_SCORES, newline="") as f:
        finished = len(list(csv.DictReader(f))) == updater.TOTAL_RUNS
    iqms = updater.point_iqms()
    assert set(iqms) == {"drq_eps", "DER", "DrQ_eps", "SPR"}
    assert f"{iqms['DER']:.3f}" == "0.183" and f"{iqms['DrQ_eps']:.3f}" == "0.280"
    goals = updater.goals_line(iqms, updater.iqm_lower_end(table.splitlines()), finished)
    assert f"<!-- atari_goals -->\n{goals}\n<!-- /atari_goals -->" in readme
    assert goals in open(os.path.join(ROOT, "docs/atari100k.md")).read()


def test_the_goals_line_says_met_or_missed_by_how_much():
    updater = load_docs_updater()
    refs = {"DER": 0.1834, "DrQ_eps": 0.2801, "SPR": 0.337}
    both = updater.goals_line(dict(refs, drq_eps=0.29), 0.200, finished=True)
    assert both.count("**met**") == 2 and "so far" not in both
    assert "lower end, 0.200, against 0.183" in both
    one = updater.goals_line(dict(refs, drq_eps=0.249), 0.215, finished=False)
    assert "so far" in one and "**met**" in one and "**missed** by 0.031" in one
    none = updater.goals_line(dict(refs, drq_eps=0.15), 0.100, finished=True)
    assert "missed** by 0.083" in none and "missed** by 0.130" in none and "met" not in none
    # A miss that rounds to a tie at 3 decimals is still a miss.
    tie = updater.goals_line(dict(refs, drq_eps=0.2799), 0.25, finished=True)
    assert "(0.280 against 0.280: **missed** by less than 0.001)" in tie
    row = "| drq_eps | 26 × 3 | 0.249 [0.215, 0.284] | 0.194 [0.153, 0.251] |"
    assert updater.iqm_lower_end(["| DER | 26 × 100 | 0.183 [0.178, 0.189] |", row]) == 0.215


def test_the_compute_line_drops_so_far_when_every_run_is_in():
    updater = load_docs_updater()
    row = {"game": "Pong", "seed": "0", "wall_seconds": "3600", "eval_seconds": "60",
           "steps_per_second": "30"}
    assert updater.compute_line([row] * 77).startswith("Compute so far: 77.0 hours")
    assert updater.compute_line([row] * 78).startswith("Compute: 78.0 hours")
    assert "over a tenth" not in updater.compute_line([row] * 78)


def test_the_compute_line_names_the_runs_whose_evaluation_took_over_a_tenth():
    updater = load_docs_updater()
    rows = [{"game": game, "seed": seed, "wall_seconds": "1000", "eval_seconds": evals,
             "steps_per_second": "30"}
            for game, seed, evals in [("Pong", "0", "50"), ("Breakout", "0", "205"),
                                      ("Breakout", "1", "100"), ("Boxing", "2", "148")]]
    line = updater.compute_line(rows)
    assert line.endswith("; over a tenth: Breakout seed 0 (20.5 %), Boxing seed 2 (14.8 %).")
    assert "5.0–20.5 % of a run" in line and "evaluation 13 % of the total" in line


def test_the_status_line_says_which_seeds_the_aggregates_use():
    updater = load_docs_updater()
    rows = [{"game": f"g{i}", "seed": "0"} for i in range(26)]
    ones = [dict(row, seed="1") for row in rows]
    twos = [dict(row, seed="2") for row in rows]
    assert "seed 0 of every game (1 run per game)" in updater.status_line(rows, "d")
    assert "no width" in updater.status_line(rows, "d")
    two = updater.status_line(rows + ones + twos[:5], "d")
    assert two.startswith("57 of 78 runs") and "seeds 0–1 of every game (2 runs" in two
    assert "no width" not in two
    # A game without seed 1 but with seed 2: the aggregates take seeds 0 and 2 of the rest.
    gap = updater.status_line(rows + ones[1:] + twos, "d")
    assert "seeds 0, 2 of every game (2 runs" in gap
    assert "games with runs so far" in updater.status_line(rows[:3], "d")
    assert updater.status_line(rows + ones + twos, "d") == (
        "all 78 runs (26 games × seeds 0, 1, 2), d")


if __name__ == "__main__":  # Under `bazel test`: the fast tests of this file.
    sys.exit(pytest.main([__file__, "-q", "-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]))
