"""Published evaluation protocols for Atari, and the human/random score tables they use.

A protocol fixes how a trained policy is played for the numbers a paper reports:

  protocol   epsilon  no-op starts    game cap         sticky actions  score table
  nature     0.05     0-29 raw frames 18,000 frames    none            Nature ED Table 2
  machado    0.01     none            108,000 frames   0.25            Atari-57
  dopamine   0.001    none            108,000 frames   0.25            Atari-57
  atari100k  0.001    0-29 raw frames 108,000 frames   none            Atari-57

  * nature: Mnih et al. (2015), Methods: "each game 30 times for up to 5 min each time
    with different initial random conditions ('no-op'; see Extended Data Table 1) and an
    epsilon-greedy policy with epsilon = 0.05". 5 min at 60 Hz = 18,000 frames.
  * machado: sticky actions 0.25 instead of no-op starts, after Machado et al. (2018),
    "Revisiting the Arcade Learning Environment" (the ALE's docs/env-spec.md cites it for
    0.25); games capped at 108,000 frames (30 minutes), the ALE v5 registration's default
    and Dopamine's 27,000 agent steps. Machado et al. report returns during training, so
    they prescribe no evaluation epsilon; 0.01 is our choice, the final training epsilon
    of Dopamine's dqn.gin.
  * dopamine: Machado's environment with Dopamine's evaluation epsilon 0.001
    (dopamine/jax/agents/dqn/configs/dqn.gin, `epsilon_eval`).
  * atari100k: how Dopamine's atari_100k lab evaluates after training (DER.gin,
    DrQ_eps.gin and atari_100k_runner.py at google/dopamine@5873f54): epsilon 0.001,
    random no-op starts (the lab's 0-29 no-op agent steps; ours are raw frames, as
    every protocol here), 27,000 agent steps = 108,000 frames, no sticky actions; the
    Atari 100k papers average 100 games. Its 26 games are `ATARI_100K_GAMES`.

No-op starts are ale-py's: 0..noop_max-1 raw no-op frames after each reset (Nature says
"up to 30"; `dqn_tf.atari_env` explains why we follow ale-py).

Human-normalised score = (agent - random) / (human - random), from a named table:

  * `NATURE`: the 49 games of Mnih et al. (2015) Extended Data Table 2, "random play" and
    "human" columns, as transcribed with one decimal in seungjaeryanlee/rldb
    (db/paper__dqn/algo__random and algo__human, commit 8c471c4). The table is only an
    image in the paper; DQN Zoo's copy agrees on every random score and on Tutankham's
    human score (167.6).
  * `ATARI57`: the 57 games of DQN Zoo's `dqn_zoo/atari_data.py` (google-deepmind/dqn_zoo
    @45061f4), the table most later papers normalise with: random and professional-tester
    human scores, 1-30 no-op starts, games capped at 108,000 frames. Its file cites no
    paper. It differs from Nature's where later work re-measured humans (SpaceInvaders
    1668.7 vs 1652.3, Pong 14.6 vs 9.3, Seaquest 42054.7 vs 20181.8).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Protocol:
    """How to play a policy for a paper's numbers. Counts are raw emulator frames."""

    name: str
    epsilon: float  # probability of a random action each agent step
    noop_max: int  # 0..noop_max-1 random no-op raw frames at each game start (ale-py)
    max_frames_per_episode: int  # raw frames before a game is cut (truncated)
    sticky_action_prob: float  # per raw frame, probability the ALE repeats the last action
    score_table: str  # key of SCORE_TABLES for the human-normalised score


PROTOCOLS = {
    "nature": Protocol("nature", epsilon=0.05, noop_max=30, max_frames_per_episode=18_000,
                       sticky_action_prob=0.0, score_table="nature"),
    "machado": Protocol("machado", epsilon=0.01, noop_max=0, max_frames_per_episode=108_000,
                        sticky_action_prob=0.25, score_table="atari57"),
    "dopamine": Protocol("dopamine", epsilon=0.001, noop_max=0, max_frames_per_episode=108_000,
                         sticky_action_prob=0.25, score_table="atari57"),
    "atari100k": Protocol("atari100k", epsilon=0.001, noop_max=30,
                          max_frames_per_episode=108_000, sticky_action_prob=0.0,
                          score_table="atari57"),
}

# The 26 games of Atari 100k (Kaiser et al., 2019), by their ALE names: the games of the
# published run sets in benchmarks/atari100k/reference/.
ATARI_100K_GAMES = (
    "Alien", "Amidar", "Assault", "Asterix", "BankHeist", "BattleZone", "Boxing",
    "Breakout", "ChopperCommand", "CrazyClimber", "DemonAttack", "Freeway", "Frostbite",
    "Gopher", "Hero", "Jamesbond", "Kangaroo", "Krull", "KungFuMaster", "MsPacman", "Pong",
    "PrivateEye", "Qbert", "RoadRunner", "Seaquest", "UpNDown")

