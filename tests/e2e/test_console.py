"""The operator console in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by scripts/test.sh) driven by selenium against ``ferry up``.

One stack for the module (executor chunks of 512 KiB so that a 32 MB S3 → SFTP transfer commits
~62 chunks over a few seconds), the embedded SFTP server in this process. The tests log in,
watch a running job's progress bar move, open its audit trail, search a route's ledger, check
that a read-only key cannot press cancel/redrive, and that another customer's key sees none of it.

``FERRY_CONSOLE_SCREENSHOTS=docs/console`` writes the screenshots there (how the README's were
made); otherwise they go to the test's tmp dir.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import (
    PYTHON,
    REPO,
    Stack,
    _drain,
    clean_env,
    http,
    processes_of,
    wait_until,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()) and not os.environ.get("CI"),
        reason="chromium / chromium-driver not installed (scripts/test.sh installs them)",
    ),
]

CHUNK = 512 * 1024
BIG = 32 * 1000 * 1000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("ferry-console") / "data"
    proc = subprocess.Popen(
        [PYTHON, "-m", "ferry.cli", "up", "--port", "0", "--moto-port", "0",
         "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(COLUMNS="200", FERRY_EXECUTOR_CHUNK_SIZE=str(CHUNK)),
        cwd=REPO,
    )  # fmt: skip
    running = Stack(proc=proc, data_dir=data_dir)
    threading.Thread(target=_drain, args=(running,), daemon=True).start()
    wait_until(lambda: len(running.lines) == 3 or proc.poll() is not None, 180, what="ferry up")
    assert len(running.lines) == 3, "".join(running.output)
    try:
        yield running
    finally:
        assert running.stop(signal.SIGTERM) == 0, "".join(running.output[-40:])
        assert processes_of(running.data_dir) == []


@pytest.fixture(scope="module")
def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Endpoints (S3 source, SFTP target on the embedded server), a push route with one
    delivered file, and a second customer's key."""
    from ferry.local.sftp_server import start_sftp_server

    base = tmp_path_factory.mktemp("console-sftp")
    server = start_sftp_server(base / "keys", base / "root")
    s3 = stack.client("s3")
    s3.create_bucket(Bucket="console-outbox")
    s3.put_bucket_notification_configuration(
        Bucket="console-outbox", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    s3.put_object(Bucket="console-outbox", Key="big/big.bin", Body=os.urandom(BIG))

    def register(body: dict[str, Any]) -> str:
        status, created = http(stack, "POST", "/endpoints", body)
        assert status == 201, created
        endpoint_id = str(created["endpoint_id"])
        wait_until(
            lambda: http(stack, "GET", f"/endpoints/{endpoint_id}")[1].get("status") == "ACTIVE",
            60,
            what=f"endpoint {body['name']} ACTIVE",
        )
        return endpoint_id

    source = register(
        {"name": "partner-outbox", "type": "s3", "bucket": "console-outbox", "direction": "BOTH"}
    )
    details = server.details()
    target = register(
        {
            "name": "partner-sftp",
            "type": "sftp",
            "host": details["host"],
            "port": details["port"],
            "username": details["username"],
            "base_path": "/",
            "host_key": details["host_key"],
            "private_key": Path(details["private_key_path"]).read_text(),
            "direction": "BOTH",
        }
    )
    status, route = http(
        stack,
        "POST",
        "/routes",
        {
            "name": "invoices-to-partner",
            "source": {"endpoint_id": source, "path": "invoices", "pattern": "*.csv"},
            "targets": [{"endpoint_id": target, "path_template": "in/{filename}"}],
            "trigger": {"type": "event"},
        },
    )
    assert status == 201, route
    s3.put_object(Bucket="console-outbox", Key="invoices/invoice-0042.csv", Body=b"id,total\n")

    def delivered() -> Any:
        status, files = http(stack, "GET", f"/routes/{route['route_id']}/files")
        return status == 200 and any(f["status"] == "delivered" for f in files["items"])

    wait_until(delivered, 90, what="the route's file delivered")
    other = stack.cli_json("keys", "create", "acme")["api_key"]
    read_only = stack.cli_json("keys", "create", "demo", "--scope", "read")["api_key"]
    try:
        yield {
            "source": source,
            "target": target,
            "route_id": route["route_id"],
            "other_key": other,
            "read_only_key": read_only,
        }
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("FERRY_CONSOLE_SCREENSHOTS")
    folder = (REPO / wanted) if wanted else tmp_path_factory.mktemp("console-shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,900",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def find(driver: Any, css: str, timeout: float = 20) -> Any:
    from selenium.webdriver.common.by import By

    return wait_until(
        lambda: next(iter(driver.find_elements(By.CSS_SELECTOR, css)), None),
        timeout,
        interval=0.1,
        what=css,
    )


def text_of(driver: Any, css: str) -> str:
    """The text of every element ``css`` finds; the live pages repaint every second, so an
    element found may be replaced before it is read: then read the new ones."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(5):
        try:
            return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))
        except StaleElementReferenceException:
            continue
    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, css))


def search_ledger(driver: Any, query: str) -> None:
    """Type ``query`` into the route page's ledger search and submit it, until the page's
    address carries it: on a loaded machine the page may be rendered again between finding the
    box and clicking, and the click then submits the re-rendered form's old query."""
    from urllib.parse import unquote

    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(3):
        try:
            box = find(driver, "#ledger-q")
            box.clear()
            box.send_keys(query)
            find(driver, "#ledger-search button").click()
            wait_until(lambda: "q=" + query in unquote(driver.current_url), 10, what=query)
            return
        except (AssertionError, StaleElementReferenceException):
            continue
    raise AssertionError(f"the ledger search for {query} was not submitted")


def sign_in(driver: Any, stack: Stack, key: str) -> None:
    driver.get(stack.api_url + "/console#/overview")
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    box = find(driver, "#api-key")
    wait_until(lambda: box.is_displayed(), 10, what="the login form")
    box.send_keys(key)
    find(driver, "#login-button").click()
    wait_until(lambda: find(driver, "#app").is_displayed(), 10, what="signed in")


def go(driver: Any, stack: Stack, page: str, ready: str) -> None:
    """Show ``page`` (a hash change: no reload) and wait for ``ready`` on it."""
    driver.execute_script("document.getElementById('main').replaceChildren()")
    driver.get(f"{stack.api_url}/console#/{page}")
    find(driver, ready)


def test_log_in_and_watch_a_running_jobs_progress_move(
    stack: Stack, world: dict[str, Any], browser: Any, shots: Path
) -> None:
    sign_in(browser, stack, stack.api_key)
    assert browser.execute_script("return document.cookie") == ""
    assert browser.execute_script("return sessionStorage.getItem('ferry.apiKey')") == stack.api_key
    assert browser.execute_script("return localStorage.length") == 0
    find(browser, ".card .value")

    status, job = http(
        stack,
        "POST",
        "/transfers",
        {
            "source": {"endpoint_id": world["source"], "path": "big/big.bin"},
            "target": {"endpoint_id": world["target"], "path": "in/big.bin"},
            "options": {"overwrite": True},
        },
    )
    assert status in (201, 202), job
    job_id = job["job_id"]
    go(browser, stack, "jobs", "table.jobs")
    find(browser, f'tr[data-job="{job_id}"]', timeout=60)  # the read model may lag the command
    seen: list[int] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        cell = text_of(browser, f'tr[data-job="{job_id}"] .pct').strip().rstrip("%")
        if cell.isdigit() and (not seen or seen[-1] != int(cell)):
            seen.append(int(cell))
            if 20 <= int(cell) < 100 and not (shots / "jobs.png").exists():
                browser.save_screenshot(str(shots / "jobs.png"))
        if seen and seen[-1] == 100:
            break
        time.sleep(0.1)
    assert seen and seen[-1] == 100, seen
    # it moved: at least one reading part-way, and every reading at least the one before
    assert [p for p in seen if 0 < p < 100], f"the bar did not move: {seen}"
    assert seen == sorted(seen), seen
    wait_until(
        lambda: "SUCCEEDED" in text_of(browser, f'tr[data-job="{job_id}"]'), 60, what="SUCCEEDED"
    )
    # one that fails (its source is not there): the overview puts failures first
    status, failing = http(
        stack,
        "POST",
        "/transfers",
        {
            "source": {"endpoint_id": world["source"], "path": "big/missing.bin"},
            "target": {"endpoint_id": world["target"], "path": "in/missing.bin"},
            "options": {"max_attempts": 1},
        },
    )
    assert status in (201, 202), failing
    wait_until(
        lambda: http(stack, "GET", f"/jobs/{failing['job_id']}")[1].get("status") == "FAILED",
        60,
        what="the failing job FAILED",
    )
    go(browser, stack, "overview", f'table.jobs tr[data-job="{failing["job_id"]}"]')
    assert text_of(browser, ".card.bad .value") == "1"
    browser.save_screenshot(str(shots / "overview.png"))
    go(browser, stack, "jobs", f'tr[data-job="{job_id}"]')
    world["job_id"] = job_id


def test_open_the_audit_trail(stack: Stack, world: dict[str, Any], browser: Any, shots: Path):
    job_id = world["job_id"]
    browser.find_element("css selector", f'tr[data-job="{job_id}"] a').click()
    find(browser, "#audit .timeline li")
    trail = text_of(browser, "#audit")
    for event in ("JobRequested", "TransferStarted", "chunks committed", "JobSucceeded"):
        assert event in trail, trail
    assert "ChunkCommitted" not in trail  # folded into the strip
    assert len(browser.find_elements("css selector", "#audit .strip span.on")) >= 40
    assert not find(browser, "#cancel").is_enabled()  # final: nothing to cancel
    browser.set_window_size(1440, 1500)  # the whole trail
    browser.save_screenshot(str(shots / "job.png"))
    browser.set_window_size(1440, 900)


def test_search_a_routes_ledger(stack: Stack, world: dict[str, Any], browser: Any, shots: Path):
    go(browser, stack, "routes", "table tbody tr a")
    assert "invoices-to-partner" in text_of(browser, "table")
    browser.save_screenshot(str(shots / "routes.png"))
    files = f"/routes/{world['route_id']}/files?name=invoice-0042&limit=50"

    def searchable() -> bool:  # the page's own query answers before the page is asked it
        status, found = http(stack, "GET", files)
        return status == 200 and any(
            f.get("status") == "delivered" and "invoice-0042" in json.dumps(f)
            for f in found["items"]
        )

    wait_until(searchable, 60, what="the ledger search for invoice-0042 finding it delivered")
    go(browser, stack, f"route/{world['route_id']}", "#ledger-q")
    search_ledger(browser, "invoice-0042")
    find(browser, ".ledger-answer")
    assert "invoices/invoice-0042.csv" in text_of(browser, "table.files")
    assert "delivered" in text_of(browser, "table.files")
    browser.save_screenshot(str(shots / "route.png"))
    # The second question through the form too, right after the first answer. (It once showed
    # every file about one CI run in three: the local API server let two functions resolve at
    # once, and Powertools' current event is process-wide, so the files call read the parallel
    # /endpoints call's query, without `name`; ferry/local/apiserver.py, _Functions.)
    search_ledger(browser, "never-uploaded.csv")

    def not_in_ledger() -> bool:
        return "not in this route's ledger" in text_of(browser, ".ledger-answer")

    try:
        wait_until(not_in_ledger, 20, what="the not-in-ledger answer")
    except AssertionError as error:
        page = text_of(browser, "#main")
        direct = http(stack, "GET", f"/routes/{world['route_id']}/files?name=never-uploaded.csv")
        fetched = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name).slice(-8)"
        )
        raise AssertionError(
            f"{error}; at {browser.current_url} the page reads: {page}; the API answers {direct};"
            f" the page fetched {fetched}"
        ) from None
    go(browser, stack, "endpoints", "table tbody tr")
    assert "partner-sftp" in text_of(browser, "table")
    browser.save_screenshot(str(shots / "endpoints.png"))


