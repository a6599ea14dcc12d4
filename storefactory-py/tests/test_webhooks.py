"""Webhooks in a real SQLite file: the HTTP API's rules, the secret shown once, the log."""

import pytest

import storefactory as sf

HOOK = "https://hooks.example.com/storefactory"
KEY = "a token key of at least thirty-two bytes"


@pytest.fixture
def users(db):
    db.create_user("alice", "correct horse")
    db.create_user("root", "correct horse", role="admin")
    return db


def test_a_webhook_is_added_listed_and_removed_and_its_secret_shown_once(users):
    db = users
    hook = db.add_webhook("alice", HOOK, events="status")
    assert hook.id.startswith("wh_")
    assert hook.secret.startswith("whsec_") and len(hook.secret) > 40
    assert (hook.url, hook.events, hook.owner, hook.all_stores) == (HOOK, "status", "alice", False)
    assert hook.created_at > 0
    assert hook.secret not in repr(hook) and "<hidden>" in repr(hook)

    everyone = db.add_webhook("root", "https://ops.example.com/in", all_stores=True)
    assert everyone.all_stores and everyone.events == "all"
    listed = db.webhooks()
    assert [w.id for w in listed] == [hook.id, everyone.id]
    assert all(w.secret is None for w in listed), "a list never carries a secret"
    assert [w.id for w in db.webhooks(owner="alice")] == [hook.id]
    assert db.webhooks(owner="nobody") == []

    assert db.webhook_deliveries(hook.id) == []
    db.remove_webhook(hook.id)
    assert [w.id for w in db.webhooks()] == [everyone.id]
    with pytest.raises(sf.NotFound):
        db.remove_webhook(hook.id)
    with pytest.raises(sf.NotFound):
        db.webhook_deliveries(hook.id)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/in", "url: must use https"),
        ("https://169.254.169.254/latest/meta-data", "must not point at a private"),
        ("https://10.0.0.8/hook", "must not point at a private"),
        ("https://kubernetes.default.svc/", "must not name a local or cluster-internal host"),
        ("https://user:pw@hooks.example.com/", "must not contain credentials"),
        ("hooks.example.com/in", "must be an absolute http(s) URL"),
        ("", "must not be empty"),
    ],
)
def test_urls_are_checked_as_the_api_checks_them(users, url, message):
    with pytest.raises(sf.ValidationError) as caught:
        users.add_webhook("alice", url)
    assert caught.value.field == "url"
    assert message in str(caught.value)
    assert users.webhooks() == []


def test_private_targets_only_when_allowed(users):
    hook = users.add_webhook("alice", "http://127.0.0.1:9000/hook", allow_private=True)
    assert hook.url == "http://127.0.0.1:9000/hook"


def test_other_rules_raise_the_exception_of_their_kind(users):
    db = users
    with pytest.raises(sf.ValidationError) as caught:
        db.add_webhook("alice", HOOK, all_stores=True)
    assert caught.value.field == "all_stores"
    with pytest.raises(sf.ValidationError) as caught:
        db.add_webhook("alice", HOOK, events="sometimes")
    assert caught.value.field == "events"
    with pytest.raises(sf.NotFound):
        db.add_webhook("nobody", HOOK)
    db.add_webhook("alice", HOOK, max_per_owner=1)
    with pytest.raises(sf.Conflict) as caught:
        db.add_webhook("alice", HOOK + "/2", max_per_owner=1)
    assert "alice already has 1 webhooks" in str(caught.value)
    hook = db.webhooks()[0]
    for limit in (0, 201):
        with pytest.raises(sf.ValidationError) as caught:
            db.webhook_deliveries(hook.id, limit=limit)
        assert caught.value.field == "limit"
    assert db.webhook_deliveries(hook.id, limit=200) == []


def test_secrets_are_sealed_under_one_key_only(users):
    """A secret sealed under another key than the server's would never open there: the
    first key used (or a server's, when one starts) is the only one accepted after."""
    db = users
    db.add_webhook("alice", HOOK, token_key=KEY)
    with pytest.raises(sf.ValidationError) as caught:
        db.add_webhook("alice", HOOK + "/2")
    assert caught.value.field == "token_key"
    assert "not the key the server seals secrets with" in str(caught.value)
    with pytest.raises(sf.ValidationError):
        db.add_webhook("alice", HOOK + "/2", token_key=KEY + " but another")
    db.add_webhook("alice", HOOK + "/2", token_key=KEY)
    assert len(db.webhooks()) == 2


def test_the_delivery_log_reads_what_the_dispatcher_recorded(users, tmp_path):
    """Rows written as the server's dispatcher writes them (no server here), read back."""
    import sqlite3

    db = users
    hook = db.add_webhook("alice", HOOK)
    with sqlite3.connect(tmp_path / "storefactory.db") as conn:
        rows = [
            (1, "ab12", 1, "status", "delivered", 1, 200, None, 1_700_000_000_000),
            (2, "ab12", 2, "step", "pending", 2, 503, "answered 503", 1_700_000_060_000),
        ]
        for pos, store, seq, kind, state, attempts, status, error, at in rows:
            conn.execute(
                "INSERT INTO webhook_deliveries (webhook_id, feed_pos, store_id, event_seq, "
                "event_kind, payload, state, attempts, next_attempt_at, last_status, "
                "last_error, created_at, updated_at) VALUES (?, ?, ?, ?, ?, '{}', ?, ?, ?, ?, "
                "?, ?, ?)",
                (hook.id, pos, store, seq, kind, state, attempts, at + 2000, status, error, at,
                 at),
            )
    newest, oldest = db.webhook_deliveries(hook.id)
    assert (newest.event, newest.state, newest.attempts, newest.last_status) == (
        "step", "pending", 2, 503)
    assert newest.last_error == "answered 503"
    assert newest.next_attempt_at == 1_700_000_062.0
    assert newest.created_at == 1_700_000_060.0
    assert (oldest.event, oldest.state, oldest.last_status, oldest.last_error) == (
        "status", "delivered", 200, None)
    assert oldest.next_attempt_at is None, "only a pending delivery has a next attempt"
    assert oldest.store_id == "ab12" and oldest.event_seq == 1
    assert [d.id for d in db.webhook_deliveries(hook.id, limit=1)] == [newest.id]
    db.remove_webhook(hook.id)
    with pytest.raises(sf.NotFound):
        db.webhook_deliveries(hook.id)


def test_the_methods_and_classes_are_documented():
    for method in ("add_webhook", "webhooks", "remove_webhook", "webhook_deliveries"):
        assert getattr(sf.Database, method).__doc__, method
    assert "secret" in sf.Database.add_webhook.__doc__
    assert sf.Webhook.__doc__ and sf.WebhookDelivery.__doc__
