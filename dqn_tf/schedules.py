"""Schedules (exploration, importance sampling), as pure functions of the agent-step count."""


def linear(step: float, *, start: float, end: float, steps: int) -> float:
    """`start` at step 0 (and before), then linearly to `end` over `steps`, then `end`."""
    if steps <= 0:
        return end
    fraction = min(1.0, max(0.0, step) / steps)
    return start + fraction * (end - start)


def linear_epsilon(agent_steps: int, *, start: float, end: float, decay_agent_steps: int,
                   warmup_agent_steps: int, decay_from_start: bool = False) -> float:
    """Epsilon for epsilon-greedy acting (Mnih et al., 2015).

    Acting is uniformly random (epsilon 1) while the replay warms up; then epsilon
    falls linearly from `start` to `end` over `decay_agent_steps`, and stays at `end`.
    With `decay_from_start` it falls from agent step 0 instead, warm-up included
    (Lapan's Pong DQN).

    Args:
      agent_steps: agent steps taken so far.
      start: epsilon when the decay begins.
      end: final epsilon.
      decay_agent_steps: length of the linear decay, in agent steps.
      warmup_agent_steps: agent steps before learning starts (the replay warm-up).
      decay_from_start: begin the decay at agent step 0.
    """
    if decay_from_start:
        return linear(agent_steps, start=start, end=end, steps=decay_agent_steps)
    if agent_steps < warmup_agent_steps:
        return 1.0
    return linear(agent_steps - warmup_agent_steps, start=start, end=end,
                  steps=decay_agent_steps)
