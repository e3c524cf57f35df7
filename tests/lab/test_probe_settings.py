"""The lab hands the probe its view of the network as ordinary probe settings (no special code paths)."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.lab.network import Lab
from probe.lab.pki import write_pki
from probe.lab.plan import ISP_ASN, LabPlan

pytest.importorskip("trustme")


def test_generated_settings_load_with_the_probes_own_loaders(tmp_path: Path) -> None:
    settings_module = pytest.importorskip("probe.rounds.settings")
    ipinfo = pytest.importorskip("probe.ipinfo")
    plan = LabPlan("rp000001")
    lab = Lab(plan, tmp_path)
    lab.pki = write_pki(tmp_path, ["x.com"])
    settings = settings_module.load_settings(lab.write_probe_settings())
    assert settings.network.public_networks == (plan.world_space,)
    assert settings.measure.resolvers == (f"{plan.public_resolver_ip}:53",)
    assert settings.measure.ca_file == tmp_path / "lab-ca.pem"
    asn_of = ipinfo.load_asn_database(settings.network.asn_database)
    assert asn_of(plan.site_ip("x.com")) == 13414
    assert asn_of(plan.site_ip("en.wikipedia.org")) == 14907
    assert asn_of(plan.blockpage_ip) == ISP_ASN
    assert asn_of("10.250.0.1") == 0
    assert not ipinfo.is_bogon(
        plan.site_ip("x.com"), public=ipinfo.parse_networks(settings.network.public_networks)
    )
