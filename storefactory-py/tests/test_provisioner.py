"""The Provisioner from Python against the local control plane (`storefactory-testkit up`):
stores go to ready and away, failures, quotas, timeouts, asyncio and Ctrl-C."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import storefactory as sf


@pytest.fixture
def alice(db):
    return db.create_user("alice", "correct horse", max_stores=2, max_storage_gib=20)


def provisioner(db, kubeconfig, **kwargs):
    return sf.Provisioner(db, kubeconfig=kubeconfig, ready_timeout=120, **kwargs)


def test_a_store_is_created_followed_to_ready_and_deleted(db, alice, kubeconfig):
    with provisioner(db, kubeconfig) as p:
        assert p.running
        store = p.create(sf.StoreSpec("alice", sample_products="Mug|4.5|"), name="Alice's shop",
                         inputs={"admin_password": "chosen-password-1"})
        assert (store.status, store.name, store.owner) == ("initialized", "Alice's shop", "alice")

        events = list(p.events(store.id, timeout=300))
        statuses = [e.status for e in events if e.kind == "status"]
        assert statuses[0] == "initialized" and statuses[-1] == "ready", events
        assert "provisioning" in statuses
        assert any(e.kind == "step" for e in events)
        assert [e.seq for e in events] == sorted(e.seq for e in events)
        assert events[-1].is_terminal and events[-1].store_id == store.id

        ready = p.get(store.id)
        assert ready.status == "ready" and ready.reason is None
        assert p.wait(store.id, timeout=5).status == "ready"
        credentials = p.credentials(store.id)
        assert credentials.password == "chosen-password-1"
        assert credentials.admin_url.startswith(store.url)
        assert "chosen-password-1" not in repr(credentials)
        assert db.usage("alice")["stores"] == 1

        assert p.delete(store.id).status == "deleting"
        gone = p.wait(store.id, until="deleted", timeout=120)
        assert gone is None or gone.status == "deleted"
        assert p.list(owner="alice") == []
        assert [s.id for s in p.list(owner="alice", include_deleted=True)] == [store.id]
        assert db.usage("alice")["stores"] == 0
    assert not p.running


def test_a_store_over_quota_is_refused_and_nothing_is_recorded(db, alice, kubeconfig):
    p = provisioner(db, kubeconfig)
    p.create(sf.StoreSpec("alice"))
    p.create(sf.StoreSpec("alice"))
    with pytest.raises(sf.QuotaExceeded, match="store limit reached: 2 of 2 stores in use"):
        p.create(sf.StoreSpec("alice"))
    assert len(p.list(owner="alice")) == 2
    db.set_quota("alice", max_stores=5, max_storage_gib=4)
    with pytest.raises(sf.QuotaExceeded, match="storage limit reached"):
        p.create(sf.StoreSpec("alice", storage_size_gi=30))
    assert len(p.list(owner="alice")) == 2


def test_invalid_requests_are_refused_before_anything_is_recorded(db, alice, kubeconfig):
    p = provisioner(db, kubeconfig)
    with pytest.raises(sf.NotFound, match="unknown blueprint"):
        p.create(sf.StoreSpec("alice"), blueprint="nope")
    with pytest.raises(sf.ValidationError):
        p.create(sf.StoreSpec("alice"), inputs={"admin_password": "short"})
    with pytest.raises(sf.ValidationError):
        p.create(sf.StoreSpec("alice"), inputs={"no_such_input": "value"})
    with pytest.raises(sf.ValidationError):
        p.get("Not An Id")
    with pytest.raises(sf.NotFound, match="store abc404 not found"):
        p.get("abc404")
    with pytest.raises(sf.NotFound):
        p.delete("abc404")
    with pytest.raises(sf.NotFound):
        next(p.events("abc404"))
    with pytest.raises(sf.ValidationError):
        p.wait("abc404", until="gone")
    assert p.list(include_deleted=True) == []


def test_waits_end_with_a_timeout_when_nothing_reconciles(db, alice, kubeconfig):
    p = provisioner(db, kubeconfig)  # never started: nothing moves the store
    store = p.create(sf.StoreSpec("alice"))
    started = time.monotonic()
    with pytest.raises(sf.WaitTimeout, match=f"store {store.id} is still initialized"):
        p.wait(store.id, timeout=1)
    assert 0.9 < time.monotonic() - started < 5
    stream = p.events(store.id, timeout=1)
    assert next(stream).status == "initialized"
    with pytest.raises(sf.WaitTimeout):
        next(stream)
    with pytest.raises(sf.Conflict, match="only failed stores"):
        p.retry(store.id)


def test_a_failing_store_raises_store_failed_and_can_be_retried(
        db, alice, kubeconfig, storefront_dir):
    blueprints = sf.Blueprints(storefront_dir)
    with provisioner(db, kubeconfig, blueprints=blueprints) as p:
        spec = sf.StoreSpec("alice", params={"fault": "image-pull"})
        store = p.create(spec, blueprint="storefront")
        with pytest.raises(sf.StoreFailed, match=f"store {store.id} failed: .*image"):
            p.wait(store.id, timeout=120)
        failed = p.get(store.id)
        assert failed.status == "failed" and "image" in failed.reason
        assert p.retry(store.id).status == "provisioning"
        p.delete(store.id)
        p.wait(store.id, until="deleted", timeout=120)


def test_the_async_api_provisions_and_deletes(db, alice, kubeconfig, storefront_dir):
    blueprints = sf.Blueprints(storefront_dir)

    async def scenario():
        with provisioner(db, kubeconfig, blueprints=blueprints) as p:
            store = await p.create_async(sf.StoreSpec("alice", params={"fault": "none"}),
                                         blueprint="storefront",
                                         inputs={"editor_token": "token-of-the-editor"})
            seen = [event async for event in p.events(store.id, timeout=120)]
            assert seen[-1].status == "ready"
            ready = await p.wait_async(store.id, timeout=10)
            assert ready.status == "ready"
            stores = await p.list_async(owner="alice")
            assert [s.id for s in stores] == [store.id]
            credentials = await p.credentials_async(store.id)
            assert (credentials.username, credentials.password) == ("alice", "token-of-the-editor")
            # Several awaits at once share the one runtime.
            gets = await asyncio.gather(*(p.get_async(store.id) for _ in range(5)))
            assert {s.status for s in gets} == {"ready"}
            await p.delete_async(store.id)
            await p.wait_async(store.id, until="deleted", timeout=120)
            with pytest.raises(sf.NotFound):
                await p.get_async("abc404")
            # A cancelled wait ends at once and leaves the provisioner usable.
            stuck = await p.create_async(sf.StoreSpec("alice", params={"fault": "never-ready"}),
                                         blueprint="storefront")
            waiting = asyncio.ensure_future(p.wait_async(stuck.id, timeout=600))
            await asyncio.sleep(0.5)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert (await p.get_async(stuck.id)).status == "provisioning"
            await p.delete_async(stuck.id)
            await p.wait_async(stuck.id, until="deleted", timeout=120)

    asyncio.run(scenario())


def test_ctrl_c_interrupts_a_blocking_wait(db, alice, kubeconfig, tmp_path):
    store = provisioner(db, kubeconfig).create(sf.StoreSpec("alice"))
    script = textwrap.dedent(f"""
        import sys, storefactory as sf
        p = sf.Provisioner(sf.Database({str(db.path)!r}), kubeconfig={kubeconfig!r})
        print("waiting", flush=True)
        try:
            p.wait({store.id!r}, timeout=600)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(42)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "waiting"
    time.sleep(1)
    child.send_signal(signal.SIGINT)
    started = time.monotonic()
    out, _ = child.communicate(timeout=10)
    assert child.returncode == 42 and "interrupted" in out
    assert time.monotonic() - started < 3


