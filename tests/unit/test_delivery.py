"""Delivery of live trigger firings to webhooks (pulse/live/delivery.py): signatures, backoff, the settings, and
deliveries to real local HTTP servers (one failing with 500s then OK, one slow, one answering 400, one gone)."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import sqlite3
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from live_feed import SECRET_A, SECRET_B, SECRET_C, SECRET_D, Receiver, create_feed, insert_firings, wait_for

from pulse.core.settings import SettingsError, load_settings
from pulse.live.delivery import (
    DEAD,
    DELIVERED,
    RETRY,
    DeliveryConfig,
    DeliveryLocked,
    Outcome,
    Webhook,
    WebhookWorker,
    backoff_seconds,
    connect,
    dead_letters,
    deliverer_lock,
    delivery_log,
    delivery_settings,
    firing_body,
    redeliver,
    retry_after_seconds,
    run_deliverer,
    signature,
    verify_signature,
)

NOW = datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC)

# ----------------------------------------------------------------------------------------------- signing


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"firing_key":"k","seq":1}'
    expected = hmac.new(SECRET_A.encode(), b"1765155723." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET_A, 1765155723, body) == "sha256=" + expected


def test_verify_rejects_a_changed_body_an_old_timestamp_and_another_secret() -> None:
    body = b'{"a":1}'
    ts = 1_800_000_000
    good = signature(SECRET_A, ts, body)
    assert verify_signature(SECRET_A, body, str(ts), good, now=ts + 10)
    assert not verify_signature(SECRET_A, b'{"a":2}', str(ts), good, now=ts + 10)
    assert not verify_signature(SECRET_A, body, str(ts), good, now=ts + 301)  # a replay, 5 minutes later
    assert not verify_signature(SECRET_A, body, str(ts + 1), good, now=ts + 10)  # the timestamp is signed
    assert not verify_signature(SECRET_B, body, str(ts), good, now=ts + 10)
    assert not verify_signature(SECRET_A, body, "soon", good, now=ts)


def test_the_receiver_example_in_the_docs_checks_a_pulse_request() -> None:
    """docs/realtime.md's Python example, run: it accepts what pulse signs, refuses a changed body or an old one."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "realtime.md").read_text()
    [code] = [
        block.split("```", 1)[0]
        for block in doc.split("```python\n")[1:]
        if "def pulse_request_is_genuine" in block.split("```", 1)[0]
    ]  # the receiver's example (other sections have Python blocks too)
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - our own documentation
    genuine = scope["pulse_request_is_genuine"]
    body = firing_body(
        {
            "seq": 1,
            "firing_key": "k",
            "trigger_name": "t",
            "user_key": "u",
            "fired_at": "f",
            "recorded_at": "r",
            "evidence": None,
        }
    )
    now = int(time.time())
    headers = {"X-Pulse-Timestamp": str(now), "X-Pulse-Signature": signature(SECRET_A, now, body)}
    assert genuine(SECRET_A, body, headers)
    assert not genuine(SECRET_A, body + b" ", headers)
    assert not genuine(SECRET_B, body, headers)
    old = {"X-Pulse-Timestamp": str(now - 600), "X-Pulse-Signature": signature(SECRET_A, now - 600, body)}
    assert not genuine(SECRET_A, body, old)


def test_firing_body_is_the_row_with_evidence_as_an_object() -> None:
    row = {
        "seq": 7,
        "firing_key": "cart_abandonment|u1|2026-12-08T01:00:00+00:00",
        "trigger_name": "cart_abandonment",
        "user_key": "u1",
        "fired_at": "2026-12-08T01:00:00.000000+00:00",
        "recorded_at": "2026-12-08T01:00:00.100000+00:00",
        "evidence": '{"cart_adds": 2}',
    }
    payload = json.loads(firing_body(row))
    assert payload == {**row, "evidence": {"cart_adds": 2}}


# ----------------------------------------------------------------------------------------------- retries