# Game: (random, human). Mnih et al. (2015) Extended Data Table 2 (see module docstring).
NATURE = {
    "Alien": (227.8, 6875.4), "Amidar": (5.8, 1675.8), "Assault": (222.4, 1496.4),
    "Asterix": (210.0, 8503.3), "Asteroids": (719.1, 13156.7), "Atlantis": (12850.0, 29028.1),
    "BankHeist": (14.2, 734.4), "BattleZone": (2360.0, 37800.0), "BeamRider": (363.9, 5774.7),
    "Bowling": (23.1, 154.8), "Boxing": (0.1, 4.3), "Breakout": (1.7, 31.8),
    "Centipede": (2090.9, 11963.2), "ChopperCommand": (811.0, 9881.8),
    "CrazyClimber": (10780.5, 35410.5), "DemonAttack": (152.1, 3401.3),
    "DoubleDunk": (-18.6, -15.5), "Enduro": (0.0, 309.6), "FishingDerby": (-91.7, 5.5),
    "Freeway": (0.0, 29.6), "Frostbite": (65.2, 4334.7), "Gopher": (257.6, 2321.0),
    "Gravitar": (173.0, 2672.0), "Hero": (1027.0, 25762.5), "IceHockey": (-11.2, 0.9),
    "Jamesbond": (29.0, 406.7), "Kangaroo": (52.0, 3035.0), "Krull": (1598.0, 2394.6),
    "KungFuMaster": (258.5, 22736.2), "MontezumaRevenge": (0.0, 4366.7),
    "MsPacman": (307.3, 15693.4), "NameThisGame": (2292.3, 4076.2), "Pong": (-20.7, 9.3),
    "PrivateEye": (24.9, 69571.3), "Qbert": (163.9, 13455.0), "Riverraid": (1338.5, 13513.3),
    "RoadRunner": (11.5, 7845.0), "Robotank": (2.2, 11.9), "Seaquest": (68.4, 20181.8),
    "SpaceInvaders": (148.0, 1652.3), "StarGunner": (664.0, 10250.0),
    "Tennis": (-23.8, -8.9), "TimePilot": (3568.0, 5925.0), "Tutankham": (11.4, 167.6),
    "UpNDown": (533.4, 9082.0), "Venture": (0.0, 1187.5), "VideoPinball": (16256.9, 17297.6),
    "WizardOfWor": (563.5, 4756.5), "Zaxxon": (32.5, 9173.3),
}

# Game: (random, human). DQN Zoo dqn_zoo/atari_data.py (see module docstring).
ATARI57 = {
    "Alien": (227.8, 7127.7), "Amidar": (5.8, 1719.5), "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3), "Asteroids": (719.1, 47388.7), "Atlantis": (12850.0, 29028.1),
    "BankHeist": (14.2, 753.1), "BattleZone": (2360.0, 37187.5),
    "BeamRider": (363.9, 16926.5), "Berzerk": (123.7, 2630.4), "Bowling": (23.1, 160.7),
    "Boxing": (0.1, 12.1), "Breakout": (1.7, 30.5), "Centipede": (2090.9, 12017.0),
    "ChopperCommand": (811.0, 7387.8), "CrazyClimber": (10780.5, 35829.4),
    "Defender": (2874.5, 18688.9), "DemonAttack": (152.1, 1971.0),
    "DoubleDunk": (-18.6, -16.4), "Enduro": (0.0, 860.5), "FishingDerby": (-91.7, -38.7),
    "Freeway": (0.0, 29.6), "Frostbite": (65.2, 4334.7), "Gopher": (257.6, 2412.5),
    "Gravitar": (173.0, 3351.4), "Hero": (1027.0, 30826.4), "IceHockey": (-11.2, 0.9),
    "Jamesbond": (29.0, 302.8), "Kangaroo": (52.0, 3035.0), "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3), "MontezumaRevenge": (0.0, 4753.3),
    "MsPacman": (307.3, 6951.6), "NameThisGame": (2292.3, 8049.0), "Phoenix": (761.4, 7242.6),
    "Pitfall": (-229.4, 6463.7), "Pong": (-20.7, 14.6), "PrivateEye": (24.9, 69571.3),
    "Qbert": (163.9, 13455.0), "Riverraid": (1338.5, 17118.0), "RoadRunner": (11.5, 7845.0),
    "Robotank": (2.2, 11.9), "Seaquest": (68.4, 42054.7), "Skiing": (-17098.1, -4336.9),
    "Solaris": (1236.3, 12326.7), "SpaceInvaders": (148.0, 1668.7),
    "StarGunner": (664.0, 10250.0), "Surround": (-10.0, 6.5), "Tennis": (-23.8, -8.3),
    "TimePilot": (3568.0, 5229.2), "Tutankham": (11.4, 167.6), "UpNDown": (533.4, 11693.2),
    "Venture": (0.0, 1187.5), "VideoPinball": (16256.9, 17667.9),
    "WizardOfWor": (563.5, 4756.5), "YarsRevenge": (3092.9, 54576.9),
    "Zaxxon": (32.5, 9173.3),
}

SCORE_TABLES = {
    "nature": ("Mnih et al. (2015) Extended Data Table 2, 49 games", NATURE),
    "atari57": ("Atari-57 human/random scores of DQN Zoo's atari_data.py", ATARI57),
}


def game_name(env_id: str) -> str:
    """'ALE/SpaceInvaders-v5' (or 'SpaceInvadersNoFrameskip-v4') -> 'SpaceInvaders'."""
    return env_id.split("/")[-1].split("-v")[0].replace("NoFrameskip", "")


def human_normalised(env_id: str, score: float, table: str) -> dict | None:
    """The human-normalised `score` under `table` (a key of SCORE_TABLES), with the
    numbers and the table it used; None for a game the table does not have."""
    title, scores = SCORE_TABLES[table]
    game = game_name(env_id)
    if game not in scores:
        return None
    random_score, human_score = scores[game]
    return {"value": (score - random_score) / (human_score - random_score), "table": table,
            "table_source": title, "random": random_score, "human": human_score}
