"""The indented JSON writer: exactly ``json.dumps(value, indent=2)`` for every value."""

from __future__ import annotations

import enum
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.report._json import dumps

_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
            | st.text() | st.sampled_from(["", "é", "\u2028", "\x00", "\ud800", '"\\']))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_writes_what_json_dumps_writes(value: object) -> None:
    assert dumps(value) == json.dumps(value, indent=2)


class _Level(enum.StrEnum):
    HIGH = "high"


class _Count(enum.IntEnum):
    ONE = 1


@pytest.mark.parametrize("value", [
    {1: "int key"}, {None: 1, True: 2, 2.5: 3}, [_Level.HIGH, _Count.ONE], math.nan,
    [math.inf, -math.inf], {"deep": [[[[[]]]]]},
])
def test_unusual_values_come_out_as_json_dumps_writes_them(value: object) -> None:
    assert dumps(value) == json.dumps(value, indent=2)


def test_what_json_dumps_refuses_is_refused() -> None:
    circular: list[object] = []
    circular.append(circular)
    with pytest.raises(ValueError, match="Circular reference"):
        dumps(circular)
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps({"a": object()})
    with pytest.raises(TypeError, match="keys must be"):
        dumps({(1, 2): 3})
