"""The endpoint lists: the shipped files, overrides, and one-line errors naming file:line.field."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.errors import ConfigError
from probe.nettests import endpoints


@pytest.mark.parametrize(
    ("family", "roles"),
    [
        ("telegram", {"datacenter": 6, "web": 1}),
        ("whatsapp", {"endpoint": 16, "registration": 1, "web": 1}),
        ("signal", {"backend": 5, "uptime": 1}),
        ("facebook_messenger", {"stun": 1, "service": 6}),
    ],
)
def test_the_shipped_lists_load_with_the_roles_of_their_spec(family: str, roles: dict[str, int]) -> None:
    listed = endpoints.load(family)
    assert {role: len(listed.role(role)) for role in roles} == roles
    assert len(listed.endpoints) == sum(roles.values())
    assert listed.source.endswith(f"nettests/{family}.toml")


def test_an_entry_reads_into_typed_fields() -> None:
    telegram = endpoints.load("telegram")
    first = telegram.endpoints[0]
    assert (first.role, first.host, first.ports, first.is_address) == (
        "datacenter",
        "149.154.175.50",
        (80, 443),
        True,
    )
    assert first.where.endswith("telegram.toml:6")
    web = telegram.one("web")
    assert (web.host, web.ports, web.url, web.sni, web.is_address) == (
        "web.telegram.org", (443,), "https://web.telegram.org/", "web.telegram.org", False,
    )  # fmt: skip
    fb = endpoints.load("facebook_messenger").endpoints[1]
    assert (fb.name, fb.host, dict(fb.params)) == ("b_api", "b-api.facebook.com", {"asn": 32934})


def test_an_override_replaces_the_families_it_lists_and_leaves_the_others(tmp_path: Path) -> None:
    override = tmp_path / "lab.toml"
    override.write_text(
        '[[telegram]]\nrole = "datacenter"\nhost = "10.0.0.5"\nports = [80]\n\n'
        '[[telegram]]\nrole = "web"\nurl = "https://web.telegram.org:8443/"\n'
        'server_name = "Web.Telegram.org"\n'
    )
    telegram = endpoints.load("telegram", override)
    assert telegram.source == str(override)
    assert [(e.host, e.ports) for e in telegram.endpoints] == [
        ("10.0.0.5", (80,)),
        ("web.telegram.org", (8443,)),
    ]
    assert telegram.endpoints[1].sni == "web.telegram.org"
    assert endpoints.load("signal", override).source.endswith("nettests/signal.toml")
    with pytest.raises(ConfigError) as caught:
        endpoints.load("signal", override, fallback=False)
    assert str(caught.value) == f"{override}: no [[signal]] entries"


_KNOWN = "host, name, params, ports, role, server_name, url"


@pytest.mark.parametrize(
    ("entry", "field", "problem"),
    [
        ('host = "a.example"', "role", "required: a lower-case identifier such as datacenter or web"),
        ('role = "web"', "host", "required (or a url to take it from)"),
        ('role = "web"\nhost = "a.example"\nport = 1', "port", f"unknown field (known: {_KNOWN})"),
        ('role = "web"\nhost = "a.example"\nports = [0]', "ports", "a list of port numbers 1-65535"),
        ('role = "web"\nhost = "a.example"\nports = "443"', "ports", "a list of port numbers 1-65535"),
        (
            'role = "web"\nurl = "ftp://a.example/"',
            "url",
            "unsupported URL scheme 'ftp' in 'ftp://a.example/': only http and https",
        ),
        ('role = "web"\nhost = "a..example"', "host", "invalid host name 'a..example': empty label"),
        (
            'role = "web"\nhost = "a.example"\nparams = { x = 1.5 }',
            "params",
            "a table of strings, integers and booleans",
        ),
        ('role = "web"\nhost = 5', "host", "must be a string"),
        (
            'role = "web"\nhost = "a.example"\nname = "B-api"',
            "name",
            "'B-api' is not a lower-case identifier (letters, digits, _)",
        ),
    ],
)
def test_a_bad_entry_is_one_line_naming_file_line_entry_and_field(
    tmp_path: Path, entry: str, field: str, problem: str
) -> None:
    path = tmp_path / "endpoints.toml"
    first = '[[telegram]]\nrole = "datacenter"\nhost = "192.0.2.1"\n'
    path.write_text(f"# a comment\n{first}\n[[telegram]]\n{entry}\n")
    with pytest.raises(ConfigError) as caught:
        endpoints.load("telegram", path)
    assert str(caught.value) == f"{path}:6: telegram[1].{field}: {problem}"


def test_a_file_that_is_not_an_endpoint_list_is_named(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text('telegram = "no"\n')
    with pytest.raises(ConfigError) as caught:
        endpoints.load("telegram", path)
    assert str(caught.value) == f"{path}: telegram: expected [[telegram]] entries (an array of tables)"
    path.write_text("[[telegram]\n")
    with pytest.raises(ConfigError, match=rf"^{path}: invalid TOML: "):
        endpoints.load("telegram", path)
    missing = r"missing\.toml: cannot read endpoint list: No such file or directory$"
    with pytest.raises(ConfigError, match=missing):
        endpoints.load("telegram", tmp_path / "missing.toml")


def test_a_list_without_a_role_a_test_needs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.toml"
    path.write_text('[[telegram]]\nrole = "datacenter"\nhost = "192.0.2.1"\nports = [80]\n')
    with pytest.raises(ConfigError) as caught:
        endpoints.load("telegram", path).require("datacenter", "web")
    assert str(caught.value) == f'{path}: no telegram endpoint with role "web"'
