"""The lab's web: one site per target domain, and the block pages the lab ISP serves.

Pure data. Each site has a distinctive ``<title>`` so that a fetched page says where it came
from; ``org``/``asn`` are the real operators', for the IP → ASN map the lab hands the probe.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Site:
    """One web site of the lab world."""

    domain: str
    title: str
    org: str
    asn: int
    redirect: str | None = None
    """Answer every request with ``301`` to this URL (twitter.com → x.com, as the real one)."""


SITES: Final[tuple[Site, ...]] = (
    Site("x.com", "X. It's what's happening / X", "X Corp", 13414),
    Site("twitter.com", "X. It's what's happening / X", "X Corp", 13414, redirect="https://x.com/"),
    Site("www.youtube.com", "YouTube", "Google LLC", 15169),
    Site("www.facebook.com", "Facebook - log in or sign up", "Meta Platforms", 32934),
    Site("www.instagram.com", "Instagram", "Meta Platforms", 32934),
    Site("web.whatsapp.com", "WhatsApp Web", "Meta Platforms", 32934),
    Site("mmg.whatsapp.net", "WhatsApp media", "Meta Platforms", 32934),
    Site("telegram.org", "Telegram Messenger", "Telegram Messenger Inc", 62041),
    Site("www.tiktok.com", "TikTok - Make Your Day", "ByteDance", 396986),
    Site("en.wikipedia.org", "Wikipedia, the free encyclopedia", "Wikimedia Foundation", 14907),
    Site("example.com", "Example Domain", "IANA", 15133),
    Site("example.org", "Example Domain (org)", "IANA", 15133),
)
SITE_BY_DOMAIN: Final = {site.domain: site for site in SITES}

HELPER_DOMAIN: Final = "th.reachprobe.lab"
"""The test helper's name: ``probe.lab.helperserver`` serves HTTPS there, in the world namespace."""
BLOCKPAGE_DOMAIN: Final = "blockpage.isp.lab"
"""The lab ISP's block-page server (the target of DNS blockpage answers and block redirects)."""

LARGE_PATH: Final = "/media/large.bin"
"""Every site serves this 1 MiB body: the throttling scenarios fetch it."""
LARGE_BODY_BYTES: Final = 1 << 20

# reference/pakistan.md §2.3, verbatim: the national page injected on port 80.
SURF_SAFELY: Final = (
    '<html><head><title>Surf Safely</title></head><body><h1>&nbsp;</h1><div><h1><span style="font-size:'
    '48px;"><span style="color: rgb(0, 0, 255);">Surf Safely!</span></span></h1></div><div>&nbsp;</div>'
    '<div><span style="font-size:28px;"><strong><span style="color: rgb(255, 0, 0);">This website is not '
    "accessible.</span></strong></span></div><div>&nbsp;</div><div>&nbsp;</div><div><span style="
    '"font-size:26px;">The site you are trying to access contains content that is&nbsp;prohibited for '
    "viewership from within Pakistan.</span></div></body></html>"
)
SURF_SAFELY_TITLE: Final = "Surf Safely"

RESTRICTED_TITLE: Final = "Site Restricted"
"""Title of the page behind the ISP's block URL (the Wateen ``restrict.wateen.net`` style)."""


def site_page(site: Site) -> bytes:
    """The home page of *site*: its title, a heading and a line naming the lab."""
    title = html.escape(site.title)
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1><p>reachprobe lab copy of {html.escape(site.domain)}, "
        f"operated by {html.escape(site.org)} (AS{site.asn}).</p></body></html>\n"
    ).encode()


def restricted_page(blocked_url: str) -> bytes:
    """The ISP's "restricted" page shown after a block redirect."""
    return (
        f"<html><head><title>{RESTRICTED_TITLE}</title></head><body><h1>{RESTRICTED_TITLE}</h1>"
        f"<p>The URL {html.escape(blocked_url)} has been restricted on the instructions of the "
        "regulator.</p></body></html>\n"
    ).encode()


def large_body() -> bytes:
    """A deterministic 1 MiB body (not compressible by accident: it is never compressed)."""
    line = b"reachprobe lab media chunk 0123456789abcdefghijklmnopqrstuvwxyz\n"
    return (line * (LARGE_BODY_BYTES // len(line) + 1))[:LARGE_BODY_BYTES]
