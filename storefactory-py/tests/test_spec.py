"""Specs and products: the HTTP API's rules, defaults and messages, from Python."""

import json

import pytest

import storefactory as sf

HOSTILE = [
    {"name": "Quote\" ' `uname` $(id)", "price": "1.00", "description": "line one\nline two"},
    {"name": "--option=value", "price": "0", "description": "; rm -rf / # {{namespace}}"},
    {"name": "Ünïcødé ✓ 商品", "price": "12.5", "description": "key: value\n- item\n---"},
]


def test_a_spec_has_the_api_defaults():
    spec = sf.StoreSpec("alice")
    assert spec.owner == "alice"
    assert spec.namespace == f"store-{spec.id}"
    assert spec.host == f"store-{spec.id}.storefactory.local"
    assert spec.url == f"http://store-{spec.id}.storefactory.local/"
    assert [p["name"] for p in spec.products] == ["T-Shirt", "Jeans"]
    # 2 GiB for WordPress (the API's default) plus the MySQL volume.
    assert spec.to_dict()["wordpress"]["storage"] == "2Gi"
    assert spec.storage_gib > 2


def test_products_come_as_lines_json_text_or_dicts_and_agree():
    lines = sf.StoreSpec("alice", sample_products="Mug|4.5|Big mug\n# a comment\n\nCap|3|")
    text = sf.StoreSpec("alice", sample_products=json.dumps(
        [{"name": "Mug", "price": 4.5, "description": "Big mug"}, {"name": "Cap", "price": "3"}]))
    dicts = sf.StoreSpec("alice", sample_products=[
        {"name": "Mug", "price": "4.5", "description": "Big mug"}, {"name": "Cap", "price": 3}])
    expected = [
        {"name": "Mug", "price": "4.5", "description": "Big mug"},
        {"name": "Cap", "price": "3", "description": ""},
    ]
    assert lines.products == text.products == dicts.products == expected
    assert sf.parse_products("Mug|4.5|Big mug\nCap|3|") == expected
    assert sf.validate_products([{"name": "Cap", "price": 3}]) == [expected[1]]


@pytest.mark.parametrize(
    "kwargs, field, message",
    [
        ({"storage_size_gi": 0}, "storage_size_gi",
         "storage_size_gi: must be a whole number of GiB between 1 and 1024"),
        ({"storage_size_gi": 1025}, "storage_size_gi",
         "storage_size_gi: must be a whole number of GiB between 1 and 1024"),
        ({"storage_size_gi": True}, "storage_size_gi",
         "storage_size_gi: must be a whole number of GiB between 1 and 1024"),
        ({"storage_size_gi": "2"}, "storage_size_gi",
         "storage_size_gi: must be a whole number of GiB between 1 and 1024"),
        ({"sample_products": "Mug|free|"}, "sample_products line 1", None),
        ({"sample_products": "Mug"}, "sample_products line 1",
         'sample_products line 1: expected Name|Price|Description, got "Mug"'),
        ({"sample_products": [{"name": "Mug", "price": "1", "colour": "red"}]},
         "sample_products", None),
        ({"sample_products": 42}, "sample_products",
         "sample_products: expected Name|Price|Description lines or a list of products"),
        # Tabs and CR LF are accepted (spreadsheets); other controls are not.
        ({"sample_products": "Esc\x1bname|1|"}, "sample_products line 1", None),
        ({"host": "Not A Host!"}, "ingress.host", None),
        ({"id": "UPPER"}, None, None),
        ({"currency": "dollars"}, None, None),
    ],
)
def test_invalid_input_is_a_validation_error_naming_the_field(kwargs, field, message):
    with pytest.raises(sf.ValidationError) as caught:
        sf.StoreSpec("alice", **kwargs)
    error = caught.value
    assert isinstance(error, sf.StorefactoryError)
    if field is not None:
        assert error.field == field
        assert str(error).startswith(f"{field}: ")
    if message is not None:
        assert str(error) == message


def test_too_many_products_are_refused():
    lines = "\n".join(f"P{i}|1|" for i in range(501))
    with pytest.raises(sf.ValidationError, match="at most 500 products"):
        sf.StoreSpec("alice", sample_products=lines)


def test_a_spec_round_trips_through_a_dict():
    spec = sf.StoreSpec("bob", sample_products=HOSTILE, storage_size_gi=5, title="Bob's",
                        currency="eur", params={"mysql_user": "shop"})
    again = sf.StoreSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.to_dict()["currency"] == "EUR"
    assert again.title == "Bob's"


def test_from_dict_refuses_unknown_keys_and_invalid_values():
    data = sf.StoreSpec("bob").to_dict()
    with pytest.raises(sf.ValidationError, match="colour"):
        sf.StoreSpec.from_dict({**data, "colour": "red"})
    with pytest.raises(sf.ValidationError) as caught:
        sf.StoreSpec.from_dict({**data, "ingress": {**data["ingress"], "host": "-bad-"}})
    assert caught.value.field == "ingress.host"
    with pytest.raises(TypeError):
        sf.StoreSpec.from_dict({"id": object()})


def test_a_spec_is_immutable_and_says_what_it_is():
    spec = sf.StoreSpec("alice", id="abc123")
    with pytest.raises(AttributeError):
        spec.owner = "mallory"
    assert repr(spec).startswith('StoreSpec(id="abc123", owner="alice"')
