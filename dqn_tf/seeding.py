"""Independent random streams for everything random in a run, from one `--seed`.

Every stream is derived with `np.random.SeedSequence` from a key

    (--seed, purpose, index, generation)

  purpose     what consumes it: the training envs, the actor's exploration, the replay
              sampler, network initialisation, the evaluation envs and actor, the
              update's image augmentation
  index       which env of a batch (0 for single streams)
  generation  the agent step at which the stream (re)starts: 0 for a new run, the
              checkpoint's step when a resume restarts the games, the step of an
              evaluation for that evaluation's games

so streams never overlap across purposes, envs, resumes or runs: run 0's env 1 and
run 1's env 0 play different games, and one run's actor never draws another run's
replay samples (the old `seed + i` scheme did both). SeedSequence mixes the whole
key into its 128-bit entropy pool, so any generation up to 2**63 is fine; a resume
at agent step 50,000,000 (200M frames) is an ordinary key.

Numpy consumers take a `Generator` over the full SeedSequence. APIs that want an
integer (the ALE, gymnasium, Keras) get `int_seed`: 31 bits, valid for ale-py's
vector env (int32 seeds, -1 meaning "unseeded") and for gymnasium.
"""

import numpy as np

# Purpose codes are part of every key: never renumber them (runs would change).
PURPOSES = {"env": 1, "actor": 2, "replay": 3, "network": 4, "eval_env": 5, "eval_actor": 6,
            "augment": 7}


def seed_sequence(seed: int, purpose: str, index: int = 0,
                  generation: int = 0) -> np.random.SeedSequence:
    """The SeedSequence of stream (seed, purpose, index, generation); all ints >= 0."""
    if seed < 0 or index < 0 or generation < 0:
        raise ValueError(f"seed keys must be >= 0, got seed={seed} index={index} "
                         f"generation={generation}")
    return np.random.SeedSequence(entropy=seed,
                                  spawn_key=(PURPOSES[purpose], index, generation))


def generator(seed: int, purpose: str, index: int = 0,
              generation: int = 0) -> np.random.Generator:
    """A numpy Generator (PCG64) over that stream."""
    return np.random.default_rng(seed_sequence(seed, purpose, index, generation))


def int_seed(seed: int, purpose: str, index: int = 0, generation: int = 0) -> int:
    """A seed in [0, 2**31) drawn from that stream, for APIs that take an int."""
    word = seed_sequence(seed, purpose, index, generation).generate_state(1, np.uint32)[0]
    return int(word >> 1)


def int_seeds(seed: int, purpose: str, count: int, generation: int = 0) -> list:
    """`int_seed` for indices 0..count-1: one seed per env of a batch."""
    return [int_seed(seed, purpose, i, generation) for i in range(count)]
