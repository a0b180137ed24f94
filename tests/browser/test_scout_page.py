"""The scout's ranking page as a user sees it: `copytrader scout` against the
stand-in Data API, its scout.html opened in the headless Chromium of the
dashboard test. The table shows the candidates in rank order and every equity
chart loads. Takes a screenshot (into docs/scout.png, README's, with
COPYTRADER_SCREENSHOT=1; else into the test's temporary folder).

Without chromium the test skips; under COPYTRADER_REQUIRE_BROWSER=1 (CI) it fails."""
from __future__ import annotations

import json
import os

from tests.browser.test_dashboard_page import ROOT, _browser
from tests.scout.test_scout import BAD, GOOD, SMALL, _scout, api  # noqa: F401 (api: the stand-in fixture)


def test_the_ranking_page_shows_the_candidates_in_order_with_their_charts(tmp_path, api):  # noqa: F811
    to_docs = bool(os.environ.get("COPYTRADER_SCREENSHOT"))
    result = json.loads(_scout(tmp_path, api, "--json").stdout)
    assert [r["address"] for r in result["candidates"]][0] == GOOD
    driver = _browser()
    try:
        driver.set_window_size(1500, 900)
        driver.get((tmp_path / "out" / "scout.html").as_uri())
        assert driver.title == "copytrader scout"
        table_rows = driver.find_elements("css selector", "table tbody tr") or \
            driver.find_elements("css selector", "table tr")[1:]
        shown = [w for tr in table_rows for w in (GOOD, SMALL, BAD) if w in tr.text]
        assert shown == [r["address"] for r in result["candidates"]]
        images = driver.find_elements("css selector", "figure img")
        assert len(images) == 3
        assert all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
                   for img in images)
        shot = ROOT / "docs" / "scout.png" if to_docs else tmp_path / "shot.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()
