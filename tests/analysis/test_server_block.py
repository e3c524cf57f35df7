"""Server-side refusals (a CDN challenge, a site's geo-block page): ``server.block``, never blocked."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.fingerprints import FingerprintDB
from probe.outcome import Outcome, describe, measurement_outcome
from tests.analysis.builders import (
    HTTP_URL,
    HTTPS_URL,
    IP,
    connect,
    control,
    fetch,
    handshake,
    keys,
    query,
    run,
)
from tests.analysis.builders import response as make_response
from tests.analysis.test_fingerprints import row, write

PAGES = Path(__file__).parent / "pages"
SURF_SAFELY = (PAGES / "surf_safely.html").read_bytes()
CLOUDFLARE = b"<html><head><title>Attention Required! | Cloudflare</title></head><body>blocked</body></html>"
CHALLENGE_HEADERS = (("Server", "cloudflare"), ("cf-mitigated", "challenge"), ("Content-Type", "text/html"))
JUST_A_MOMENT = b"<html><head><title>Just a moment...</title></head><body></body></html>"
AKAMAI = (
    b"<HTML><HEAD>\n<TITLE>Access Denied</TITLE>\n</HEAD><BODY>\n<H1>Access Denied</H1>\n"
    b'You don\'t have permission to access "http&#58;&#47;&#47;example&#46;org&#47;" on this server.<P>\n'
    b"Reference&#32;&#35;18&#46;5e2c1002&#46;1700000000&#46;1a2b3c4d\n</BODY>\n</HTML>\n"
)
GEO = b"<html><body>Sorry, this video is NOT available in your\ncountry.</body></html>"
GEO_REGION = b"<html><body>This service is not currently available in your region</body></html>"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (CLOUDFLARE, ()),
        (JUST_A_MOMENT, CHALLENGE_HEADERS),
        (b"<html></html>", CHALLENGE_HEADERS),
        (AKAMAI, (("Server", "AkamaiGHost"),)),
        (GEO, ()),
        (GEO_REGION, ()),
    ],
    ids=["cloudflare-attention", "cloudflare-just-a-moment", "cf-mitigated-header", "akamai", "geo-country",
         "geo-region"],
)  # fmt: skip
def test_a_refusal_only_the_probe_got_is_server_block_not_http_diff_blocking(
    body: bytes, headers: tuple[tuple[str, str], ...]
) -> None:
    """OONI's best-known false positive: the control got the page, the probe a challenge."""
    c = connect(IP, 80)
    verdict = run(keys(query(IP), c, fetch(HTTP_URL, c, make_response(403, body, headers))), control())
    outcome = measurement_outcome(verdict)
    assert (verdict.blocking, verdict.accessible, verdict.mechanism, verdict.confirmed) == (
        "http-diff",
        False,
        "server.block",
        None,
    )
    assert (outcome, describe(outcome)) == (Outcome.SERVER_REFUSAL, "refused by the site (not censorship)")


def test_over_https_the_refusal_is_still_named() -> None:
    """OONI is silent over HTTPS (rule 1.1, accessible): the fingerprint still says who refused."""
    c = connect(IP, 443)
    page = make_response(403, CLOUDFLARE, ())
    verdict = run(keys(query(IP), c, handshake(c), fetch(HTTPS_URL, c, page)), control(), HTTPS_URL)
    assert (verdict.blocking, verdict.accessible, verdict.mechanism) == (False, True, "server.block")
    assert measurement_outcome(verdict) is Outcome.SERVER_REFUSAL


def test_a_censors_page_that_also_says_not_available_in_your_country_is_the_censors() -> None:
    c = connect(IP, 80)
    body = SURF_SAFELY + b"<p>This content is not available in your country.</p>"
    verdict = run(keys(query(IP), c, fetch(HTTP_URL, c, make_response(200, body, ()))), control())
    assert (verdict.mechanism, verdict.confirmed) == ("http.blockpage", "cp.b_nat_pak_isp_common_blockpage")
    assert describe(measurement_outcome(verdict), confirmed=verdict.confirmed) == (
        "blocked (confirmed: cp.b_nat_pak_isp_common_blockpage)"
    )


def test_operators_mark_their_own_rows_server_side_with_scope_srv(tmp_path: Path) -> None:
    path = write(tmp_path, row("mine.cdn", "body", "contains", "Checking your browser", scope="srv"))
    db = FingerprintDB.load([path])
    found = db.match_http(make_response(503, b"<p>Checking your browser before accessing</p>", ()))
    assert found is not None
    assert (found.name, found.is_server_side, found.is_censorship) == ("mine.cdn", True, False)
