"""``probe families``: what runs, what each test sends, the month's budget as the volunteer set it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from probe.cli import main
from probe.nettests.registry import FAMILIES


def test_families_follow_the_settings_and_the_months_use(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, probe_data_dir: Path
) -> None:
    probe_data_dir.mkdir(parents=True)
    month = datetime.now(UTC).strftime("%Y-%m")
    (probe_data_dir / "family-usage.json").write_text(json.dumps({"month": month, "bytes": 3 * 1024**2}))
    settings = tmp_path / "settings.toml"
    settings.write_text('[tests]\ntor = true\nhttp3 = false\nexcluded_categories = ["PORN"]\n'
                        "monthly_budget_bytes = 104857600\n")  # fmt: skip
    assert main(["families", "--config", str(settings)]) == 0
    lines = capsys.readouterr().out.splitlines()
    states = {line.split()[0]: line.split()[1] for line in lines[1:10]}
    assert states == {
        "whatsapp": "on", "telegram": "on", "signal": "on", "facebook_messenger": "on", "tor": "on",
        "vpn": "off", "sni_blocking": "off", "http3": "off", "throughput": "off",
    }  # fmt: skip
    assert lines[5].startswith("tor                on  ~2.0 MiB/round: a TCP connect and a TLS handshake")
    assert lines[-2:] == [
        "excluded categories: PORN",
        "this month (UTC): 3.0 MiB used of 100.0 MiB; once spent, the heavy families wait for next month",
    ]
    assert main(["families", "--config", str(settings), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [row["family"] for row in answer["families"]] == list(FAMILIES)
    assert (answer["month_bytes_used"], answer["monthly_budget_bytes"]) == (3 * 1024**2, 100 * 1024**2)
    assert answer["families"][-1] == {
        "family": "throughput", "on": False, "installed": True, "heavy": True, "bytes_per_round": 2 * 1024**2,
        "sends": FAMILIES["throughput"].sends,
    }  # fmt: skip
