"""Property tests for the tegrastats line parser, the fallback source's reader of outside text.

Two kinds of input: lines built from known rails in each of tegrastats' three spellings, mixed
with the fields it prints around them (RAM, CPU, temperatures, a timestamp), which must give back
exactly those rails; and anything at all (random text, truncated lines, huge numbers, control
characters), which must never raise and never give a power that is not a finite, non-negative
number of watts.
"""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from joulegate_agent.metering.sources.tegrastats import MAX_LINE_CHARS, parse_line
from tests.agent.test_source_tegrastats import AGX_ORIN_JP5, NANO_JP4, ORIN_JP6, THOR_JP7
from tests.reliability.harness import property_settings

RAIL_NAMES = st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True).filter(
    lambda name: name not in ("RAM", "SWAP", "IRAM", "CPU", "EMC_FREQ", "GR3D_FREQ", "APE")
)
MILLIWATTS = st.integers(min_value=0, max_value=999_999_999)
OTHER_FIELDS = st.sampled_from(
    [
        "RAM 2448/7620MB (lfb 2x4MB)",
        "SWAP 0/3810MB (cached 0MB)",
        "IRAM 0/252kB(lfb 252kB)",
        "CPU [3%@729,1%@729,off,off]",
        "EMC_FREQ 4%@1600",
        "GR3D_FREQ 0%@76",
        "APE 25",
        "cpu@48.468C",
        "gpu@-256C",
        "11-26-2026 12:00:01",
    ]
)


def spell(name: str, current: int, average: int, style: int) -> str:
    if style == 0:  # JetPack 4
        return f"{name} {current}/{average}"
    if style == 1:  # JetPack 5 and 6
        return f"{name} {current}mW/{average}mW"
    return f"{name} {current}mW/{average}mW/{average}mW"  # JetPack 7


@st.composite
def lines_with_rails(draw: st.DrawFn) -> tuple[str, dict[str, float]]:
    rails = draw(st.dictionaries(RAIL_NAMES, st.tuples(MILLIWATTS, MILLIWATTS), max_size=8))
    style = draw(st.integers(0, 2))
    fields = [spell(name, cur, avg, style) for name, (cur, avg) in rails.items()]
    fields += draw(st.lists(OTHER_FIELDS, max_size=6))
    order = draw(st.permutations(fields))
    return " ".join(order), {name: cur / 1000 for name, (cur, _) in rails.items()}


@property_settings(examples=200)
@given(lines_with_rails())
def test_every_rail_is_read_back_whatever_surrounds_it(case: tuple[str, dict[str, float]]) -> None:
    text, rails = case
    parsed = parse_line(text)
    if not rails:
        assert parsed is None
        return
    assert parsed is not None
    assert dict(parsed.rails) == rails


TEXT = st.one_of(
    st.text(max_size=300),
    st.sampled_from([NANO_JP4, ORIN_JP6, THOR_JP7, AGX_ORIN_JP5]).flatmap(
        lambda line: st.integers(0, len(line)).map(lambda cut: line[:cut])
    ),
    st.builds(
        lambda name, digits, unit: f"{name} {digits}{unit}/{digits}{unit}",
        RAIL_NAMES,
        st.from_regex(r"[0-9]{1,400}", fullmatch=True),
        st.sampled_from(["", "mW", "W", "MB", "mW\x00"]),
    ),
    st.text(alphabet="VDIN_0123456789mW/ \t\r\x00", max_size=200),
)


@property_settings(examples=300)
@given(TEXT)
def test_any_text_gives_finite_non_negative_watts_or_nothing(text: str) -> None:
    parsed = parse_line(text)
    if parsed is None:
        return
    assert parsed.rails
    for _, watts in parsed.rails:
        assert math.isfinite(watts)
        assert 0 <= watts < 1e6


@property_settings(examples=50)
@given(TEXT.map(lambda text: "VDD_IN 4761mW/4778mW " * (MAX_LINE_CHARS // 21 + 1) + text))
def test_an_overlong_line_is_not_read(text: str) -> None:
    assert parse_line(text) is None
