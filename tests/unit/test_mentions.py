"""The pure part of mentions: what a text names, and whom that is among the members."""

from __future__ import annotations

import pytest

from parley.server.messages.mentions import (
    MAX_KEYS,
    MAX_NAMES,
    Named,
    parse_mentions,
    resolve_mentions,
)

MEMBERS = {"bob": 2, "bob.": 3, "carol": 4, "all": 5, "me_": 1}


def named(text: str, chat_type: str = "group", role: str | None = "member") -> Named:
    return parse_mentions(text, chat_type=chat_type, role=role)


def ids(text: str, chat_type: str = "group", role: str | None = "member") -> list[int]:
    return resolve_mentions(named(text, chat_type, role), MEMBERS, sender_id=1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hi @bob", [2]),
        ("hi @BOB and @Carol", [2, 4]),
        ("(@bob)", [2]),
        ("**@bob**", [2]),
        ("_@carol_", [4]),
        ("@bob. how are you", [3]),  # a member is called "bob."
        ("@carol. hi", [4]),  # trailing punctuation otherwise
        ("@carol-_ hi", [4]),
        ("@bobby", []),  # never a prefix of a longer name
        ("mail bob@carol.example", []),
        ("`@bob` and ```\n@carol\n```", []),
        ("``` unclosed @bob", []),
        ("@me_ talks to myself", []),  # never the sender
        ("@ab and @" + "x" * 33, []),  # too short, too long for a username
        ("no mention", []),
    ],
)
def test_names_in_a_group(text: str, expected: list[int]) -> None:
    assert ids(text) == expected


def test_everyone_needs_a_manager_in_a_group_or_channel() -> None:
    everyone = [2, 3, 4, 5]
    assert ids("@all", role="owner") == everyone
    assert ids("@All: hi", chat_type="channel", role="admin") == everyone
    assert ids("@all", role="member") == []
    assert ids("@all @carol", role="member") == [4]
    assert ids("@all", role=None) == []


def test_in_a_direct_chat_all_is_a_name() -> None:
    assert ids("@all", chat_type="direct", role="member") == [5]
    assert not named("@all", chat_type="direct").everyone


def test_names_are_bounded() -> None:
    text = " ".join(f"@user{n:03}" for n in range(MAX_NAMES + 10))
    assert len(named(text).tokens) == MAX_NAMES


def test_spellings_looked_up_are_bounded_per_message() -> None:
    """Fifty names ending in thirty dots would be 1,500 usernames to look up: the first
    names whose spellings fit MAX_KEYS count, the rest do not."""
    text = " ".join(f"@u{n:02}" + "." * 30 for n in range(MAX_NAMES))
    found = named(text)
    assert len(found.keys) <= MAX_KEYS
    assert [candidates[-1] for candidates in found.tokens] == ["u00", "u01", "u02"]
    assert named("@bob. " + text).tokens[0] == ("bob.", "bob")  # the first names win


def test_ordinary_names_never_reach_the_spelling_bound() -> None:
    text = " ".join(f"@user{n:03}." for n in range(MAX_NAMES))
    assert len(named(text).tokens) == MAX_NAMES


def test_nothing_to_look_up_without_an_at() -> None:
    assert not named("plain text")
    assert named("plain text").keys == set()


def test_long_runs_cost_little() -> None:
    (dots,) = named("@" + "." * 4000).tokens  # names of dots are valid: 32 down to 3 long
    assert dots == tuple("." * n for n in range(32, 2, -1))
    assert named("@" + "a" * 4000).tokens == ()
    assert named("@" * 4000).tokens == ()
