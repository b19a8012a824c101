"""Learning curves of runs against frames: `python -m dqn_tf.plot RUN_DIR... --out curves.png`.

Reads each run's `config.json` and results files (`dqn_tf.results`), and draws one
panel per game:

  * training return: the mean of the training games that ended in each bin of
    --bin_frames emulator frames; with several seeds, their mean and a min-max band;
  * evaluations: one marker per evaluation (mean over seeds, min-max bars);
  * references: --reference GAME=LABEL:VALUE[:FROM_FRAMES:TO_FRAMES] draws a dashed
    line (over that frame window), e.g. a published curve's value.

Runs whose configs differ only in --seed form one group, named after their
directories without the game and the seed (runs/evidence/dqn_modern-SpaceInvaders-0
-> dqn_modern). It also prints, per run and group, the mean training return of the
games that ended within --window frames: the figure of the README's results table.
"""

import json
import os
import re
import sys

from absl import app, flags, logging
import numpy as np

from dqn_tf import atari_env, results, summaries
from dqn_tf import config as config_lib
from dqn_tf.errors import UserInputError


def load_run(run_dir: str) -> dict:
    """A run's config, game, seed, training games and evaluations."""
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError):
        raise UserInputError(f"{run_dir} is not a dqn_tf run directory (no readable "
                             "config.json); pass the --output_dir of a training run") from None
    game = config["env"].split("/")[-1].split("-v")[0]
    train = results.read_train_returns(run_dir)
    evaluations = results.read_evaluations(run_dir)
    if not train["frames"]:  # A run older than its results files: read its TensorBoard.
        scalars = summaries.read_scalars(os.path.join(run_dir, "tensorboard"))
        per_step = config["action_repeat"] if atari_env.is_atari(config["env"]) else 1
        episodes = scalars.get("Train/EpisodeReturn", [])
        train = {"frames": [s * per_step for s, _ in episodes],
                 "return": [v for _, v in episodes]}
        evaluations = [{"frames": s * per_step, "mean": v}
                       for s, v in scalars.get("Eval/AverageReturns", [])]
    return {"dir": run_dir, "config": config, "game": game, "seed": config.get("seed", 0),
            "train": train, "evaluations": evaluations}


def group_runs(runs: list) -> dict:
    """{(game, name): [runs]}: runs whose configs differ only in their seed."""
    groups = {}
    for run in runs:  # Fields a run's dqn_tf did not have yet count as their defaults.
        learning = config_lib.with_defaults(run["config"])
        key = json.dumps({k: v for k, v in learning.items() if k != "seed"}, sort_keys=True)
        groups.setdefault(key, []).append(run)
    named = {}
    for members in groups.values():
        path = os.path.normpath(members[0]["dir"])
        base = os.path.basename(path)
        name = re.sub(r"[-_]\d+$", "", base)  # The seed.
        name = re.sub(rf"[-_]?{re.escape(members[0]['game'])}[-_]?", "", name) or base
        if (members[0]["game"], name) in named:  # Same name, other settings: say where.
            name = f"{name} ({os.path.dirname(path) or '.'})"
        named[(members[0]["game"], name)] = members
    return named


