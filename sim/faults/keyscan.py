"""Scenario: no key of the run in anything it wrote.

Every file the campaign wrote under its work directory (journals and their write-ahead logs, load journals and the
load host's ledger, settlement exports, traces, process logs and the campaign's own log, captured outputs) and every
error message and outcome detail it met are scanned for every key in the campaign's :class:`~.keyring.KeyRing`. Left
out: the card fixtures and key sets under the campaign's ``cards`` directory, which hold the cards' own keys and the
master keys by their formats (``docs/card-fixture-format.md``), and the fuzzing's inputs kept there too.
"""

from __future__ import annotations

from collections import Counter

from .campaign import Campaign, Figures


def scan_for_keys(campaign: Campaign) -> Figures:
    figures = Figures("keys", "No key in any log, trace, journal, export or error message")
    ring = campaign.keys
    skipped = campaign.cards.resolve()
    files = [path for path in sorted(campaign.workdir.rglob("*"))
             if path.is_file() and skipped not in path.resolve().parents]
    found_in: Counter[str] = Counter()
    scanned_bytes = 0
    with campaign.progress("keys", len(files) + 1, "file") as advance:
        for path in files:
            data = path.read_bytes()
            scanned_bytes += len(data)
            found = ring.count_bytes(data)
            if found:
                found_in[str(path.relative_to(campaign.workdir))] += found
            advance(1)
        in_messages = sum(ring.count_text(message) for message in campaign.messages)
        advance(1)
    kinds = Counter(path.suffix or path.name for path in files)
    figures.count("keys_in_ring", len(ring))
    figures.count("files_scanned", len(files))
    figures.count("bytes_scanned", scanned_bytes)
    figures.count("file_kinds", dict(sorted(kinds.items())))
    figures.count("messages_scanned", len(campaign.messages))
    figures.must_be_zero("key_strings_in_files", sum(found_in.values()))
    figures.must_be_zero("key_strings_in_messages", in_messages)
    figures.must_hold("keys_to_look_for", len(ring) > 0)
    for name, count in found_in.most_common(10):
        figures.note(f"{count} key string(s) in {name}")
    return figures
