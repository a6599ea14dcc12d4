"""Backups, restores and clones from Python against the local control plane. The simulated
kubelet runs no container: a backup Job "succeeds" without handing anything over, so the
backup fails and says why; the transport itself is tested in storefactory-http."""

import asyncio
import time

import pytest

import storefactory as sf

ENDPOINT = "http://storefactory.storefactory.svc:8080@storefactory"


@pytest.fixture
def alice(db):
    return db.create_user("alice", "correct horse", max_stores=2, max_storage_gib=20)


def test_a_backup_is_taken_listed_settled_and_deleted(db, alice, kubeconfig):
    with sf.Provisioner(db, kubeconfig=kubeconfig, ready_timeout=120,
                        backup_endpoint=ENDPOINT) as p:
        store = p.create(sf.StoreSpec("alice"))
        assert p.wait(store.id, timeout=300).status == "ready"

        backup = p.backup(store.id)
        assert (backup.status, backup.kind, backup.store_id) == ("pending", "manual", store.id)
        assert [b.id for b in p.backups(store.id)] == [backup.id]

        # Its Job ends without an archive: failed, with the reason.
        deadline = time.monotonic() + 120
        while p.backups(store.id)[0].status == "pending":
            assert time.monotonic() < deadline, p.backups(store.id)
            time.sleep(0.2)
        failed = p.backups(store.id)[0]
        assert failed.status == "failed"
        assert "without handing over" in failed.error
        assert failed.finished_at >= failed.created_at

        # A backup that does not exist, and a clone without a completed backup: refused,
        # nothing created.
        with pytest.raises(sf.NotFound, match="backup nosuchbackup not found"):
            p.restore(store.id, "nosuchbackup")
        with pytest.raises(sf.Conflict, match="no completed backup"):
            p.clone_store(store.id, sf.StoreSpec("alice"))
        assert len(p.list(owner="alice")) == 1

        async def listed():
            return await p.backups_async(store.id)

        assert asyncio.run(listed())[0].id == backup.id
        p.delete_backup(store.id, backup.id)
        assert p.backups(store.id) == []
        with pytest.raises(sf.NotFound):
            p.delete_backup(store.id, backup.id)

        p.delete(store.id)
        p.wait(store.id, until="deleted", timeout=300)


def test_backups_need_an_endpoint(db, alice, kubeconfig):
    with sf.Provisioner(db, kubeconfig=kubeconfig, ready_timeout=120) as p:
        store = p.create(sf.StoreSpec("alice"))
        p.wait(store.id, timeout=300)
        with pytest.raises(sf.Conflict, match="no backup endpoint"):
            p.backup(store.id)
        assert p.backups(store.id) == []
        p.delete(store.id)
        p.wait(store.id, until="deleted", timeout=300)
    with pytest.raises(sf.ValidationError):
        sf.Provisioner(db, kubeconfig=kubeconfig, backup_endpoint="not-an-endpoint")
