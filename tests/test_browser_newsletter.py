"""The sample newsletter as a reader's browser shows it: 600 px and 320 px, no horizontal
overflow, emblem and disclaimer visible. Screenshots are kept in test-artifacts/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from browser import ARTIFACTS, browser
from helpers import SAMPLE_ISSUE, RunCli
from mirage_mailer.compose.disclaimer import AMIF_TEXT, EMBLEM_ALT, FUNDED

# An autolinked URL and a word longer than a phone is wide: the article styles let them
# break (overflow-wrap), or the whole newsletter scrolls sideways at 320 px.
LONG_WORDS = ("\n\nThe call text: <https://ec.europa.eu/info/funding-tenders/opportunities/portal/"
              "screen/opportunities/topic-details/amif-2024-tf2-ag-call-integration-01>\n\n"
              "Rechtsschutzversicherungsgesellschaftenangestelltenvertretungsausschuss.\n")


@pytest.mark.parametrize("width", [600, 320])
def test_newsletter_fits_and_shows_the_eu_block(project: Path, run_cli: RunCli,
                                                width: int) -> None:
    with (project / SAMPLE_ISSUE / "online-trainings.md").open("a", encoding="utf-8") as article:
        article.write(LONG_WORDS)
    assert run_cli("preview", SAMPLE_ISSUE).code == 0
    page_file = project / "preview/2021-10-partners-meeting/en.html"
    ARTIFACTS.mkdir(exist_ok=True)
    with browser() as chromium:
        page: Any = chromium.new_page(viewport={"width": width, "height": 900})  # type: ignore[attr-defined]
        page.goto(page_file.as_uri())
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{overflow}px of horizontal overflow at {width}px"
        emblem = page.locator(f'img[alt="{EMBLEM_ALT}"]')
        emblem.scroll_into_view_if_needed()
        assert emblem.is_visible()
        box = emblem.bounding_box()
        assert box is not None and box["width"] >= 60 and box["height"] >= 40
        assert page.evaluate("(img) => img.complete && img.naturalWidth > 0",
                             emblem.element_handle()), "the emblem image did not load"
        statement = page.get_by_text(FUNDED, exact=True)
        assert statement.is_visible()
        disclaimer = page.get_by_text(AMIF_TEXT[:60])
        assert disclaimer.is_visible()
        font_px = float(disclaimer.evaluate("(el) => getComputedStyle(el).fontSize")[:-2])
        assert font_px >= 9
        page.screenshot(path=str(ARTIFACTS / f"newsletter-{width}px.png"), full_page=True)
