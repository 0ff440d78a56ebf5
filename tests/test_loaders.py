"""Every loader ends in the project's typed errors on any input: key sets, validator settings, fares, card fixtures
(T-Union CPU and MIFARE Classic, and .mfd dumps), card captures, scripted cards, traces, blacklists (the list file and
its text source), the debit journal, the load journal, the load host's ledger and its terminals file
(:mod:`sim.faults.loaders`).

Each loader is fed random bytes, valid documents with bytes flipped, inserted, deleted or cut, and valid documents
changed in their structure (a JSON value replaced by one of any type, a TOML value by any literal, lines dropped or
repeated: :mod:`sim.faults.inputs`). Whatever happens, the only exceptions allowed out are
:class:`protocols.errors.YktError` subclasses.

Examples per strategy: ``YKT_FUZZ_EXAMPLES`` (default 60, enough for CI; ``ykt faults`` runs far more).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.errors import YktError
from sim.faults.inputs import byte_edits, json_edits, json_lines_edits, toml_edits
from sim.faults.loaders import LOADERS, STRUCTURE, Loaders

EXAMPLES = int(os.environ.get("YKT_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                              HealthCheck.data_too_large])
EDITS = {"json": json_edits, "json-lines": json_lines_edits, "toml": toml_edits}


@functools.cache
def loaders() -> Loaders:
    """The loaders on a directory of their own (one per test session, removed when it ends)."""
    path = Path(tempfile.mkdtemp(prefix="ykt-loaders-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return Loaders(path)


def load(kind: str, data: bytes) -> None:
    """Run the loader on ``data``: a YktError is a fine answer, anything else fails."""
    try:
        loaders().load(kind, data)
    except YktError:
        pass


def seeds(kind: str) -> tuple[bytes, ...]:
    return loaders().seeds(kind)


# -- the properties ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_the_seeds_load(kind: str) -> None:
    """The valid documents the mutations start from load (so the mutations test what they claim to)."""
    for seed in seeds(kind):
        loaders().load(kind, seed)


@pytest.mark.parametrize("kind", sorted(LOADERS))
@FUZZ
@given(data=st.data())
def test_random_bytes_end_in_typed_errors(kind: str, data: st.DataObject) -> None:
    load(kind, data.draw(st.binary(max_size=600)))


@pytest.mark.parametrize("kind", sorted(LOADERS))
@FUZZ
@given(data=st.data())
def test_damaged_documents_end_in_typed_errors(kind: str, data: st.DataObject) -> None:
    load(kind, data.draw(st.sampled_from(seeds(kind)).flatmap(byte_edits)))


@pytest.mark.parametrize("kind", sorted(STRUCTURE))
@FUZZ
@given(data=st.data())
def test_changed_documents_end_in_typed_errors(kind: str, data: st.DataObject) -> None:
    load(kind, data.draw(st.sampled_from(seeds(kind)).flatmap(EDITS[STRUCTURE[kind]])))


@pytest.mark.parametrize("value", [["3DES"], {"a": 1}, 3, None, 1.5])
def test_a_key_set_field_of_the_wrong_json_type_is_a_config_error(tmp_path: Path, value: object) -> None:
    from terminal.errors import ConfigError
    from terminal.keyset import load_keyset

    for field in ("algorithm", "format", "diversification_levels", "version", "master_keys"):
        doc = json.loads(seeds("keyset")[0])
        doc[field] = value
        path = tmp_path / "keys.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: {field}[.:]"):
            load_keyset(path)