def binned_returns(run: dict, bin_frames: int, max_frames: float) -> np.ndarray:
    """[bins] mean return of the training games that ended in each bin (NaN if none)."""
    frames = np.asarray(run["train"]["frames"])
    returns = np.asarray(run["train"]["return"])
    bins = int(np.ceil(max_frames / bin_frames))
    index = np.minimum((frames // bin_frames).astype(int), bins - 1)
    sums = np.bincount(index, returns, minlength=bins) if len(frames) else np.zeros(bins)
    counts = np.bincount(index, minlength=bins) if len(frames) else np.zeros(bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def window_mean(run: dict, low: float, high: float) -> tuple:
    """(mean return, games) of the training games that ended in frames (low, high]."""
    frames = np.asarray(run["train"]["frames"])
    returns = np.asarray(run["train"]["return"])
    inside = (frames > low) & (frames <= high)
    return (float(returns[inside].mean()) if inside.any() else float("nan"),
            int(inside.sum()))


def parse_reference(text: str) -> tuple:
    """GAME=LABEL:VALUE[:FROM:TO] -> (game, label, value, from_frames, to_frames)."""
    try:
        game, rest = text.split("=", 1)
        parts = rest.rsplit(":", 3) if rest.count(":") >= 3 else rest.rsplit(":", 1)
        label, value = parts[0], float(parts[1])
        low, high = (float(parts[2]), float(parts[3])) if len(parts) == 4 else (None, None)
    except (ValueError, IndexError):
        raise UserInputError(f"--reference={text} is invalid: write GAME=LABEL:VALUE or "
                             "GAME=LABEL:VALUE:FROM_FRAMES:TO_FRAMES") from None
    return game, label, value, low, high


def plot(groups: dict, out: str, bin_frames: int, references: list) -> None:
    """Draws one panel per game and writes a PNG to `out`."""
    import matplotlib
    matplotlib.use("Agg")  # No display needed.
    import matplotlib.pyplot as plt
    games = sorted({game for game, _ in groups})
    figure, axes = plt.subplots(1, len(games), figsize=(6 * len(games), 4.2), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = sorted({name for _, name in groups})
    for column, game in enumerate(games):
        ax = axes[0, column]
        for (group_game, name), members in sorted(groups.items()):
            if group_game != game:
                continue
            color = colors[names.index(name) % len(colors)]
            max_frames = max(max(r["train"]["frames"], default=0) for r in members) or 1
            curves = np.array([binned_returns(r, bin_frames, max_frames) for r in members])
            x = (np.arange(curves.shape[1]) + 0.5) * bin_frames
            seeds = f" ({len(members)} seeds)" if len(members) > 1 else ""
            with np.errstate(all="ignore"):
                mean = np.nanmean(curves, axis=0) if len(members) > 1 else curves[0]
            ax.plot(x, mean, color=color, label=f"{name}: training{seeds}")
            if len(members) > 1:
                ax.fill_between(x, np.nanmin(curves, axis=0), np.nanmax(curves, axis=0),
                                color=color, alpha=0.2)
            steps = sorted({e["frames"] for r in members for e in r["evaluations"]})
            if steps:
                by_step = [[e["mean"] for r in members for e in r["evaluations"]
                            if e["frames"] == s] for s in steps]
                means = np.array([np.mean(v) for v in by_step])
                spread = np.array([[m - min(v), max(v) - m] for m, v in zip(means, by_step)]).T
                ax.errorbar(steps, means, yerr=spread, fmt="o", color=color, capsize=3,
                            label=f"{name}: evaluation")
        for ref_game, label, value, low, high in references:
            if ref_game == game:
                ax.hlines(value, low if low is not None else 0,
                          high if high is not None else ax.get_xlim()[1], colors="gray",
                          linestyles="dashed")
                ax.annotate(f"{label} {value:g}", (low if low is not None else 0, value),
                            textcoords="offset points", xytext=(2, 3), fontsize=8,
                            color="gray")
        ax.set_title(game)
        ax.set_xlabel("emulator frames")
        ax.set_ylabel("return (raw, full game)")
        ax.grid(alpha=0.3)
        # Below the panel, where it hides no curve and no reference line.
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    figure.tight_layout()
    figure.savefig(out, dpi=110, bbox_inches="tight")


def main(argv):
    f = flags.FLAGS
    run_dirs = argv[1:]
    logging.set_verbosity(logging.WARNING)  # TensorBoard's reader logs each file at INFO.
    try:
        if not run_dirs:
            raise UserInputError("pass one or more run directories (the --output_dir of "
                                 "training runs)")
        if f.bin_frames < 1:
            raise UserInputError(f"--bin_frames={f.bin_frames} is invalid: it must be at least 1")
        try:
            low, high = (float(v) for v in f.window.split(":"))
        except ValueError:
            raise UserInputError(f"--window={f.window} is invalid: write FROM_FRAMES:TO_FRAMES, "
                                 "e.g. 1000000:2000000") from None
        references = [parse_reference(text) for text in f.reference]
        groups = group_runs([load_run(d) for d in run_dirs])
        plot(groups, f.out, f.bin_frames, references)
    except (UserInputError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"mean training return of the games that ended in frames ({low:,.0f}, {high:,.0f}]:")
    for (game, name), members in sorted(groups.items()):
        per_run = [window_mean(r, low, high) for r in members]
        for run, (mean, games) in zip(members, per_run):
            last = run["evaluations"][-1] if run["evaluations"] else None
            evaluation = (f"; last evaluation {last['mean']:.1f} at {last['frames']:,} frames"
                          if last else "")
            print(f"  {game:<16} {name:<14} seed {run['seed']}: {mean:8.1f} over {games} games"
                  f"{evaluation}")
        if len(members) > 1:
            means = [m for m, _ in per_run]
            print(f"  {game:<16} {name:<14} mean over {len(members)} seeds: "
                  f"{np.nanmean(means):.1f} (min {np.nanmin(means):.1f}, max "
                  f"{np.nanmax(means):.1f})")
    print(f"wrote {f.out}")


def define_flags():
    flags.DEFINE_string("out", "curves.png", "PNG file to write.")
    flags.DEFINE_integer("bin_frames", 100_000, "Training returns are averaged over bins of "
                         "this many emulator frames.")
    flags.DEFINE_string("window", "1000000:2000000", "FROM_FRAMES:TO_FRAMES for the printed "
                        "mean training return (Dopamine's early figure: frames 1M-2M).")
    flags.DEFINE_multi_string("reference", [], "GAME=LABEL:VALUE[:FROM_FRAMES:TO_FRAMES], a "
                              "published value drawn as a dashed line; repeatable.")


if __name__ == "__main__":
    define_flags()
    app.run(main)
