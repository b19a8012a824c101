"""Exploration schedules, as pure functions of the agent-step count."""


def linear_epsilon(agent_steps: int, *, start: float, end: float, decay_agent_steps: int,
                   warmup_agent_steps: int) -> float:
    """Epsilon for epsilon-greedy acting (Mnih et al., 2015).

    Acting is uniformly random (epsilon 1) while the replay warms up; then epsilon
    falls linearly from `start` to `end` over `decay_agent_steps`, and stays at `end`.

    Args:
      agent_steps: agent steps taken so far.
      start: epsilon when the decay begins.
      end: final epsilon.
      decay_agent_steps: length of the linear decay, in agent steps.
      warmup_agent_steps: agent steps before learning starts (the replay warm-up).
    """
    if agent_steps < warmup_agent_steps:
        return 1.0
    if decay_agent_steps <= 0:
        return end
    fraction = min(1.0, (agent_steps - warmup_agent_steps) / decay_agent_steps)
    return start + fraction * (end - start)
