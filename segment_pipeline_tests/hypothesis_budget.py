"""How many examples a property test draws under the active hypothesis profile.

``ci`` (the default, what the README's test command and ``.ci/run`` use) keeps each test's
own budget; ``dev`` (``HYPOTHESIS_PROFILE=dev``, what ``make check`` uses) draws a tenth,
at least one, so a quick local run still exercises every property.
"""

from __future__ import annotations

from hypothesis import settings

CI_EXAMPLES = 100  # hypothesis' default budget, the ci profile's


def examples(ci_budget: int) -> int:
    """``ci_budget`` scaled by the active profile's ``max_examples`` against the ci one."""
    return max(1, ci_budget * settings().max_examples // CI_EXAMPLES)
