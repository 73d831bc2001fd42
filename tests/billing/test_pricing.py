from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.pricing import Prices, Usage, cost_of, estimate_max_cost, split, to_decimal

MINI = Prices(input=Decimal("0.15"), output=Decimal("0.6"))


def test_one_token_at_awkward_prices():
    assert cost_of(Usage(input_tokens=1), MINI) == Decimal("0.00000015")
    assert cost_of(Usage(output_tokens=1), MINI) == Decimal("0.00000060")
    # 1 input + 1 output = 0.00000075; a 30 % owner cut of it does not divide evenly.
    cost = cost_of(Usage(input_tokens=1, output_tokens=1), MINI)
    owner, platform = split(cost, Decimal("0.3"))
    assert owner == Decimal("0.00000022") and platform == Decimal("0.00000053")
    assert owner + platform == cost


def test_rounding_is_half_even_and_done_once():
    prices = Prices(input=Decimal("0.005"), output=Decimal("0"))
    # 1 token * 0.005 / 1M = 0.000000005 -> ties to even (0.00000000); 3 tokens -> 0.000000015 -> 0.00000002
    assert cost_of(Usage(input_tokens=1), prices) == Decimal("0E-8")
    assert cost_of(Usage(input_tokens=3), prices) == Decimal("0.00000002")


def test_cache_and_reasoning_prices():
    prices = Prices(
        input=Decimal("3"),
        output=Decimal("15"),
        cache_read=Decimal("0.3"),
        cache_write=Decimal("3.75"),
        reasoning=Decimal("20"),
    )
    usage = Usage(
        input_tokens=1000, output_tokens=500, cache_read_tokens=2000, cache_write_tokens=100, reasoning_tokens=200
    )
    expected = (
        1000 * Decimal(3) + 2000 * Decimal("0.3") + 100 * Decimal("3.75") + 300 * Decimal(15) + 200 * Decimal(20)
    ) / 10**6
    assert cost_of(usage, prices) == expected.quantize(Decimal("0.00000001"))


def test_estimate_rounds_up_and_covers_the_dearest_rates():
    prices = Prices(input=Decimal("3"), output=Decimal("15"), cache_write=Decimal("3.75"))
    assert estimate_max_cost(1, 0, prices) == Decimal("0.00000375")
    assert estimate_max_cost(1, 1, MINI) == Decimal("0.00000075")
    assert estimate_max_cost(0, 1, Prices(input=Decimal("0"), output=Decimal("0.000001"))) == Decimal("0.00000001")


def test_floats_are_refused():
    with pytest.raises(TypeError):
        to_decimal(0.1)
    assert to_decimal("0.1") == Decimal("0.1")


def test_cut_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"between 0 and 0\.5"):
        split(Decimal("1"), Decimal("0.51"))


@given(
    cost=st.decimals(min_value=0, max_value=1000, places=8, allow_nan=False, allow_infinity=False),
    cut=st.decimals(min_value=0, max_value=Decimal("0.5"), places=4),
)
def test_split_always_adds_up_exactly(cost, cut):
    owner, platform = split(cost, cut)
    assert owner + platform == cost
    assert owner >= 0 and platform >= 0
    assert owner == owner.quantize(Decimal("0.00000001"))
