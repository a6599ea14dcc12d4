"""Custom domains from Python against the local control plane: added to a ready store in
place (it stays ready), normalised, unique across stores, removed again; refusals raise
typed exceptions and change nothing."""

import asyncio

import pytest

import storefactory as sf


@pytest.fixture
def alice(db):
    return db.create_user("alice", "correct horse", max_stores=3, max_storage_gib=30)


def test_domains_are_added_listed_and_removed_and_never_shared(db, alice, kubeconfig):
    with sf.Provisioner(db, kubeconfig=kubeconfig, ready_timeout=120) as p:
        first = p.create(sf.StoreSpec("alice", sample_products="Mug|4.5|"))
        second = p.create(sf.StoreSpec("alice", sample_products="Mug|4.5|"))
        with pytest.raises(sf.Conflict, match="only ready or suspended stores"):
            p.add_domain(first.id, "shop.example.com")
        p.wait(first.id, timeout=300)
        p.wait(second.id, timeout=300)

        store = p.add_domain(first.id, "Shop.Example.COM.")
        assert store.domains == ["shop.example.com"]
        assert store.status == "ready"
        assert store.spec.domains == ["shop.example.com"]
        assert p.get(first.id).domains == ["shop.example.com"]
        assert p.add_domain(first.id, "shop.example.com").domains == ["shop.example.com"]

        for taken in ["shop.example.com", first.host]:
            with pytest.raises(sf.Conflict, match="already used by another store"):
                p.add_domain(second.id, taken)
        with pytest.raises(sf.ValidationError, match="wildcards") as refused:
            p.add_domain(second.id, "*.example.com")
        assert refused.value.field == "domain"
        with pytest.raises(sf.NotFound, match="has no custom domain"):
            p.remove_domain(second.id, "shop.example.com")
        assert p.get(second.id).domains == []

        assert p.remove_domain(first.id, "shop.example.com").domains == []

        async def take_and_give_back():
            added = await p.add_domain_async(second.id, "shop.example.com")
            removed = await p.remove_domain_async(second.id, "shop.example.com")
            return added.domains, removed.domains

        assert asyncio.run(take_and_give_back()) == (["shop.example.com"], [])
        assert p.get(first.id).status == "ready"

        for store in (first, second):
            p.delete(store.id)
            p.wait(store.id, until="deleted", timeout=120)
