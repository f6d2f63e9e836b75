"""Bounce and complaint rates per issue, and the warnings a sender should heed.

Rates are per message accepted by the relay (``sent``). The thresholds are the providers':

* complaints: Gmail's and Yahoo's bulk-sender rules (2024) ask senders to stay under 0.1 %
  and never reach 0.3 %; above 0.3 % mail is filtered or refused. We warn above 0.3 %.
* hard bounces: no provider publishes one number, but 2 % is where mailbox providers and
  relays (Amazon SES reviews accounts from 5 %, and advises staying under 2 %) start
  treating a list as unkept; a list above it mails many dead addresses. We warn above 2 %.
"""

from __future__ import annotations

from typing import Any

HARD_BOUNCE_LIMIT = 0.02
COMPLAINT_LIMIT = 0.003


def _rate(part: int, sent: int) -> float:
    return round(part / sent, 6) if sent else 0.0


def bounce_summary(sent: int, found: dict[str, int]) -> dict[str, Any]:
    """``{"hard", "soft", "complaints", "bounce_rate", "soft_bounce_rate",
    "complaint_rate", "warnings"}``; rates are fractions of ``sent`` (0.02 = 2 %)."""
    hard, soft, complaints = found.get("hard", 0), found.get("soft", 0), found.get(
        "complaints", 0)
    summary: dict[str, Any] = {
        "hard": hard, "soft": soft, "complaints": complaints,
        "bounce_rate": _rate(hard, sent), "soft_bounce_rate": _rate(soft, sent),
        "complaint_rate": _rate(complaints, sent), "warnings": []}
    if summary["bounce_rate"] > HARD_BOUNCE_LIMIT:
        shown = percent(summary["bounce_rate"], HARD_BOUNCE_LIMIT)
        summary["warnings"].append(
            f"hard bounce rate {shown} is above {HARD_BOUNCE_LIMIT:.0%}: "
            "clean the list (remove addresses that have not been confirmed for long) before "
            "the next issue")
    if summary["complaint_rate"] > COMPLAINT_LIMIT:
        shown = percent(summary["complaint_rate"], COMPLAINT_LIMIT)
        summary["warnings"].append(
            f"complaint rate {shown} is above {COMPLAINT_LIMIT:.1%}, "
            "the limit Gmail and Yahoo enforce: mail only people who asked for it, and keep "
            "the unsubscribe link easy to find")
    return summary


def _side(a: float, b: float) -> int:
    return (a > b) - (a < b)


def percent(rate: float, limit: float | None = None) -> str:
    """``rate`` in per cent with two decimals, or as many more as it takes to show which side
    of ``limit`` it is on: 601 of 30,000 is 2.003 %, not a 2.00 % "above 2 %"."""
    digits = 2
    if limit is not None:
        side = _side(rate, limit)
        while digits < 8 and _side(round(rate * 100, digits), round(limit * 100, digits)) != side:
            digits += 1
    return f"{rate:.{digits}%}"
