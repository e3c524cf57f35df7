"""The censor's rule builders: exact iptables, tc and server rules (no privileges needed)."""

from __future__ import annotations

from probe.lab import censor
from probe.lab.censor import Censorship
from probe.lab.plan import LabPlan

PLAN = LabPlan("rp000001")  # octet 21


def _rules(*entries: Censorship) -> list[str]:
    return [line for line in censor.iptables_ruleset(PLAN, entries).splitlines() if line.startswith("-A")]


def test_plan_addresses() -> None:
    assert PLAN.octet == 21
    assert PLAN.site_ip("x.com") == "10.21.64.10"
    assert PLAN.namespaces == ("rp000001-client", "rp000001-isp", "rp000001-world")
    assert PLAN.label("10.21.64.10", "x.com") == "site"
    assert PLAN.label("10.21.64.10", "twitter.com") == "site:x.com"
    assert PLAN.label(PLAN.blockpage_ip, "x.com") == "blockpage"
    assert all(len(name) <= 15 for name in (PLAN.client_if, PLAN.isp_access_if, PLAN.isp_transit_if))


def test_empty_ruleset_is_complete_and_accepts_everything() -> None:
    assert censor.iptables_ruleset(PLAN, []) == (
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        ":POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
    )


def test_sni_reset_matches_the_name_on_443_and_rejects_with_rst() -> None:
    assert _rules(Censorship("tls.reset.sni", "x.com")) == [
        '-A FORWARD -i rp000001-ia -p tcp --dport 443 -m string --algo bm --hex-string "|782e636f6d|" '
        '-m comment --comment "tls.reset.sni x.com" -j REJECT --reject-with tcp-reset'
    ]


def test_host_reset_matches_a_whole_host_header() -> None:
    (rule,) = _rules(Censorship("http.reset.host", "x.com"))
    assert '--icase --hex-string "|0d0a486f73743a20782e636f6d0d0a|"' in rule
    assert rule.endswith("-j REJECT --reject-with tcp-reset")


def test_address_kinds_resolve_lab_names() -> None:
    assert _rules(Censorship("ip.drop", "telegram.org"), Censorship("tcp.reset", "10.9.9.9")) == [
        '-A FORWARD -i rp000001-ia -d 10.21.64.17 -m comment --comment "ip.drop telegram.org" -j DROP',
        '-A FORWARD -i rp000001-ia -d 10.9.9.9 -p tcp --syn -m comment --comment "tcp.reset 10.9.9.9" '
        "-j REJECT --reject-with tcp-reset",
    ]


def test_interception_and_blockpage_are_nat_rules() -> None:
    rules = _rules(Censorship("dns.intercept"), Censorship("http.blockpage", "www.youtube.com"))
    assert rules == [
        '-A PREROUTING -i rp000001-ia -p udp --dport 53 -m comment --comment "dns.intercept" '
        "-j DNAT --to-destination 10.21.3.53:53",
        '-A PREROUTING -i rp000001-ia -p tcp --dport 53 -m comment --comment "dns.intercept" '
        "-j DNAT --to-destination 10.21.3.53:53",
        "-A PREROUTING -i rp000001-ia -p tcp -d 10.21.64.12 --dport 80 -m comment --comment "
        '"http.blockpage www.youtube.com" -j REDIRECT --to-ports 3128',
    ]


def test_shutdown_cuts_forwarding_and_the_isps_own_uplink() -> None:
    assert _rules(Censorship("shutdown")) == [
        '-A FORWARD -i rp000001-ia -o rp000001-it -m comment --comment "shutdown" -j DROP',
        '-A OUTPUT -o rp000001-it -m comment --comment "shutdown" -j DROP',
    ]


def test_control_block_drops_the_helper_address() -> None:
    (rule,) = _rules(Censorship("control.block"))
    assert f"-d {PLAN.helper_ip} " in rule and rule.endswith("-j DROP")


def test_throttle_builds_one_shaped_class_per_address() -> None:
    lines = censor.tc_batch(PLAN, [Censorship("throttle", "mmg.whatsapp.net", {"rate": "128kbit"})])
    assert lines == [
        "qdisc add dev rp000001-ia root handle 1: htb default 1",
        "class add dev rp000001-ia parent 1: classid 1:1 htb rate 10gbit quantum 200000",
        "class add dev rp000001-ia parent 1: classid 1:10 htb rate 128kbit ceil 128kbit quantum 1514",
        "qdisc add dev rp000001-ia parent 1:10 handle 10: pfifo limit 8",
        "filter add dev rp000001-ia parent 1: protocol ip prio 1 u32 match ip src 10.21.64.16/32 flowid 1:10",
    ]
    assert censor.tc_batch(PLAN, [Censorship("ip.drop", "x.com")]) == []


def test_resolver_and_proxy_rules() -> None:
    entries = [
        Censorship("dns.nxdomain", "x.com"),
        Censorship("dns.bogon", "twitter.com"),
        Censorship("dns.bogon", "telegram.org", {"address": "10.10.34.36"}),
        Censorship("dns.blockpage", "www.youtube.com"),
        Censorship("dns.localhost", "www.tiktok.com"),
        Censorship("dns.drop", "en.wikipedia.org"),
        Censorship("http.blockpage", "www.facebook.com"),
        Censorship("http.redirect", "www.instagram.com"),
    ]
    assert censor.resolver_rules(PLAN, entries) == {
        "x.com": {"action": "nxdomain"},
        "twitter.com": {"action": "answer", "addresses": ["10.10.34.35"]},
        "telegram.org": {"action": "answer", "addresses": ["10.10.34.36"]},
        "www.youtube.com": {"action": "answer", "addresses": ["10.21.3.80"]},
        "www.tiktok.com": {"action": "answer", "addresses": ["127.0.0.1"]},
        "en.wikipedia.org": {"action": "drop"},
    }
    assert censor.proxy_rules(entries) == {
        "www.facebook.com": {"action": "blockpage"},
        "www.instagram.com": {"action": "redirect", "location": "http://blockpage.isp.lab/blocked"},
    }


def test_target_problems() -> None:
    assert censor.target_problem("dns.nxdomain", "x.com") is None
    assert censor.target_problem("ip.drop", "10.1.2.3") is None
    assert censor.target_problem("tls.reset.sni", "anything.example") is None
    assert "needs a lab domain" in (censor.target_problem("dns.nxdomain", "10.1.2.3") or "")
    assert "needs a lab domain or an IPv4 address" in (censor.target_problem("ip.drop", "nope.example") or "")
