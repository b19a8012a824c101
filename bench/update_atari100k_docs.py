"""Rewrites the Atari-100k results in README.md and docs/atari100k.md, and the picture
docs/atari100k.png, from benchmarks/atari100k/drq_eps/scores.csv:

    python bench/update_atari100k_docs.py

It runs the report's own command and puts what it prints between the documents' markers
(`<!-- atari_table -->`, `<!-- atari_compute -->`, `<!-- results -->`, and the README's
"In progress" line); tests/report_test.py and tests/docs_test.py check that the documents
hold the committed scores' numbers.
"""

import argparse
import csv
import datetime
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SCORES = "benchmarks/atari100k/drq_eps/scores.csv"
REPORT = ["-m", "dqn_tf.report", SCORES, "--reference", "DER,DrQ_eps,SPR",
          "--out", "docs/atari100k.png", "--markdown"]
TOTAL_RUNS = 78  # 26 games x seeds 0, 1, 2.


def replace_block(text: str, name: str, body: str) -> str:
    """`text` with what lies between <!-- name --> and <!-- /name --> replaced by `body`."""
    pattern = re.compile(rf"(<!-- {name} -->\n).*?(<!-- /{name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"error: no <!-- {name} --> block to fill")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)


def compute_line(rows: list) -> str:
    """What the finished runs cost, from their wall_seconds and eval_seconds."""
    wall = sum(float(r["wall_seconds"]) for r in rows)
    evals = sum(float(r["eval_seconds"]) for r in rows)
    return (f"Compute so far: {wall / 3600:.1f} hours of runs for the {len(rows)} finished "
            "(each run's own time, evaluation included, from `scores.csv`; on this 2-core "
            f"machine, two runs at a time: {wall / 60 / len(rows):.0f} min per run on average, "
            f"{100 * evals / wall:.0f} % of it evaluation).")


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
    title, tables = lines[:2], lines[2:]
    aggregate = tables[:tables.index("")]
    games = len({r["game"] for r in rows})
    status = (f"{len(rows)} of {TOTAL_RUNS} runs ({games} game{'s' * (games != 1)}), "
              f"{datetime.date.today().isoformat()}")
    if len(rows) == games:  # As the report's first line says, for the README's reader.
        status += "; one run per game so far: ours has intervals of no width"
    compute = compute_line(rows)

    with open("README.md") as f:
        readme = f.read()
    readme = replace_block(readme, "atari_table", "\n".join(aggregate))
    readme = replace_block(readme, "atari_compute", compute)
    readme = re.sub(r"\*\*In progress: [^*]*\.\*\*", f"**In progress: {status}.**", readme)
    with open("README.md", "w") as f:
        f.write(readme)

    command = "python " + " ".join(REPORT)
    results = "\n".join([
        f"{status}. `{command}` prints:", "", *title, "", *tables, "",
        "![Interval estimates and performance profiles](atari100k.png)", "", compute])
    with open("docs/atari100k.md") as f:
        doc = f.read()
    with open("docs/atari100k.md", "w") as f:
        f.write(replace_block(doc, "results", results))
    print(f"README.md, docs/atari100k.md and docs/atari100k.png: {status}")


if __name__ == "__main__":
    main()
