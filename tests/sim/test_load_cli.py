"""``ykt load`` on a simulated reader (in-process demo host, or a host over HTTP), its output, exit status and
--save, and ``ykt loadhost ledger``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import run
from sim.fixture import load_image, save_fixture
from sim.loadhost import LoadHostServer

from .load_support import PHONE, TOPUP, demo_card, demo_service


@pytest.fixture
def fixture(tmp_path: Path) -> Path:
    path = tmp_path / "card.json"
    save_fixture(demo_card(balance=5000), path)
    return path


def test_ykt_load_with_the_in_process_host(fixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = ["--journal", str(tmp_path / "loads.db"), "--ledger", str(tmp_path / "host.db")]
    assert run(["load", "--reader", f"sim:{fixture}", "--amount", "5000", "--save", "--json", *files]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert {k: doc[k] for k in ("status", "balance_before", "balance_after", "amount", "load_id", "confirmed",
                                "recovered", "card_serial", "apdus")} == \
        {"status": "loaded", "balance_before": 5000, "balance_after": 10000, "amount": 5000, "load_id": 1,
         "confirmed": True, "recovered": False, "card_serial": "03103640000000000077", "apdus": 3}
    assert len(doc["tac"]) == 8 and err == f"saved the card's state to {fixture}\n"
    assert load_image(fixture).purse.balance == 10000 and load_image(fixture).purse.online_atc == 1
    assert run(["load", "--reader", f"sim:{fixture}", "--amount", "250", *files]) == 0
    out = capsys.readouterr().out
    assert out.startswith("loaded 2.50 CNY onto card 3103640000000000077: balance 100.00 -> 102.50 (load 2, TAC ")
    assert out.endswith(", confirmed by the host)\n")
    assert load_image(fixture).purse.balance == 10000  # without --save the fixture stays as it was
    assert run(["loadhost", "ledger", str(tmp_path / "host.db"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["load_id"], r["state"], r["amount"], r["terminal"]) for r in rows] == \
        [(1, "confirmed", 5000, "200041590001"), (2, "confirmed", 250, "200041590001")]
    assert rows[0]["tac"] == doc["tac"]


def test_ykt_load_refused_and_unreachable(fixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = ["--journal", str(tmp_path / "loads.db"), "--ledger", str(tmp_path / "host.db")]
    assert run(["load", "--reader", f"sim:{fixture}", "--amount", "100000", "--save", *files]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("ykt: not loaded onto card 3103640000000000077: the balance would be 105000 fen, over the "
                          "purse limit of 100000 fen (over_limit)\n")
    assert run(["load", "--reader", f"sim:{fixture}", "--amount", "100", "--host", "http://127.0.0.1:9", "--token",
                TOPUP.token, "--journal", str(tmp_path / "loads.db"), "--json", "--save"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["reason"] == "host_unreachable"
    assert "load host http://127.0.0.1:9 unreachable: connection refused; the card was not credited" in err
    assert load_image(fixture).purse.balance == 5000 and load_image(fixture).purse.online_atc == 0


def test_ykt_load_over_http_as_the_phone(fixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    service = demo_service(tmp_path / "host.db")
    server = LoadHostServer(service, ("127.0.0.1", 0)).start()
    try:
        common = ["load", "--reader", f"sim:{fixture}", "--amount", "1000", "--host", server.url,
                  "--journal", str(tmp_path / "phone.db"), "--save"]
        assert run([*common, "--token", PHONE.token]) == 1  # the phone's token with the top-up machine's number
        assert capsys.readouterr().err == (
            "ykt: not loaded onto card 3103640000000000077: the token is not that of terminal 200041590001 "
            f"(unauthorized)\nsaved the card's state to {fixture}\n")
        assert run([*common, "--token", PHONE.token, "--terminal", PHONE.number.hex()]) == 0
        assert "loaded 10.00 CNY" in capsys.readouterr().out
    finally:
        server.stop()
        service.close()
    assert load_image(fixture).purse.balance == 6000


def test_ykt_load_usage_errors(fixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["load", "--reader", "sim:random", "--amount", "100", "--save"]) == 2
    assert "--save writes a sim:<fixture> card back to its file" in capsys.readouterr().err
    assert run(["load", "--reader", f"sim:{fixture}", "--amount", "100", "--host", "http://127.0.0.1:9"]) == 2
    assert "--host needs --token" in capsys.readouterr().err
    assert run(["load", "--reader", f"sim:{fixture}", "--amount", "100", "--terminal", "0102030405",
                "--ledger", str(tmp_path / "h.db")]) == 2
    assert "6 bytes (12 hex digits), got 5" in capsys.readouterr().err
    assert run(["load", "--reader", f"sim:{fixture}", "--amount", "100", "--terminal", "010203040506",
                "--ledger", str(tmp_path / "h.db")]) == 2
    assert "not one of the demo terminals (200041590001, 200041590002)" in capsys.readouterr().err
    assert run(["load", "--reader", f"sim:{fixture}", "--amount", "0"]) == 2
    assert run(["loadhost", "ledger", str(fixture)]) == 2
    assert "corrupt or not a SQLite database" in capsys.readouterr().err
