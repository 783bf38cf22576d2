"""The app's reading of numbers from its controls and from API clients."""

import math

import pytest

from pose2id.demo.inputs import number


@pytest.mark.parametrize("value, whole, expected", [(2, True, 2), (2.0, True, 2), ("3", True, 3), ("2.5", False, 2.5),
                                                     (0, False, 0.0)])
def test_numbers_given_as_numbers_or_text_are_read(value, whole, expected):
    got = number(value, "k1", whole=whole)
    assert got == expected and isinstance(got, int if whole else float)


@pytest.mark.parametrize("value", [math.nan, math.inf, "-inf", "abc", None, True, False, [2]])
@pytest.mark.parametrize("whole", [True, False])
def test_anything_else_is_refused_naming_the_field(value, whole):
    with pytest.raises(ValueError, match="^eta must be a (whole|finite) number"):
        number(value, "eta", whole=whole)


def test_a_fraction_is_not_a_whole_number():
    assert number(2.5, "steps") == 2.5
    with pytest.raises(ValueError, match="steps must be a whole number, got 2.5"):
        number(2.5, "steps", whole=True)
