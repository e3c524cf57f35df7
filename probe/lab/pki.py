"""The lab certificate authority: one CA, one certificate per lab name (trustme).

The probe trusts the CA through ``--ca-file``; the web servers pick the right certificate by
SNI. trustme is a development dependency of reachprobe: the lab is a testing tool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from probe.lab.topology import LabError


@dataclass(frozen=True, slots=True)
class LabPKI:
    """Where the lab's CA certificate and the per-name key+chain PEM files are."""

    ca_file: Path
    certs: dict[str, Path]


def write_pki(
    directory: Path, names: list[str], identities: Mapping[str, Sequence[str]] | None = None
) -> LabPKI:
    """Create a CA and a certificate for each of *names* in *directory*.

    *identities* adds one certificate per key, for all its host names and IP addresses (a
    world endpoint's DNS names and address), filed under the key in :attr:`LabPKI.certs`.

    Raises:
        LabError: trustme is not installed.
    """
    try:
        import trustme
    except ImportError:
        raise LabError("the lab needs trustme: pip install 'reachprobe[dev]'") from None
    ca = trustme.CA(organization_name="reachprobe lab CA")
    ca_file = directory / "lab-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    certs: dict[str, Path] = {}
    for name in names:
        path = directory / f"cert-{name}.pem"
        ca.issue_cert(name).private_key_and_cert_chain_pem.write_to_path(str(path))
        certs[name] = path
    for key, names_and_addresses in (identities or {}).items():
        path = directory / f"cert-endpoint-{key}.pem"
        ca.issue_cert(*names_and_addresses).private_key_and_cert_chain_pem.write_to_path(str(path))
        certs[key] = path
    return LabPKI(ca_file=ca_file, certs=certs)
