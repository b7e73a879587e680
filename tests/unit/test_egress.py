"""The SFTP egress policy (services/executor/egress.py): the classifier over a table of
addresses, the allow-list, and resolution (every address checked, failures as stable codes).
Nothing here opens a socket."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from pydantic import ValidationError

from services.executor.egress import EgressPolicy, classify, embedded_ipv4, parse_allow_list
from services.executor.errors import EgressDenied, HostNotFound, public_message
from services.executor.settings import EgressSettings, ExecutorSettings

REFUSED = [
    # IPv4
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "cgnat"),
    ("100.127.255.255", "cgnat"),
    ("169.254.169.254", "link-local"),  # the instance metadata service
    ("169.254.0.1", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.0.8", "reserved"),
    ("192.88.99.1", "reserved"),
    ("198.18.0.1", "reserved"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    # IPv6
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%2", "link-local"),
    ("febf:ffff::1", "link-local"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fec0::1", "private"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "reserved"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"),  # Teredo
    ("64:ff9b:1::1", "private"),  # local-use NAT64
    # IPv4 embedded in IPv6: judged by the IPv4
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:7f00:1", "loopback"),
    ("::ffff:10.1.2.3", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:100.64.0.1", "cgnat"),
    ("::ffff:0.0.0.0", "unspecified"),
    ("::127.0.0.1", "reserved"),  # IPv4-compatible (deprecated)
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
    ("2002:c0a8:101::1", "private"),  # 6to4 of 192.168.1.1
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "100.128.0.1",  # just above CGNAT
    "172.15.255.255",  # just below 172.16/12
    "172.32.0.1",  # just above it
    "169.253.255.255",
    "2606:4700::1111",
    "2001:4860:4860::8888",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of a public address
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize(("address", "category"), REFUSED)
def test_non_public_addresses_are_refused(address: str, category: str) -> None:
    assert classify(address) == category
    assert not EgressPolicy().allowed(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert classify(address) is None
    assert EgressPolicy().allowed(address)


def test_embedded_ipv4() -> None:
    assert str(embedded_ipv4("::ffff:127.0.0.1")) == "127.0.0.1"
    assert str(embedded_ipv4("64:ff9b::a9fe:a9fe")) == "169.254.169.254"
    assert str(embedded_ipv4("2002:c0a8:101::1")) == "192.168.1.1"
    assert embedded_ipv4("2606:4700::1111") is None
    assert embedded_ipv4("8.8.8.8") is None


def test_allow_list_opens_exactly_its_networks() -> None:
    policy = EgressPolicy.from_allow_list("127.0.0.0/8, fd00::/8 ,10.1.2.3")
    assert policy.allowed("127.0.0.1") and policy.allowed("127.9.9.9")
    assert policy.allowed("::ffff:127.0.0.1")  # the mapped form connects over IPv4
    assert policy.allowed("fd00::1")
    assert policy.allowed("10.1.2.3") and not policy.allowed("10.1.2.4")
    assert not policy.allowed("::1")  # IPv6 loopback is not in 127.0.0.0/8
    assert not policy.allowed("169.254.169.254")
    assert not policy.allowed("2002:7f00:1::1")  # 6to4 goes through a relay, not 127/8
    assert policy.allowed("8.8.8.8")


def test_narrow_allow_list_excludes_the_rest_of_loopback() -> None:
    policy = EgressPolicy.from_allow_list("127.0.0.2/32")
    assert policy.allowed("127.0.0.2") and not policy.allowed("127.0.0.1")


@pytest.mark.parametrize("bad", ["127.0.0.0/33", "localhost", "10.0.0.0/8;rm", "::1/129"])
def test_bad_allow_list_entries_are_named(bad: str) -> None:
    with pytest.raises(ValueError, match="FERRY_EGRESS_ALLOW"):
        parse_allow_list(f"127.0.0.0/8,{bad}")
    with pytest.raises(ValidationError):
        EgressSettings(FERRY_EGRESS_ALLOW=bad)  # type: ignore[call-arg]


def test_the_executor_refuses_to_start_with_a_bad_allow_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FERRY_EGRESS_ALLOW", "127.0.0.0/8,bogus")
    with pytest.raises(ValidationError, match="bogus"):
        ExecutorSettings()
    monkeypatch.setenv("FERRY_EGRESS_ALLOW", "127.0.0.0/8")
    assert ExecutorSettings().egress_allow == "127.0.0.0/8"


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_EGRESS_ALLOW", "127.0.0.0/8")
    assert EgressPolicy.from_settings().allowed("127.0.0.1")
    monkeypatch.delenv("FERRY_EGRESS_ALLOW")
    assert not EgressPolicy.from_settings().allowed("127.0.0.1")  # refused by default
    assert parse_allow_list("") == () and parse_allow_list(None) == ()


# --- resolution --------------------------------------------------------------------------------
def answers(*addresses: str) -> Any:
    def resolve(host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for a in addresses:
            if ":" in a:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)))
        return out

    return resolve


def test_every_address_of_a_name_is_checked() -> None:
    policy = EgressPolicy(resolver=answers("8.8.8.8", "10.0.0.5"))
    with pytest.raises(EgressDenied) as err:
        policy.resolve("mixed.example", 22)
    assert err.value.code == "EGRESS_DENIED" and not err.value.transient
    assert "mixed.example" in err.value.message and "10.0.0.5" not in err.value.message


def test_public_name_resolves_to_its_checked_addresses() -> None:
    policy = EgressPolicy(resolver=answers("8.8.8.8", "2606:4700::1111", "8.8.8.8"))
    got = policy.resolve("public.example", 2222)
    assert [r.address for r in got] == ["8.8.8.8", "2606:4700::1111"]
    assert got[0].sockaddr == ("8.8.8.8", 2222)


def test_unresolvable_host_is_host_not_found() -> None:
    def fail(*args: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(HostNotFound) as err:
        EgressPolicy(resolver=fail).resolve("nope.invalid", 22)
    assert err.value.code == "HOST_NOT_FOUND" and "Name or service" not in err.value.message
    assert not err.value.transient


def test_temporary_dns_failure_is_transient() -> None:
    def fail(*args: Any) -> Any:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(HostNotFound) as err:
        EgressPolicy(resolver=fail).resolve("flaky.example", 22)
    assert err.value.transient


@pytest.mark.parametrize(
    "host", ["localhost", "127.1", "0x7f000001", "2130706433", "0177.0.0.1", "::1", "0"]
)
def test_numeric_and_local_spellings_of_loopback_are_refused(host: str) -> None:
    """The real resolver (numeric forms and /etc/hosts only: no DNS query leaves the box)."""
    with pytest.raises(EgressDenied):
        EgressPolicy().resolve(host, 22)


def test_fixed_messages_name_only_the_endpoints_host() -> None:
    assert public_message("EGRESS_DENIED", host="h.example") == (
        "h.example is not reachable under Ferry's egress policy"
    )
    assert (
        public_message("CONNECTION_REFUSED", host="h", port=2222) == "h:2222 refused the connection"
    )
    assert public_message("SOMETHING_NEW") == "the SFTP check failed"
