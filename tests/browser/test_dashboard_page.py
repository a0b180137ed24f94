"""The dashboard as a user sees it: a real headless Chromium (Debian's
chromium + chromium-driver, driven by selenium) against `copytrader serve` on
loopback with a stand-in Data API. The page loads, shows a position and a
rejection reason the engine produced, updates when a new leader trade
arrives, refuses the halt button without the token and halts the engine
with it. Takes a screenshot of the overview (into docs/dashboard.png, README's,
with COPYTRADER_SCREENSHOT=1; else into the test's temporary folder).

Without chromium the test skips; under COPYTRADER_REQUIRE_BROWSER=1 (CI) it fails."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from copytrader.adapters.storage.sqlite import BadStoreError, SqliteStore
from tests.standins.data_api import DataApiStandIn, activity_row

CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
LEADER = "0x" + "ab" * 20
CONDITION = "0x" + "5e" * 32
HELD, DEAR, FRESH = str(10**70 + 1), str(10**70 + 2), str(10**70 + 3)  # CTF ids: one fills, one is refused
TOKEN = "a-control-token-for-the-test"


def _browser():
    missing = [str(p) for p in (CHROMIUM, DRIVER) if not p.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (the test extra)")
    if missing:
        message = f"no browser for the dashboard test: {', '.join(missing)} missing (apt-get install chromium chromium-driver)"
        if os.environ.get("COPYTRADER_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (required: COPYTRADER_REQUIRE_BROWSER=1)")
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="ct-chromium-")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    # the driver's path given: Selenium Manager never looks for (or downloads) one
    return webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)


def _markets(tmp_path: Path) -> Path:
    def token(token_id: str, outcome: str, asks) -> dict:
        return {"token_id": token_id, "outcome": outcome, "winner": None,
                "book": {"bids": [["0.48", "900"]], "asks": asks}}
    path = tmp_path / "markets.json"
    path.write_text(json.dumps({"markets": [{
        "condition_id": CONDITION, "question": "Will the stand-in market resolve Yes?", "neg_risk": False,
        "tick_size": "0.01", "min_order_size": "5", "closed": False,
        "tokens": [token(HELD, "Yes", [["0.51", "900"]]), token(DEAR, "No", [["0.90", "900"]]),
                   token(FRESH, "Maybe", [["0.51", "900"]])]}]}))
    return path


def _config(tmp_path: Path, api_url: str) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text(f"""
profile = "paper"
leaders = ["{LEADER}"]
[store]
path = "{tmp_path / 'data' / 'ct.db'}"
[feed]
kind = "data_api"
url = "{api_url}"
poll_interval_s = 0.1
lookback_s = 600
[market]
path = "{_markets(tmp_path)}"
[service]
metrics_port = 0
[dashboard]
port = 0
token_env = "CT_DASHBOARD_TOKEN"
refresh_s = "0.2"
stats_ttl_s = "0"
""")
    return path


def _dashboard_url(proc, deadline: float) -> str:
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            line = proc.stderr.readline()
            if not line:
                break
            if "dashboard http://" in line:
                return line.split("dashboard ")[1].split()[0].rstrip("/")
    raise AssertionError("serve did not print the dashboard's address in time")


def _row(ts: int, n: int, asset: str, title: str, price: float = 0.5) -> dict:
    row = activity_row(LEADER, ts, n, asset=asset, condition=CONDITION, price=price)
    row["title"] = title
    return row


def _store(tmp_path: Path):
    return SqliteStore(tmp_path / "data" / "ct.db", read_only=True)


def test_the_page_shows_what_the_engine_did_updates_live_and_halts_only_with_the_token(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.wait import WebDriverWait

    driver = _browser()
    with DataApiStandIn() as api:
        now = int(time.time())
        api.add(_row(now - 60, 1, HELD, "Stand-in market"), _row(now - 50, 2, DEAR, "Stand-in market"))
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("COPYTRADER_")},
               "CT_DASHBOARD_TOKEN": TOKEN}
        proc = subprocess.Popen([sys.executable, "-m", "copytrader.entrypoints.cli", "--config",
                                 str(_config(tmp_path, api.url)), "serve"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            url = _dashboard_url(proc, time.monotonic() + 60)
            assert url.startswith("http://127.0.0.1:")
            # bounded waits, no fixed sleeps; a part the page re-rendered meanwhile is read again
            wait = WebDriverWait(driver, 30, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,))
            with_store = lambda read: WebDriverWait(driver, 30, poll_frequency=0.1).until(lambda _: read())

            def decided(n: int) -> list:
                if not (tmp_path / "data" / "ct.db").exists():  # the engine has not made it yet
                    return []
                try:
                    with _store(tmp_path) as s:
                        rows = s.history(100)
                except BadStoreError:  # made, its schema not written yet
                    return []
                return rows if len(rows) >= n else []

            [refused, filled] = sorted(with_store(lambda: decided(2)), key=lambda r: r.decision != "rejected")
            assert filled.status.value == "filled" and refused.decision == "rejected" and refused.reason
            driver.get(url + "/")
            state = lambda: driver.find_element(By.CSS_SELECTOR, "[data-testid=state-default]").text
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#positions tr[data-position='{HELD}']"))
            position = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, f"#positions tr[data-position='{HELD}']").text)
            assert "Stand-in market" in position and "open" in position
            wait.until(lambda d: refused.reason in d.find_element(By.ID, "decisions").text)
            wait.until(lambda d: state() == "ACTIVE" and "USDC" in d.find_element(By.ID, "overview").text)

            api.add(_row(int(time.time()) - 1, 3, FRESH, "A fresh leader trade"))  # no reload from here on
            wait.until(lambda d: "A fresh leader trade" in d.find_element(By.ID, "decisions").text)
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, f"#positions tr[data-position='{FRESH}']"))
            wait.until(lambda d: "A fresh leader trade" in d.find_element(By.CSS_SELECTOR,
                                                                          "[data-testid=last-default]").text)
            shot = ROOT / "docs" / "dashboard.png" if os.environ.get("COPYTRADER_SCREENSHOT") else tmp_path / "shot.png"
            assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

            driver.find_element(By.CSS_SELECTOR, "[data-testid=halt-default]").click()  # no token yet
            wait.until(lambda d: "refused (401)" in d.find_element(By.ID, "message").text)
            with _store(tmp_path) as s:
                assert s.get_state().state.value == "ACTIVE" and s.controls() == []

            driver.find_element(By.ID, "token").send_keys(TOKEN)
            driver.find_element(By.ID, "token-save").click()
            assert "token" not in driver.current_url and TOKEN not in driver.current_url
            driver.find_element(By.CSS_SELECTOR, "[data-testid=reason-default]").send_keys("seen enough")
            driver.find_element(By.CSS_SELECTOR, "[data-testid=halt-default]").click()
            wait.until(lambda d: state() == "HALTED")
            with _store(tmp_path) as s:
                assert (s.get_state().state.value, s.get_state().reason) == ("HALTED", "seen enough")
                assert [(a.action, a.source) for a in s.controls()] == [("halt", "dashboard")]
                fills = sum(r.status.value == "filled" for r in s.history(100))
            api.add(_row(int(time.time()) - 1, 4, HELD, "After the halt"))  # the engine stops copying
            after = with_store(lambda: [r for r in decided(4) if r.title == "After the halt"])
            assert [(r.decision, r.reason) for r in after] == [("rejected", "trading_halted")]
            with _store(tmp_path) as s:
                assert sum(r.status.value == "filled" for r in s.history(100)) == fills
            wait.until(lambda d: "trading_halted" in d.find_element(By.ID, "decisions").text)
            wait.until(lambda d: "control (dashboard)" in d.find_element(By.ID, "decisions").text)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
        finally:
            driver.quit()
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_without_a_browser_it_skips_or_under_ci_fails_loudly(monkeypatch, tmp_path):
    import tests.browser.test_dashboard_page as here

    monkeypatch.setattr(here, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("COPYTRADER_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-chromium missing"):
        here._browser()
    monkeypatch.setenv("COPYTRADER_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="required: COPYTRADER_REQUIRE_BROWSER=1"):
        here._browser()