def test_an_unreachable_cluster_is_cluster_unavailable(db, alice, tmp_path):
    config = tmp_path / "kubeconfig"
    config.write_text(textwrap.dedent("""
        apiVersion: v1
        kind: Config
        clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
        users: [{name: u, user: {token: t}}]
        contexts: [{name: x, context: {cluster: c, user: u}}]
        current-context: x
    """))
    p = sf.Provisioner(db, kubeconfig=str(config))
    store = p.create(sf.StoreSpec("alice"))  # records only: no cluster needed
    with pytest.raises(sf.ClusterUnavailable):
        p.credentials(store.id)
    with pytest.raises(sf.ClusterUnavailable, match="cannot read kubeconfig"):
        sf.Provisioner(db, kubeconfig=str(tmp_path / "missing"))


def test_a_store_is_suspended_and_resumed_with_the_same_credentials(
        db, alice, kubeconfig, storefront_dir):
    with provisioner(db, kubeconfig,
                     paused_backend="storefactory.platform.svc.cluster.local:80") as p:
        store = p.create(sf.StoreSpec("alice", sample_products="Mug|4.5|"))
        with pytest.raises(sf.Conflict, match="only ready stores"):
            p.suspend(store.id)
        p.wait(store.id, timeout=300)
        before = p.credentials(store.id)
        with pytest.raises(sf.Conflict, match="only suspended stores"):
            p.resume(store.id)

        assert p.suspend(store.id).status == "suspending"
        suspended = p.wait(store.id, until="suspended", timeout=120)
        assert suspended.status == "suspended"
        assert db.usage("alice")["stores"] == 1, "a suspended store keeps its quota"
        assert p.resume(store.id).status == "resuming"
        assert p.wait(store.id, timeout=300).status == "ready"
        after = p.credentials(store.id)
        assert (after.username, after.password) == (before.username, before.password)
        p.delete(store.id)
        p.wait(store.id, until="deleted", timeout=120)

    # A blueprint that declares nothing to suspend refuses, saying so.
    with provisioner(db, kubeconfig, blueprints=sf.Blueprints(storefront_dir)) as p:
        store = p.create(sf.StoreSpec("alice", params={"fault": "none"}), blueprint="storefront")
        p.wait(store.id, timeout=120)
        with pytest.raises(sf.Conflict, match="declares no workloads to suspend"):
            p.suspend(store.id)
        assert p.get(store.id).status == "ready"
        p.delete(store.id)
        p.wait(store.id, until="deleted", timeout=120)


