"""What an upstream reports about one answer, held against what the window itself saw.

The readers already refuse values that are not counts or durations at all (negative, not finite,
past MAX_COUNT). A value can still be one that no server could have produced: three answers each
claiming two billion output tokens raised the lifetime token counter by 6.4e9, for good, and a
load time of 1e299 s became a time to first token. A value that does not fit inside the window
it belongs to is dropped (the row says "not reported") rather than recorded.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from joulegate_agent.proxy.dialects import TokenCounts

_LOGGER = logging.getLogger(__name__)

MAX_OUTPUT_TOKENS_PER_S = 10_000.0
"""Far above any single request's decoding speed today (a few thousand tokens a second at best,
speculative decoding included)."""
OUTPUT_TOKENS_SLACK = 256
"""Allowed on top, so a short window (a fake upstream answering at once, a clock tick) never drops
a real count."""
TTFT_SLACK_S = 1.0
"""How far a server's own prompt time may exceed the window we measured (its clock, its rounding,
a test double that reports timings it did not spend)."""


def max_output_tokens(elapsed_s: float) -> int:
    """The most output tokens a window of `elapsed_s` seconds can plausibly hold."""
    return int(max(0.0, elapsed_s) * MAX_OUTPUT_TOKENS_PER_S) + OUTPUT_TOKENS_SLACK


def within_window(counts: TokenCounts, elapsed_s: float) -> TokenCounts:
    """`counts` without the values that cannot belong to a window of `elapsed_s` seconds."""
    output, estimated = counts.output_tokens, counts.estimated
    if output is not None and output > max_output_tokens(elapsed_s):
        _LOGGER.warning(
            "The upstream reported %d output tokens for a %.3f-s answer; not counted",
            output,
            elapsed_s,
        )
        output, estimated = None, False
    ttft = counts.upstream_ttft_s
    if ttft is not None and ttft > elapsed_s + TTFT_SLACK_S:
        ttft = None
    return replace(counts, output_tokens=output, estimated=estimated, upstream_ttft_s=ttft)
