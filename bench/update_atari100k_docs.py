"""Rewrites the Atari-100k results in README.md and docs/atari100k.md, and the picture
docs/atari100k.png, from benchmarks/atari100k/drq_eps/scores.csv:

    python bench/update_atari100k_docs.py

It runs the report's own command and puts what it prints between the documents' markers
(`<!-- atari_table -->`, `<!-- atari_goals -->`, `<!-- atari_compute -->`,
`<!-- results -->`, and the README's "In progress" line). tests/report_test.py checks that the
documents hold the committed scores' numbers: the README's aggregates, the per-game table, and
the status, goals and compute lines made by `status_line`, `goals_line` and `compute_line`.
"""

import argparse
import csv
import datetime
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)  # This checkout's dqn_tf, as the report it runs in ROOT.
from dqn_tf import report  # noqa: E402

SCORES = "benchmarks/atari100k/drq_eps/scores.csv"
REFERENCES = ("DER", "DrQ_eps", "SPR")
REPORT = ["-m", "dqn_tf.report", SCORES, "--reference", ",".join(REFERENCES),
          "--out", "docs/atari100k.png", "--markdown"]
TOTAL_RUNS = 78  # 26 games x seeds 0, 1, 2.


def replace_block(text: str, name: str, body: str) -> str:
    """`text` with what lies between <!-- name --> and <!-- /name --> replaced by `body`."""
    pattern = re.compile(rf"(<!-- {name} -->\n).*?(<!-- /{name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"error: no <!-- {name} --> block to fill")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)


def seeds_of_every_game(rows: list, games: int = 26) -> list:
    """The seeds that every one of the `games` games has a run of, as the report's
    aggregates take them ([] while some game has none)."""
    by_game = {}
    for row in rows:
        by_game.setdefault(row["game"], set()).add(int(row["seed"]))
    return report.common_seeds(by_game) if len(by_game) == games else []


def status_line(rows: list, day: str) -> str:
    """What the results cover on `day`: the runs finished and what the aggregates use."""
    games = len({r["game"] for r in rows})
    seeds = seeds_of_every_game(rows)
    if len(rows) == TOTAL_RUNS:
        return f"all {TOTAL_RUNS} runs (26 games × seeds 0, 1, 2), {day}"
    status = f"{len(rows)} of {TOTAL_RUNS} runs ({games} game{'s' * (games != 1)}), {day}"
    if not seeds:
        return status + "; the aggregates cover the games with runs so far"
    runs = len(seeds)
    status += (f"; the aggregates and the per-game table use {report.seed_names(seeds)} of "
               f"every game ({runs} run{'s' * (runs != 1)} per game) until every game has its "
               "next seed")
    if runs == 1:
        status += ": ours has intervals of no width"
    return status


def compute_line(rows: list) -> str:
    """What the finished runs cost, from their wall_seconds, eval_seconds and
    steps_per_second in scores.csv, and the runs whose evaluation took over a tenth."""
    wall = [float(r["wall_seconds"]) for r in rows]
    share = [float(r["eval_seconds"]) / float(r["wall_seconds"]) for r in rows]
    speed = [float(r["steps_per_second"]) for r in rows]
    evals = sum(float(r["eval_seconds"]) for r in rows)
    long_evals = sorted(((s, f"{r['game']} seed {r['seed']}") for s, r in zip(share, rows)
                         if s > 0.1), reverse=True)
    done = "Compute" if len(rows) == TOTAL_RUNS else "Compute so far"
    line = (f"{done}: {sum(wall) / 3600:.1f} hours of runs for the {len(rows)} finished (the "
            "sum of each run's own time, evaluation included, from `scores.csv`; time lost "
            "to stops is not in it), two runs at a time on 2-core machines (one per session): "
            f"{min(wall) / 60:.0f}–{max(wall) / 60:.0f} min per run "
            f"({sum(wall) / 60 / len(rows):.0f} on average) at {min(speed):.1f}–"
            f"{max(speed):.1f} agent steps/s; evaluation "
            f"{100 * evals / sum(wall):.0f} % of the total, {100 * min(share):.1f}–"
            f"{100 * max(share):.1f} % of a run")
    if long_evals:
        line += "; over a tenth: " + ", ".join(f"{name} ({100 * s:.1f} %)"
                                              for s, name in long_evals)
    return line + "."


def point_iqms() -> dict:
    """{method: IQM of its human-normalised scores}, unrounded, as the report computes its
    point estimates: ours over the seeds every game has, each reference over its runs of
    the same games."""
    table = report.read_normalisation(os.path.join(report.REFERENCE_DIR, report.NORMALISATION))
    references = {name: report.read_reference(os.path.join(report.REFERENCE_DIR, f"{name}.csv"))
                  for name in REFERENCES}
    ours = report.read_ours(os.path.join(ROOT, SCORES))
    _, _, matrices = report.hns_matrices("drq_eps", ours, references, table)
    return {name: report.aggregate(matrix)[0] for name, matrix in matrices.items()}


def iqm_lower_end(aggregate: list, name: str = "drq_eps") -> float:
    """The lower end of `name`'s IQM interval in the report's aggregate table (Markdown rows
    `| name | games × runs | IQM [low, high] | ...`), as printed (3 decimals)."""
    for line in aggregate:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == name:
            return float(re.fullmatch(r"-?[\d.]+ \[(-?[\d.]+), -?[\d.]+\]", cells[2]).group(1))
    raise SystemExit(f"error: the report's aggregate table has no row {name}")


def goals_line(iqms: dict, ours_lower_end: float, finished: bool, ours: str = "drq_eps") -> str:
    """The issue's two goals: our IQM's interval at or above DER's IQM, and our IQM at or
    above DrQ(ε)'s; each said met or missed (by how much), "so far" until the sweep is
    `finished`. `iqms` are unrounded point IQMs (`point_iqms`), so a miss that rounds to a
    tie is still a miss."""

    def verdict(ours_value: float, theirs: float) -> str:
        if ours_value >= theirs:
            return "**met**"
        gap = theirs - ours_value
        return f"**missed** by {gap:.3f}" if gap >= 5e-4 else "**missed** by less than 0.001"

    der, drq, value = iqms["DER"], iqms["DrQ_eps"], iqms[ours]
    so_far = "" if finished else ", so far"
    return (f"The goals set for this benchmark{so_far}: our IQM's interval at or above DER's "
            f"IQM (its lower end, {ours_lower_end:.3f}, against {der:.3f}: "
            f"{verdict(ours_lower_end, der)}), and our IQM at or above DrQ(ε)'s ({value:.3f} "
            f"against {drq:.3f}: {verdict(value, drq)}).")


def main():
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    os.chdir(ROOT)
    with open(SCORES, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit(f"error: {SCORES} has no runs yet")
    proc = subprocess.run([sys.executable, *REPORT], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        said = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
        raise SystemExit(f"error: the report failed: {said[-1]}")
    lines = [line for line in proc.stdout.rstrip("\n").splitlines()
             if not line.startswith("wrote ")]  # The picture's path, said last.
    while lines and not lines[-1]:
        lines.pop()
    first_table = next(i for i, line in enumerate(lines) if line.startswith("|"))
    title, tables = lines[:first_table], lines[first_table:]  # What it covers, its sources.
    aggregate = tables[:tables.index("")]
    status = status_line(rows, datetime.date.today().isoformat())
    compute = compute_line(rows)
    goals = goals_line(point_iqms(), iqm_lower_end(aggregate), finished=len(rows) == TOTAL_RUNS)

    with open("README.md") as f:
        readme = f.read()
    readme = replace_block(readme, "atari_table", "\n".join(aggregate))
    readme = replace_block(readme, "atari_goals", goals)
    readme = replace_block(readme, "atari_compute", compute)
    label = "Finished" if len(rows) == TOTAL_RUNS else "In progress"
    readme, found = re.subn(r"\*\*(In progress|Finished): [^*]*\.\*\*",
                            f"**{label}: {status}.**", readme)
    if found != 1:
        raise SystemExit("error: README.md needs one **In progress: ...** status line")
    with open("README.md", "w") as f:
        f.write(readme)

    command = "python " + " ".join(REPORT)
    results = "\n".join([
        f"{status}. `{command}` prints:", "", *title, "", *aggregate, "", goals,
        *tables[len(aggregate):], "",
        "![Interval estimates and performance profiles](atari100k.png)", "", compute])
    with open("docs/atari100k.md") as f:
        doc = f.read()
    with open("docs/atari100k.md", "w") as f:
        f.write(replace_block(doc, "results", results))
    print(f"README.md, docs/atari100k.md and docs/atari100k.png: {status}")


if __name__ == "__main__":
    main()