def test_a_read_only_key_cannot_cancel_or_redrive(
    stack: Stack, world: dict[str, Any], browser: Any
) -> None:
    sign_in(browser, stack, world["read_only_key"])
    assert "read-only" in text_of(browser, "#who-key")
    go(browser, stack, f"job/{world['job_id']}", "#cancel")
    for button in ("#cancel", "#redrive"):
        element = find(browser, button)
        assert not element.is_enabled() and "read-only" in element.get_attribute("title")


def test_another_customers_key_sees_none_of_it(
    stack: Stack, world: dict[str, Any], browser: Any
) -> None:
    sign_in(browser, stack, world["other_key"])
    assert text_of(browser, "#who-customer") == "acme"
    go(browser, stack, "jobs", "table.jobs")
    assert "No jobs match." in text_of(browser, "table.jobs")
    go(browser, stack, "routes", "table")
    assert "No routes yet." in text_of(browser, "table")
    go(browser, stack, "endpoints", "table")
    assert "No endpoints yet." in text_of(browser, "table")
    go(browser, stack, f"job/{world['job_id']}", ".notice.bad")
    assert "Not found" in text_of(browser, ".notice.bad")
    go(browser, stack, f"route/{world['route_id']}", ".notice.bad")
    assert "Not found" in text_of(browser, ".notice.bad")
    go(browser, stack, "overview", ".card .value")
    assert text_of(browser, ".card .value").split()[:3] == ["0", "0", "0"]
    # a wrong key is refused and forgotten
    browser.execute_script("sessionStorage.setItem('ferry.apiKey', 'fk_wrong')")
    browser.get(stack.api_url + "/console#/jobs")
    find(browser, "#login-error")
    wait_until(lambda: "not accepted" in text_of(browser, "#login-error"), 10, what="refusal")
    assert browser.execute_script("return sessionStorage.getItem('ferry.apiKey')") is None


@pytest.mark.slow  # Swagger UI renders the whole document: ~15 s of a loaded 2-core machine
def test_the_api_docs_load_without_any_other_origin(stack: Stack, browser: Any, shots: Path):
    browser.get(stack.api_url + "/docs")
    find(browser, ".opblock", timeout=30)
    assert "/transfers" in text_of(browser, "#ui")
    hosts = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).host)"
    )
    assert set(hosts) <= {stack.api_url.split("//", 1)[1]}, hosts
    browser.save_screenshot(str(shots / "docs.png"))
