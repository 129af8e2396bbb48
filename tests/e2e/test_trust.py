"""Trust in the browser: the Security page (two-factor setup with QR and recovery codes,
sessions with "end"), the code step at sign-in, the "Report" action and the admin area
(users, reports, audit log), in English and Russian."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import PASSWORD, User, promote, shot
from tests.e2e.support import api_user
from tests.e2e.test_settings_admin import api, my_id, open_settings

pytestmark = pytest.mark.browser


def connected(page: Any) -> None:
    page.locator('[data-testid="connection-status"][data-state="connected"]').wait_for()


def enable_two_factor(page: Any) -> list[str]:
    import pyotp

    open_settings(page, "security")
    page.get_by_test_id("twofactor-setup").click()
    qr = page.get_by_test_id("twofactor-qr")
    qr.wait_for()
    assert qr.get_attribute("src").startswith("data:image/svg+xml")
    secret = page.get_by_test_id("twofactor-secret").inner_text()
    page.get_by_test_id("twofactor-code").fill(pyotp.TOTP(secret).now())
    page.get_by_test_id("twofactor-enable-submit").click()
    codes = page.get_by_test_id("recovery-codes").locator("li")
    codes.first.wait_for()
    assert codes.count() == 10
    return [c.strip() for c in codes.all_inner_texts()]


def test_two_factor_setup_then_the_code_step(register: Any, new_page: Any) -> None:
    me: User = register("secure")
    codes = enable_two_factor(me.page)
    shot(me.page, "security-recovery-codes")
    me.page.get_by_test_id("recovery-done").click()
    me.page.get_by_test_id("twofactor-on").wait_for()
    sessions = me.page.get_by_test_id("sessions-list")
    sessions.get_by_test_id("session-current").wait_for()
    shot(me.page, "security-page")

    page = new_page()
    page.goto("/login")
    page.get_by_test_id("login-username").fill(me.username)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("mfa-form").wait_for()
    assert page.get_by_test_id("login-form").is_hidden()
    shot(page, "login-code-step")
    page.get_by_test_id("mfa-code").fill("000000")
    page.get_by_test_id("mfa-submit").click()
    page.get_by_test_id("mfa-error").filter(has_text="wrong").wait_for()
    page.get_by_test_id("mfa-use-recovery").click()
    assert page.get_by_test_id("mfa-label").inner_text() == "Recovery code"
    page.get_by_test_id("mfa-code").fill(codes[0])
    page.get_by_test_id("mfa-submit").click()
    page.wait_for_url("**/chat*")
    connected(page)
    assert page.errors == []


def test_ending_another_session_signs_it_out(register: Any, new_page: Any) -> None:
    me: User = register("twice")
    other = new_page()
    other.goto("/login")
    other.get_by_test_id("login-username").fill(me.username)
    other.get_by_test_id("login-password").fill(PASSWORD)
    other.get_by_test_id("login-submit").click()
    other.wait_for_url("**/chat*")
    connected(other)
    open_settings(me.page, "security")
    rows = me.page.get_by_test_id("sessions-list").locator('[data-testid^="session-end-"]')
    rows.first.wait_for()
    assert rows.count() == 1
    rows.first.click()
    other.wait_for_url("**/login", timeout=20_000)
    me.page.get_by_test_id("sessions-list").locator('[data-testid^="session-end-"]').first.wait_for(
        state="detached"
    )


def test_report_then_the_admin_area(register: Any, data_dir: Path, base_url: str) -> None:
    admin: User = register("chief")
    promote(data_dir, admin.username)
    reporter: User = register("reporter")
    author = api_user(base_url, "author", display_name="Loud Author")
    general = next(c for c in api(reporter.page, "GET", "/chats")["body"] if c["type"] == "channel")
    api_join = author.http.post(f"/service/api/chats/{general['id']}/join")
    assert api_join.status_code == 200
    said = author.send(general["id"], "buy cheap watches now")

    page = reporter.page
    message = page.locator(f'[data-message-id="{said["id"]}"]')
    message.hover()
    message.get_by_test_id("message-report").click()
    page.get_by_test_id("report-reason").fill("spam")
    shot(page, "report-dialog")
    page.get_by_test_id("report-submit").click()
    page.get_by_test_id("report-dialog").wait_for(state="detached")

    chief = admin.page
    chief.reload()
    connected(chief)
    dialog = open_settings(chief, "reports")
    row = dialog.locator('[data-testid^="report-"]').filter(has_text="buy cheap watches").first
    row.wait_for()
    assert "spam" in row.inner_text()
    shot(chief, "admin-reports")
    row.locator('[data-testid^="report-delete_message-"]').click()
    dialog.get_by_test_id("reports-list").filter(has_text="No reports here.").or_(
        dialog.get_by_test_id("reports-list").filter(has_not_text="buy cheap watches")
    ).first.wait_for()

    chief.get_by_test_id("settings-tab-users").click()
    chief.get_by_test_id("admin-users-search").fill(author.username)
    user_row = chief.get_by_test_id(f"admin-user-{author.id}")
    user_row.wait_for()
    user_row.get_by_test_id(f"admin-deactivate-{author.id}").click()
    user_row.get_by_test_id("user-deactivated").wait_for()
    shot(chief, "admin-users")

    chief.get_by_test_id("settings-tab-audit").click()
    audit = chief.get_by_test_id("audit-list")
    audit.filter(has_text="user.deactivate").wait_for()
    assert "report.resolve" in audit.inner_text() and "message.delete" in audit.inner_text()
    chief.get_by_test_id("audit-action").select_option("report.resolve")
    audit.filter(has_not_text="user.deactivate").wait_for()
    shot(chief, "admin-audit")
    assert my_id(admin) != author.id
    assert chief.errors == [] and page.errors == []


def test_security_and_admin_area_in_russian(register: Any, data_dir: Path) -> None:
    admin: User = register("glava", display_name="Глава", locale="ru-RU")
    promote(data_dir, admin.username)
    page = admin.page
    page.reload()
    connected(page)
    dialog = open_settings(page, "security")
    dialog.get_by_text("Двухфакторный вход").first.wait_for()
    assert "где выполнен вход" in dialog.inner_text().lower()
    assert dialog.get_by_test_id("session-current").inner_text() == "Это устройство"
    shot(page, "security-page-ru")
    page.get_by_test_id("settings-tab-users").click()
    page.get_by_test_id("admin-users-search").fill(admin.username)
    row = page.get_by_test_id(f"admin-user-{my_id(admin)}")
    row.wait_for()
    assert "админ" in row.inner_text()
    assert page.get_by_test_id("settings-tab-audit").inner_text() == "Журнал действий"
    page.get_by_test_id("settings-tab-reports").click()
    assert re.search("Открытые жалобы", dialog.inner_text())
    page.get_by_test_id("reports-list").locator("*").first.wait_for()
    shot(page, "admin-reports-ru")


def test_chat_retention_in_chat_details(register: Any) -> None:
    owner: User = register("keeper")
    page = owner.page
    chat = api(page, "POST", "/chats", {"type": "group", "title": "Short memory"})["body"]
    page.reload()
    connected(page)
    page.get_by_test_id(f"chat-item-{chat['id']}").click()
    page.get_by_test_id("chat-info-button").click()
    head = page.get_by_test_id("chat-info-head")
    head.wait_for()
    assert "null" not in head.inner_text()  # no description: nothing shown
    select = page.get_by_test_id("chat-edit-retention")
    assert select.input_value() == ""  # follows the server's setting
    select.select_option("30")
    page.get_by_test_id("chat-edit-save").click()
    deadline = 50
    while api(page, "GET", f"/chats/{chat['id']}")["body"]["retention_days"] != 30 and deadline:
        page.wait_for_timeout(100)
        deadline -= 1
    assert api(page, "GET", f"/chats/{chat['id']}")["body"]["retention_days"] == 30
    shot(page, "chat-retention")
    audit_free = api(page, "GET", "/admin/audit")
    assert audit_free["status"] == 403  # the owner is no admin: the entry is for admins


def test_server_retention_in_the_admin_area(register: Any, data_dir: Path) -> None:
    admin: User = register("keeperofall")
    promote(data_dir, admin.username)
    page = admin.page
    page.reload()
    connected(page)
    dialog = open_settings(page, "server")
    inherit = dialog.get_by_test_id("server-retention-inherit")
    days = dialog.get_by_test_id("server-retention-days")
    dialog.get_by_test_id("server-retention-default").filter(has_text="keep forever").wait_for()
    assert inherit.is_checked() and days.is_disabled()
    inherit.uncheck()
    days.fill("-3")
    dialog.get_by_test_id("server-retention-save").click()
    dialog.get_by_test_id("server-retention-error").filter(has_text="from 0 to 36500").wait_for()
    days.fill("90")
    dialog.get_by_test_id("server-retention-save").click()
    page.get_by_test_id("toast").filter(has_text="Retention saved").wait_for()
    assert api(page, "GET", "/admin/settings")["body"]["retention_days"] == 90
    shot(page, "admin-server-retention")
    page.get_by_test_id("settings-tab-audit").click()
    page.get_by_test_id("audit-action").select_option("settings.update")
    audit = page.get_by_test_id("audit-list")
    audit.filter(has_text="retention_days: 0 → 90").wait_for()
    shot(page, "admin-audit-settings")
    page.get_by_test_id("settings-tab-server").click()
    dialog.get_by_test_id("server-retention-inherit").check()
    dialog.get_by_test_id("server-retention-save").click()
    page.get_by_test_id("toast").filter(has_text="Retention saved").last.wait_for()
    assert api(page, "GET", "/admin/settings")["body"]["retention_days"] is None
    assert page.errors == []
