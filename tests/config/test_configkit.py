"""configkit: the one config-key type, value quoting and did-you-mean that the stack config and the model spec share."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

import pytest

from configkit import MAX_SHOWN, ConfigKey, Range, closest, did_you_mean, markdown_table, shown
from infra.config.keys import CONFIG_KEYS
from serve_app.spec import KEYS, ModelSpec


@pytest.mark.parametrize(
    "bounds, inside, outside, words",
    [
        (Range(0, 1000), [0, 1000, 7], [-1, 1001], "0 to 1000"),
        (Range(1), [1, 2**40], [0, -3], ">= 1"),
        (Range(0, exclusive_minimum=True), [0.001, 5], [0, -1, float("nan"), float("inf")], "> 0"),
        (Range(0, 1, exclusive_minimum=True), [1, 0.5], [0, 1.01], "> 0 and <= 1"),
        (Range(maximum=9), [-5, 9], [10], "<= 9"),
        (Range(0.5, 2.5), [0.5, 2.5], [0.49], "0.5 to 2.5"),
    ],
)
def test_a_range_knows_its_values_and_says_them_in_words(bounds, inside, outside, words):
    assert all(value in bounds for value in inside), inside
    assert not any(value in bounds for value in outside), outside
    assert bounds.words() == words


def test_a_key_states_its_default_and_what_it_allows_for_the_reference():
    nodes = ConfigKey("nodes", "integer", "Nodes.", 2, range=Range(0, 1000, why="GKE's limit"))
    assert (nodes.default_words, nodes.allowed_words) == ("2", "0 to 1000 (GKE's limit)")
    channel = ConfigKey("channel", "string", "Channel.", "", choices=("", "A"))
    assert (channel.default_words, channel.allowed_words) == ('""', '"", A')
    assert ConfigKey("zones", "array", "Zones.", required=True).default_words == "required"
    assert ConfigKey("token", "string", "Token.", secret=True).default_words == "unset"
    assert ConfigKey("len", "integer", "Length.", default_text="vLLM's").default_words == "vLLM's"


@pytest.mark.parametrize(
    "declaration, message",
    [
        (dict(type="integer", default=5, range=Range(0, 4)), "default 5 outside 0 to 4"),
        (dict(type="string", default="b", choices=("a",)), "default 'b' not among the choices"),
        (dict(type="string", range=Range(0)), "a range needs a number type, not string"),
        (dict(type="integer", choices=("a",)), "choices need the string type, not integer"),
        (dict(type="string", default="x", required=True), "a required key has no default"),
    ],
)
def test_a_declaration_that_contradicts_itself_fails_at_once(declaration, message):
    with pytest.raises(ValueError, match=f"config key k: {message}"):
        ConfigKey("k", description="A key.", **declaration)


def test_values_are_quoted_as_python_writes_them_and_read_only_containers_as_what_they_hold():
    assert shown("two") == "'two'"
    assert shown(True) == "True" and shown(None) == "None" and shown(-1) == "-1"
    assert shown(MappingProxyType({"a": (1, MappingProxyType({"b": None}))})) == "{'a': [1, {'b': None}]}"
    long = shown("x" * 500)
    assert len(long) == MAX_SHOWN and long.endswith("...") and long.startswith("'xxx")


@pytest.mark.parametrize(
    "word, candidates, cutoff, expected",
    [
        ("gpumachinetype", ["gpuMachineType", "gpuZones"], 0.6, "gpuMachineType"),  # case only
        ("llmserv", ["llmserve", "gcp", "kubernetes"], 0.6, "llmserve"),
        ("tensorParalelSize", ["tensorParallelSize", "maxReplicas"], 0.75, "tensorParallelSize"),
        ("Hopper", ["H100", "L4"], 0.6, None),
        ("max_num_seq", ["max_num_seqs"], 0.8, "max_num_seqs"),
        ("abcd", ["abxy"], 0.5, "abxy"),
        ("abcd", ["abxy"], 0.6, None),  # 0.5 similar: under the cutoff
    ],
)
def test_closest_finds_the_name_probably_meant(word, candidates, cutoff, expected):
    assert closest(word, candidates, cutoff=cutoff) == expected


def test_did_you_mean_is_a_quoted_note_or_nothing():
    assert did_you_mean("H100") == " (did you mean 'H100'?)"
    assert did_you_mean(None) == "" and did_you_mean("") == ""


@pytest.mark.parametrize("key", [*CONFIG_KEYS, *KEYS], ids=lambda key: key.name)
def test_both_key_tables_use_the_one_key_type_and_describe_every_key(key):
    assert type(key) is ConfigKey
    assert key.description.strip() and key.description.endswith((".", ")")), key.name


def test_the_model_keys_state_the_defaults_model_spec_has():
    defaults = {field.name: field.default for field in dataclasses.fields(ModelSpec)}
    stated = {
        key.field: key.default for key in KEYS if key.default is not None and key.field not in ("preset", "profile")
    }
    assert stated == {"tensor_parallel_size": 1, "pipeline_parallel_size": 1, "min_replicas": 1, "max_replicas": 1}
    assert all(defaults[field] == value for field, value in stated.items()), stated


def test_a_key_table_has_one_row_per_key_and_escapes_pipes():
    keys = [
        ConfigKey("zones", "array", "Zones a|b.", required=True),
        ConfigKey("token", "string", "Token.", secret=True),
    ]
    assert markdown_table(keys, secret_column=True) == (
        "| key | type | default | allowed | secret | description |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        "| `zones` | list of strings | required |  | no | Zones a\\|b. |\n"
        "| `token` | string | unset |  | yes | Token. |\n"
    )
    assert markdown_table(keys[1:]).splitlines()[2] == "| `token` | string | unset |  | Token. |"
