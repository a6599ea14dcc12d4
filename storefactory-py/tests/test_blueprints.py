"""Rendering stores into manifests from Python, and registering blueprint folders."""

import base64
import json

import pytest

import storefactory as sf
from conftest import write_storefront

from test_spec import HOSTILE


def test_the_builtin_blueprint_renders_a_whole_store_in_its_namespace():
    spec = sf.StoreSpec("alice", id="py1")
    objects = sf.Blueprints().render(spec)
    kinds = [o["kind"] for o in objects]
    assert kinds[0] == "Namespace" and objects[0]["metadata"]["name"] == "store-py1"
    for kind in ["ResourceQuota", "LimitRange", "NetworkPolicy", "StatefulSet", "Deployment",
                 "PersistentVolumeClaim", "Job", "Ingress", "Secret"]:
        assert kind in kinds
    for o in objects[1:]:
        assert o["metadata"]["namespace"] == "store-py1"
        assert o["metadata"]["labels"]["storefactory.io/store"] == "py1"
        assert o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "storefactory"
    ingress = next(o for o in objects if o["kind"] == "Ingress")
    assert ingress["spec"]["rules"][0]["host"] == "store-py1.storefactory.local"


def test_secrets_hold_placeholders_never_passwords():
    objects = sf.Blueprints().render(sf.StoreSpec("alice"))
    secrets = [o for o in objects if o["kind"] == "Secret"]
    assert secrets
    for secret in secrets:
        values = dict(secret.get("stringData", {}))
        values.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
        passwords = {k: v for k, v in values.items() if "password" in k}
        assert passwords, values
        assert all(v.startswith("REPLACE_ME_") for v in passwords.values()), values


def test_hostile_products_arrive_as_data_byte_for_byte():
    spec = sf.StoreSpec("alice", sample_products=HOSTILE)
    objects = sf.Blueprints().render(spec)
    seed = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "seed")
    assert json.loads(seed["data"]["products.json"]) == spec.products
    assert [p["name"] for p in spec.products] == [p["name"] for p in HOSTILE]
    # The same object set as a harmless store: nothing injected a document or a key.
    plain = sf.Blueprints().render(sf.StoreSpec("alice"))
    assert [o["kind"] for o in objects] == [o["kind"] for o in plain]
    text = sf.Blueprints().render_yaml(spec)
    assert text.count("\n---\n") + 1 == len(objects) and text.startswith("---\n")


def test_a_registered_folder_adds_a_blueprint(storefront_dir):
    blueprints = sf.Blueprints()
    assert blueprints.names() == ["woocommerce"]
    assert blueprints.register_dir(storefront_dir) == ["storefront"]
    assert blueprints.names() == ["storefront", "woocommerce"]
    objects = blueprints.render(sf.StoreSpec("alice", id="sf1"), "storefront")
    assert [o["kind"] for o in objects] == ["Namespace", "Secret", "Deployment"]
    assert sf.Blueprints(storefront_dir).names() == blueprints.names()


def test_a_broken_folder_changes_nothing(tmp_path):
    blueprints = sf.Blueprints(write_storefront(tmp_path / "good"))
    broken = tmp_path / "broken" / "oops"
    broken.mkdir(parents=True)
    (broken / "blueprint.yaml").write_text("description: broken\n")
    (broken / "00-x.yaml.hbs").write_text("kind: {{#if}}\n")
    with pytest.raises(sf.StorefactoryError, match="oops"):
        blueprints.register_dir(tmp_path / "broken")
    with pytest.raises(sf.StorefactoryError):
        blueprints.register_dir(tmp_path / "missing")
    assert blueprints.names() == ["storefront", "woocommerce"]


def test_an_unknown_blueprint_is_not_found():
    with pytest.raises(sf.NotFound, match="nope"):
        sf.Blueprints().render(sf.StoreSpec("alice"), "nope")
