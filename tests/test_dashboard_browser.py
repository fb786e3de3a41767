"""The dashboard in a real headless Chromium (Debian chromium + chromedriver, selenium).

One waitress server and one browser for the whole module: log in, visit every page in both languages,
change a filter, open a case from the deviation grid, drill down from a chart, and check that the
browser console has no errors. Screenshots go to test-output/screenshots/.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dashboards import auth, i18n, queries
from dashboards.app import PAGES, create_app
from tests.fixtures_published import build_published_db

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = Path(__file__).resolve().parent.parent / "test-output" / "screenshots"
READY = {  # a selector that exists once each page has drawn its data
    "/": "#ring-kpis .kpi",
    "/peta-proses": "#peta-graph .main-svg",
    "/penyimpangan": "#dev-grid .ag-row",
    "/kasus": "#kasus-body table",
    "/waktu-langkah": "#waktu-hist .main-svg",
    "/sop": "#sop-body table",
    "/laporan": "#laporan-body table",
}
CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1400,1000"]

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian chromium and chromium-driver are not installed: run tests/install_browser.sh as root")
    from waitress.server import create_server

    root = tmp_path_factory.mktemp("browser")
    db = build_published_db(root / "published" / "fx.duckdb")
    (root / "reports").mkdir()
    (root / "reports" / "smpn2-ngawi_2026-01.html").write_text("<h1>Laporan</h1>", encoding="utf-8")
    users = root / "users.yaml"
    auth.ensure_demo_users(users)
    app = create_app(root / "published", users, secret_key=b"browser-test-key" * 2)
    server = create_server(app.server, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}", db
    server.close()
    queries.source(root / "published").close()


@pytest.fixture(scope="module")
def driver(site: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROME_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    drv.set_page_load_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    base, _ = site
    drv.get(base + "/")
    assert "/login" in drv.current_url
    drv.save_screenshot(str(SHOTS / "login.png"))
    drv.find_element(By.ID, "username").send_keys("qa")
    drv.find_element(By.ID, "password").send_keys("patuh-demo")
    drv.find_element(By.ID, "login-submit").click()
    wait_for(drv, "#ring-kpis .kpi")
    yield drv
    drv.quit()


def wait_for(drv: Any, css: str, timeout: float = 30) -> Any:
    WebDriverWait(drv, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))
    return drv.find_elements(By.CSS_SELECTOR, css)[0]


def click_first(driver: Any, selector: str) -> str:
    """Click the first element matching ``selector`` and return its text; a grid that re-renders meanwhile
    (the element went stale) is looked up again."""
    def attempt(d: Any) -> str | bool:
        try:
            element = d.find_element(By.CSS_SELECTOR, selector)
            text = str(element.text)
            element.click()
            return text
        except StaleElementReferenceException:
            return False

    return str(WebDriverWait(driver, 20).until(attempt))


def wait_idle(drv: Any, timeout: float = 30) -> None:
    """Until Dash has no callback in flight (and the figures had a moment to draw)."""
    WebDriverWait(drv, timeout).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading='true']"))
    time.sleep(0.3)


def console_errors(drv: Any) -> list[str]:
    return [e["message"] for e in drv.get_log("browser") if e["level"] == "SEVERE"]


def text_of(drv: Any, css: str) -> str | None:
    """The text of the first match, read in one step (the page may re-render between find and read)."""
    value = drv.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
                               css)
    return None if value is None else str(value)


def by_dash_id(drv: Any, dash_id: str) -> Any:
    return drv.execute_script("return document.getElementById(arguments[0])", dash_id)


def test_every_page_in_both_languages(site: tuple[str, Path], driver: Any) -> None:
    base, _ = site
    console_errors(driver)  # start clean
    for lang in ("id", "en"):
        for page in PAGES:
            driver.get(base + page.PATH + ("?lang=en" if lang == "en" else ""))
            wait_for(driver, READY[page.PATH])
            wait_idle(driver)
            active = driver.find_element(By.CSS_SELECTOR, ".nav-link.active").text
            assert active == i18n.t(page.NAV_KEY, lang)
            name = page.PATH.strip("/") or "ringkasan"
            driver.save_screenshot(str(SHOTS / f"{name}-{lang}.png"))
    assert console_errors(driver) == []


def test_a_filter_change_lives_in_the_url_and_narrows_the_numbers(site: tuple[str, Path], driver: Any) -> None:
    base, db = site
    driver.get(base + "/")
    wait_for(driver, "#ring-kpis .kpi")
    wait_idle(driver)
    by_dash_id(driver, '{"key":"start","type":"flt"}').click()
    wait_for(driver, "[role='option']")
    driver.execute_script("""for (const o of document.querySelectorAll("[role='option']")) {
        if (o.textContent.trim() === arguments[0]) { o.click(); return; } }""", "Okt 2025")
    WebDriverWait(driver, 20).until(lambda d: "start=2025-10" in d.current_url)
    conn = duckdb.connect(str(db), read_only=True)
    expected = conn.execute("SELECT count(*) FROM case_results WHERE opened_at >= '2025-10-01'").fetchone()
    conn.close()
    assert expected is not None
    WebDriverWait(driver, 20).until(
        lambda d: text_of(d, "#ring-kpi-cases .kpi-value") == i18n.fmt_int(expected[0]))
    wait_idle(driver)
    driver.save_screenshot(str(SHOTS / "ringkasan-filtered.png"))
    # the URL is the view: opening it afresh shows the same filter
    driver.get(driver.current_url)
    wait_for(driver, "#ring-kpis .kpi")
    assert text_of(driver, "#ring-kpi-cases .kpi-value") == i18n.fmt_int(expected[0])
    assert console_errors(driver) == []


def test_open_a_case_from_the_deviation_grid(site: tuple[str, Path], driver: Any) -> None:
    base, _ = site
    driver.get(base + "/penyimpangan?kind=overdue_step")
    wait_for(driver, "#dev-grid .ag-row .ag-cell[col-id='case_id']")
    wait_idle(driver)
    assert driver.find_element(By.ID, "dev-count").text.endswith("penyimpangan")
    case_id = click_first(driver, "#dev-grid .ag-row .ag-cell[col-id='case_id']")
    WebDriverWait(driver, 20).until(lambda d: "/kasus" in d.current_url and f"case={case_id}" in d.current_url)
    title = wait_for(driver, "#kasus-title")
    assert case_id in title.text
    wait_for(driver, "#kasus-timeline .main-svg")
    wait_idle(driver)
    explanations = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".dev-item p")]
    assert any("melebihi standar" in text for text in explanations)
    driver.save_screenshot(str(SHOTS / "kasus-detail.png"))
    assert console_errors(driver) == []


def test_an_sop_is_drawn_like_its_paper_table(site: tuple[str, Path], driver: Any) -> None:
    base, _ = site
    driver.get(base + "/sop?inst=smpn2-ngawi&sop=smpn2-ngawi/bk001-prosedur")
    wait_for(driver, "#sop-body .card")
    wait_idle(driver)
    frames = driver.find_elements(By.CSS_SELECTOR, "#sop-frame")
    if frames:  # pipeline.render: the Permenpan-RB table in a sandboxed frame
        assert "Penggalian data" in (frames[0].get_attribute("srcdoc") or "")
    else:
        assert "Penggalian data" in driver.find_element(By.CSS_SELECTOR, "#sop-body table").text
    driver.save_screenshot(str(SHOTS / "sop-detail.png"))
    assert console_errors(driver) == []


def test_a_chart_opens_the_deviations_behind_it(site: tuple[str, Path], driver: Any) -> None:
    base, _ = site
    driver.get(base + "/")
    wait_for(driver, "#ring-kind .main-svg")
    wait_idle(driver)
    bar = driver.find_elements(By.CSS_SELECTOR, "#ring-kind .point path")[-1]  # the largest kind
    ActionChains(driver).move_to_element(bar).pause(0.3).click().perform()  # plotly listens on its drag layer
    WebDriverWait(driver, 20).until(lambda d: "/penyimpangan" in d.current_url and "kind=" in d.current_url)
    wait_for(driver, "#dev-grid .ag-row")
    assert console_errors(driver) == []
