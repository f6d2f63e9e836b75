"""Bounce and complaint rates: a rate just over a limit reads as over it, in the warnings
(table, JSON, HTML) and in the table and HTML cells."""

from __future__ import annotations

from mirage_mailer.services.bounce_rates import (
    COMPLAINT_LIMIT,
    HARD_BOUNCE_LIMIT,
    bounce_summary,
    percent,
)


def test_a_rate_just_over_its_limit_visibly_exceeds_it() -> None:
    summary = bounce_summary(30000, {"hard": 601, "complaints": 91})
    hard, complaints = summary["warnings"]
    assert hard.startswith("hard bounce rate 2.003% is above 2%:"), hard
    assert complaints.startswith("complaint rate 0.303% is above 0.3%,"), complaints
    assert percent(summary["bounce_rate"], HARD_BOUNCE_LIMIT) == "2.003%"
    assert percent(summary["complaint_rate"], COMPLAINT_LIMIT) == "0.303%"


def test_two_decimals_when_they_tell_the_side_of_the_limit() -> None:
    assert percent(0.6) == "60.00%"
    assert percent(0.6, HARD_BOUNCE_LIMIT) == "60.00%"
    assert percent(0.02, HARD_BOUNCE_LIMIT) == "2.00%"  # at the limit: not above it
    assert percent(0.003, COMPLAINT_LIMIT) == "0.30%"
    assert percent(0.019999, HARD_BOUNCE_LIMIT) == "1.9999%"  # under it, not "2.00%"
    assert percent(0.0200001, HARD_BOUNCE_LIMIT) == "2.00001%"
    assert bounce_summary(30000, {"hard": 600, "complaints": 90})["warnings"] == []