def test_a_paused_backend_must_be_host_and_port(db, kubeconfig):
    with pytest.raises(sf.ValidationError) as refused:
        sf.Provisioner(db, kubeconfig=kubeconfig, paused_backend="no-port")
    assert refused.value.field == "paused_backend"


def test_a_ready_store_is_changed_and_bad_changes_change_nothing(db, alice, kubeconfig):
    with provisioner(db, kubeconfig) as p:
        store = p.create(sf.StoreSpec("alice", sample_products="Mug|4.5|"))
        with pytest.raises(sf.Conflict, match="only ready stores"):
            p.change(store.id, title="Too early")
        p.wait(store.id, timeout=300)
        before = p.get(store.id).spec.to_dict()

        with pytest.raises(sf.ValidationError) as refused:
            p.change(store.id, storage_size_gi=1)
        assert refused.value.field == "storage_size_gi"
        assert "below the current size" in str(refused.value)
        with pytest.raises(sf.ValidationError) as refused:
            p.change(store.id, currency="euro")
        assert refused.value.field == "currency"
        with pytest.raises(sf.ValidationError):
            p.change(store.id, wordpress_resources={"cpu_request": "1"})
        # 3 GiB in use, 20 allowed: 23 GiB more do not fit.
        with pytest.raises(sf.QuotaExceeded):
            p.change(store.id, storage_size_gi=25)
        unchanged = p.get(store.id)
        assert unchanged.status == "ready" and unchanged.spec.to_dict() == before

        changed = p.change(
            store.id,
            storage_size_gi=3,
            sample_products=[{"name": "Mug", "price": "5", "description": "Bigger"}],
            title="Python Shop",
            currency="eur",
            wordpress_resources={"cpu_request": "100m", "memory_request": "256Mi",
                                 "cpu_limit": "1", "memory_limit": "1Gi"},
        )
        assert changed.status == "updating"
        ready = p.wait(store.id, timeout=300)
        assert ready.status == "ready"
        assert ready.spec.title == "Python Shop"
        assert ready.spec.to_dict()["currency"] == "EUR"
        assert ready.spec.products[0]["description"] == "Bigger"
        assert ready.storage_gib == 4
        assert db.usage("alice")["storage_gib"] == 4
        statuses = [e.status for e in p.events(store.id, timeout=5) if e.kind == "status"]
        assert statuses[-2:] == ["updating", "ready"], statuses

        async def again():
            # The same change again changes nothing; a new title runs the seeding again.
            same = await p.change_async(store.id, title="Python Shop")
            assert same.status == "ready"
            return await p.change_async(store.id, title="Async Shop")

        assert asyncio.run(again()).status == "updating"
        assert p.wait(store.id, timeout=300).spec.title == "Async Shop"
        p.delete(store.id)
        p.wait(store.id, until="deleted", timeout=120)
