"""Users and quotas in a real SQLite file."""

import pytest

import storefactory as sf


def test_users_are_created_listed_and_given_quotas(db, tmp_path):
    alice = db.create_user("alice", "correct horse", max_stores=2, max_storage_gib=9)
    assert (alice.username, alice.role, alice.max_stores, alice.max_storage_gib) == (
        "alice", "user", 2, 9)
    db.create_user("root", "correct horse", role="admin")
    assert [u.username for u in db.list_users()] == ["alice", "root"]
    assert db.get_user("root").role == "admin"
    assert db.get_user("nobody") is None
    assert db.set_quota("alice", max_stores=4).max_stores == 4
    assert db.get_user("alice").max_storage_gib == 9
    assert db.set_role("alice", "admin").role == "admin"
    assert db.usage("alice") == {"stores": 0, "storage_gib": 0}
    # The same file, opened again, holds the same users.
    assert [u.username for u in sf.Database(tmp_path / "storefactory.db").list_users()] == [
        "alice", "root"]
    assert "password" not in repr(alice) and "hash" not in repr(alice)


def test_bad_users_are_refused_with_the_field(db):
    with pytest.raises(sf.ValidationError) as caught:
        db.create_user("Not Valid!", "correct horse")
    assert caught.value.field == "username"
    with pytest.raises(sf.ValidationError) as caught:
        db.create_user("carol", "short")
    assert caught.value.field == "password"
    with pytest.raises(sf.ValidationError) as caught:
        db.create_user("carol", "correct horse", role="owner")
    assert caught.value.field == "role"
    db.create_user("carol", "correct horse")
    with pytest.raises(sf.AlreadyExists):
        db.create_user("carol", "another password")
    assert issubclass(sf.AlreadyExists, sf.Conflict)
    with pytest.raises(sf.NotFound):
        db.set_quota("dave", max_stores=1)
    with pytest.raises(sf.NotFound):
        db.set_role("dave", "admin")


def test_a_database_that_cannot_be_opened_says_why(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(sf.StorefactoryError):
        sf.Database(tmp_path / "file" / "below-a-file.db")