def test_backoff_is_full_jitter_doubling_up_to_the_cap() -> None:
    rng = random.Random(3)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 50.0), (40, 50.0)]:
        waits = [backoff_seconds(attempt, 1.0, 50.0, rng) for _ in range(400)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > 0.9 * ceiling and min(waits) < 0.1 * ceiling  # spread over the whole range


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("7", NOW) == 7
    assert retry_after_seconds("Tue, 08 Dec 2026 01:02:33 GMT", NOW) == 30
    assert retry_after_seconds("Tue, 08 Dec 2026 01:00:00 GMT", NOW) == 0  # already past
    assert retry_after_seconds(None, NOW) is None
    assert retry_after_seconds("soon", NOW) is None
    assert retry_after_seconds("99999999", NOW) == 24 * 3600


# ----------------------------------------------------------------------------------------------- settings


def _env(tmp_path: Path, **variables: str) -> dict[str, str]:
    return {"PULSE_HOME": str(tmp_path / "home"), **{f"PULSE_{k.upper()}": v for k, v in variables.items()}}


def test_webhooks_and_secrets_from_the_settings(tmp_path: Path) -> None:
    env = _env(
        tmp_path,
        webhooks="cms=https://cms.example.com/hooks/pulse, email=http://127.0.0.1:9/in?list=a%2Cb",
        webhook_secrets=f"cms={SECRET_A},email={SECRET_B}",
        webhook_max_attempts="3",
    )
    config = DeliveryConfig.from_settings(delivery_settings(env))
    assert [(w.name, w.url) for w in config.webhooks] == [
        ("cms", "https://cms.example.com/hooks/pulse"),
        ("email", "http://127.0.0.1:9/in?list=a%2Cb"),
    ]
    assert [w.secret for w in config.webhooks] == [SECRET_A, SECRET_B]
    assert config.max_attempts == 3
    assert config.state_db == (tmp_path / "home" / "live" / "state.sqlite").resolve()
    assert SECRET_A not in repr(config)


@pytest.mark.parametrize(
    ("variables", "named", "said"),
    [
        ({"webhooks": "cms=ftp://cms.example.com/x"}, "PULSE_WEBHOOKS", "cms: expected an http:// or https:// URL"),
        ({"webhooks": "cms=https:///x"}, "PULSE_WEBHOOKS", "with a host"),
        ({"webhooks": "CMS=https://a.example"}, "PULSE_WEBHOOKS", "item 1 (?)"),
        ({"webhooks": "cms=https://a.example,cms=https://b.example"}, "PULSE_WEBHOOKS", "cms is named twice"),
        ({"webhooks": "cms=https://user:pw@a.example/x"}, "PULSE_WEBHOOKS", "no user or password"),
        ({"webhooks": "cms=https://a.example", "webhook_secrets": "cms=tooshort"}, "PULSE_WEBHOOK_SECRETS", "8 chara"),
        ({"webhooks": "cms=https://a.example"}, "webhooks: cms has no secret", "webhook_secrets"),
        ({"webhook_secrets": f"cms={SECRET_A}"}, "webhook_secrets: cms is not a webhook", "names none"),
        ({"webhook_max_attempts": "0"}, "PULSE_WEBHOOK_MAX_ATTEMPTS", "from 1 to 100"),
    ],
)
def test_a_bad_webhook_setting_is_named(tmp_path: Path, variables: dict, named: str, said: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        delivery_settings(_env(tmp_path, **variables))
    text = str(excinfo.value)
    assert named in text and said in text, text


def test_a_secret_is_never_shown(tmp_path: Path) -> None:
    short = "s3cr3t-but-short"
    with pytest.raises(SettingsError) as excinfo:
        load_settings(_env(tmp_path, webhooks="cms=https://a.example", webhook_secrets=f"cms={short}"))
    assert short not in str(excinfo.value) and "cms: the secret has 16 characters" in str(excinfo.value)
    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text(f'webhooks = "cms=https://a.example"\nwebhook_secrets = "cms={SECRET_C}"\n')
    settings = load_settings({"PULSE_HOME": str(home)})
    assert settings.webhook_secrets == f"cms={SECRET_C}"
    shown = dict((name, value) for name, value, _ in settings.describe())
    assert shown["webhook_secrets"] == "(set, not shown)" and shown["webhooks"] == "cms=https://a.example"
    assert SECRET_C not in " ".join(value for _, value, _ in settings.describe())
    (home / "settings.toml").write_text(f'webhooks = "cms=https://a.example"\nwebhook_secrets = "cms={SECRET_C}!"\n')
    with pytest.raises(SettingsError) as excinfo:
        load_settings({"PULSE_HOME": str(home)})
    assert SECRET_C not in str(excinfo.value) and "webhook_secrets = (a secret, not shown)" in str(excinfo.value)


# ----------------------------------------------------------------------------------------------- delivering


def _config(tmp_path: Path, hooks: list[Webhook], **overrides) -> DeliveryConfig:
    state_db = tmp_path / "live" / "state.sqlite"
    create_feed(state_db)
    values = dict(max_attempts=4, timeout_seconds=5.0, backoff_seconds=0.02, backoff_max_seconds=0.2) | overrides
    return DeliveryConfig(state_db=state_db, webhooks=tuple(hooks), **values)


def _latest(conn: sqlite3.Connection, webhook: str) -> dict[str, str]:
    return {row["firing_key"]: row["status"] for row in delivery_log(conn, webhook)}


def test_each_webhook_gets_every_firing_signed_in_its_own_time(tmp_path: Path) -> None:
    """Four webhooks at once: one failing with 500 (and once 429 with Retry-After) before it answers 200, one slow
    (1.5 s an answer), one answering 400 (a dead letter at once), one with nobody listening (a dead letter after
    max_attempts). The first delivers everything while the slow one is still busy with its first firing."""
    tries: Counter[str] = Counter()

    def flaky_answer(n: int, headers: dict) -> tuple[int, dict]:
        tries[headers["idempotency-key"]] += 1
        return {1: (500, {}), 2: (500, {}), 3: (429, {"Retry-After": "0"})}.get(
            tries[headers["idempotency-key"]], (200, {})
        )

    flaky = Receiver(SECRET_A, flaky_answer)
    slow = Receiver(SECRET_B, lambda n, h: (time.sleep(1.5), (200, {}))[1])
    bad = Receiver(SECRET_C, lambda n, h: (400, {}))
    gone = Receiver(SECRET_D)
    gone.stop()  # its port refuses connections from now on
    hooks = [
        Webhook("flaky", flaky.url, SECRET_A),
        Webhook("slow", slow.url, SECRET_B),
        Webhook("bad", bad.url, SECRET_C),
        Webhook("gone", gone.url, SECRET_D),
    ]
    config = _config(tmp_path, hooks)
    stop = threading.Event()
    ready = threading.Event()
    thread = threading.Thread(
        target=run_deliverer, args=(config, stop), kwargs={"poll_seconds": 0.02, "on_ready": ready.set}
    )
    thread.start()
    try:
        assert ready.wait(10)
        keys = insert_firings(config.state_db, 4)
        wait_for(lambda: set(flaky.keys()) >= set(keys), what="the flaky webhook got every firing")
        assert len(slow.requests) <= 2, "the slow webhook held up the flaky one"
        wait_for(lambda: set(slow.keys()) == set(keys), what="the slow webhook got every firing")
        conn = connect(config.state_db)
        wait_for(lambda: len(dead_letters(conn, "gone")) == 4 and len(dead_letters(conn, "bad")) == 4, what="dead")
    finally:
        stop.set()
        thread.join(timeout=20)
        for receiver in (flaky, slow, bad):
            receiver.stop()

    # every request signed, with the firing key as idempotency key, and the body of that firing
    for receiver in (flaky, slow, bad):
        assert all(r["signed"] for r in receiver.requests)
        for r in receiver.requests:
            assert r["headers"]["idempotency-key"] == r["body"]["firing_key"]
            assert r["headers"]["content-type"] == "application/json"
    assert [r["body"]["seq"] for r in slow.requests] == [1, 2, 3, 4]  # in feed order
    for key in keys:
        assert [r["headers"]["x-pulse-attempt"] for r in flaky.requests if r["body"]["firing_key"] == key] == [
            "1",
            "2",
            "3",
            "4",
        ]
    assert slow.requests[0]["body"]["evidence"]["cart_adds"] == 1

    # the log: each of flaky's firings took 4 attempts (500, 500, 429, 200)
    log = delivery_log(conn, "flaky")
    for key in keys:
        assert [(r["attempt"], r["status"], r["http_status"]) for r in log if r["firing_key"] == key] == [
            (0, "queued", None),
            (1, "sending", None),
            (1, RETRY, 500),
            (2, "sending", None),
            (2, RETRY, 500),
            (3, "sending", None),
            (3, RETRY, 429),
            (4, "sending", None),
            (4, DELIVERED, 200),
        ]
    retry_rows = [r for r in log if r["status"] == RETRY]
    assert all(r["next_attempt_at"] > r["at"] or r["http_status"] == 429 for r in retry_rows)
    assert set(_latest(conn, "flaky").values()) == {DELIVERED} and set(_latest(conn, "slow").values()) == {DELIVERED}
    # 400: one attempt, not retried; nobody listening: max_attempts (4) attempts
    assert len(bad.requests) == 4 and {d["attempt"] for d in dead_letters(conn, "bad")} == {1}
    assert all("HTTP 400" in d["error"] and "not retried" in d["error"] for d in dead_letters(conn, "bad"))
    assert {d["attempt"] for d in dead_letters(conn, "gone")} == {4}
    assert all(
        "connection failed" in d["error"] and "after 4 attempts" in d["error"] for d in dead_letters(conn, "gone")
    )
    assert conn.execute("select count(*) from webhook_outbox").fetchone()[0] == 0
    # no secret in the log
    text = json.dumps(delivery_log(conn))
    assert not any(s in text for s in (SECRET_A, SECRET_B, SECRET_C, SECRET_D))
    conn.close()


def test_a_timeout_is_retried_and_a_dead_letter_can_be_redelivered(tmp_path: Path) -> None:
    answers = {"sleep": 1.0}
    receiver = Receiver(SECRET_A, lambda n, h: (time.sleep(answers["sleep"]), (200, {}))[1])
    config = _config(tmp_path, [Webhook("cms", receiver.url, SECRET_A)], timeout_seconds=0.3, max_attempts=2)
    worker = WebhookWorker(config, config.webhooks[0], rng=random.Random(0), poll_seconds=0.01)
    try:
        worker.take_new()  # first sight: the cursor at the (empty) feed's end
        keys = insert_firings(config.state_db, 1)
        assert worker.take_new() == 1 and worker.take_new() == 0
        entry, _ = worker.next_due()
        outcome = worker.attempt(entry)
        assert outcome.status == RETRY and "timed out after 0.3 s" in outcome.error
        wait_for(lambda: worker.next_due()[0] is not None, timeout=5, what="due again")
        assert worker.attempt(worker.next_due()[0]).status == DEAD
        assert [d["firing_key"] for d in dead_letters(worker.conn)] == keys
        assert worker.pending() == 0
        answers["sleep"] = 0.0
        assert redeliver(worker.conn, "cms", keys) == 1
        assert worker.attempt(worker.next_due()[0]) == Outcome(DELIVERED, 200)
        assert dead_letters(worker.conn) == [] and worker.pending() == 0
        statuses = [r["status"] for r in delivery_log(worker.conn)]
        assert statuses == ["queued", "sending", "retry", "sending", "dead", "queued", "sending", "delivered"]
    finally:
        worker.close()
        receiver.stop()


def test_a_new_webhook_starts_at_the_feeds_end_and_firings_are_taken_once(tmp_path: Path) -> None:
    receiver = Receiver(SECRET_A)
    config = _config(tmp_path, [Webhook("cms", receiver.url, SECRET_A)])
    insert_firings(config.state_db, 3)  # before the webhook existed: not its business
    worker = WebhookWorker(config, config.webhooks[0])
    try:
        assert worker.take_new() == 0
        later = insert_firings(config.state_db, 2, start=3)
        assert worker.take_new() == 2 and worker.take_new() == 0
        while (entry := worker.next_due()[0]) is not None:
            worker.attempt(entry)
        assert receiver.keys() == later
    finally:
        worker.close()
        receiver.stop()


def test_a_queued_firing_is_delivered_even_once_pruned_from_the_feed(tmp_path: Path) -> None:
    receiver = Receiver(SECRET_A)
    config = _config(tmp_path, [Webhook("cms", receiver.url, SECRET_A)])
    worker = WebhookWorker(config, config.webhooks[0])
    try:
        worker.take_new()
        keys = insert_firings(config.state_db, 2)
        assert worker.take_new() == 2
        with sqlite3.connect(config.state_db) as conn:
            conn.execute("delete from live_trigger_firings")
        while (entry := worker.next_due()[0]) is not None:
            assert worker.attempt(entry).status == DELIVERED
        assert receiver.keys() == keys and all(r["signed"] for r in receiver.requests)
        assert receiver.requests[1]["body"]["user_key"] == "user-1"
    finally:
        worker.close()
        receiver.stop()


def test_a_retry_waits_with_the_clock(tmp_path: Path) -> None:
    """The due time comes from the injected clock: nothing is sent again before next_attempt_at."""
    receiver = Receiver(SECRET_A, lambda n, h: (503, {"Retry-After": "120"}) if n == 1 else (200, {}))
    config = _config(tmp_path, [Webhook("cms", receiver.url, SECRET_A)])
    now = [NOW]
    worker = WebhookWorker(config, config.webhooks[0], clock=lambda: now[0])
    try:
        worker.take_new()
        insert_firings(config.state_db, 1)
        worker.take_new()
        assert worker.attempt(worker.next_due()[0]).status == RETRY
        entry, wait = worker.next_due()
        assert entry is None and wait == pytest.approx(120)
        now[0] = NOW + timedelta(seconds=119)
        assert worker.next_due()[0] is None
        now[0] = NOW + timedelta(seconds=120)
        assert worker.attempt(worker.next_due()[0]).status == DELIVERED
    finally:
        worker.close()
        receiver.stop()


def test_one_deliverer_per_database(tmp_path: Path) -> None:
    state_db = tmp_path / "live" / "state.sqlite"

    def second() -> None:
        with deliverer_lock(state_db):
            pass

    with deliverer_lock(state_db), pytest.raises(DeliveryLocked, match="another deliverer runs"):
        second()
    with deliverer_lock(state_db):  # freed
        pass


# ----------------------------------------------------------------------------------------------- the command


def test_pulse_deliver_lists_and_requeues_dead_letters(pulse_home, capsys) -> None:
    from pulse.cli.commands import main

    receiver = Receiver(SECRET_A, lambda n, h: (400, {}) if n == 1 else (200, {}))
    (pulse_home.home / "settings.toml").write_text(
        f'webhooks = "cms={receiver.url}"\nwebhook_secrets = "cms={SECRET_A}"\n'
    )
    try:
        config = DeliveryConfig.from_settings(delivery_settings())
        create_feed(config.state_db)
        worker = WebhookWorker(config, config.webhooks[0])
        worker.take_new()
        keys = insert_firings(config.state_db, 1)
        worker.take_new()
        assert worker.attempt(worker.next_due()[0]).status == DEAD
        assert main(["deliver", "--dead-letters"]) == 0
        listed = capsys.readouterr().out
        assert keys[0] in listed and "HTTP 400" in listed and "cms" in listed
        assert main(["deliver", "--redeliver", "email"]) == 2
        assert main(["deliver", "--redeliver", "cms"]) == 0
        assert "queued 1 dead letter(s) of cms again" in capsys.readouterr().out
        assert worker.attempt(worker.next_due()[0]).status == DELIVERED
        worker.close()
    finally:
        receiver.stop()


def test_pulse_deliver_names_a_bad_setting_and_needs_a_webhook(pulse_home, capsys) -> None:
    from pulse.cli.commands import main

    assert main(["deliver"]) == 2
    assert "no webhook configured" in capsys.readouterr().err
    (pulse_home.home / "settings.toml").write_text('webhooks = "cms=mailto:x@example.com"\n')
    assert main(["deliver"]) == 2
    err = capsys.readouterr().err
    assert "settings.toml: webhooks" in err and "cms: expected an http:// or https:// URL" in err
