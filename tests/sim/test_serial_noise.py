"""The noisy serial line: seeded per-byte damage, and the pty relay that puts it between a driver and a device."""

from __future__ import annotations

import os
import select
import time
import tty
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.pty import EmulatorError, PtyLink
from sim.serial_noise import LineNoise, NoiseError, NoisyRelay

DATA = bytes(range(256)) * 40


def test_no_noise_passes_every_byte() -> None:
    noise = LineNoise(0.0, 1)
    assert noise.apply(DATA) == DATA
    assert (noise.passed, noise.corrupted, noise.dropped, noise.seen) == (len(DATA), 0, 0, len(DATA))


def test_the_rate_and_the_drop_share_are_kept() -> None:
    noise = LineNoise(0.01, 3, "host->device", drop_share=0.5)
    out = noise.apply(DATA * 10)
    assert noise.seen == len(DATA) * 10 and len(out) == noise.seen - noise.dropped
    damaged = noise.corrupted + noise.dropped
    assert 0.008 < damaged / noise.seen < 0.012
    assert 0.4 < noise.dropped / damaged < 0.6


def test_corruption_only_keeps_the_length_and_changes_the_damaged_bytes() -> None:
    noise = LineNoise(1.0, 1, drop_share=0.0)
    out = noise.apply(DATA)
    assert len(out) == len(DATA) and all(a != b for a, b in zip(out, DATA, strict=True))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=30), st.integers(0, 2**32))
def test_the_damage_is_the_seed_s_whatever_the_pieces(sizes: list[int], seed: int) -> None:
    whole = LineNoise(0.05, seed, "x").apply(DATA)
    pieces, noise, start = [], LineNoise(0.05, seed, "x"), 0
    for size in sizes * (len(DATA) // sum(sizes) + 1):
        pieces.append(noise.apply(DATA[start:start + size]))
        start += size
    assert b"".join(pieces) == whole


def test_each_direction_draws_its_own_sequence() -> None:
    assert LineNoise(0.2, 1, "a").apply(DATA) != LineNoise(0.2, 1, "b").apply(DATA)


@pytest.mark.parametrize("rate, share", [(-0.1, 0.5), (1.5, 0.5), (0.1, 2.0)])
def test_settings_out_of_range_are_refused(rate: float, share: float) -> None:
    with pytest.raises(NoiseError):
        LineNoise(rate, drop_share=share)


class Device:
    """A serial device on a pty of its own: what the relay opens."""

    def __init__(self, link: Path) -> None:
        self.pty = PtyLink(link)
        self.master = self.pty.open()

    def read(self, size: int, timeout: float = 5.0) -> bytes:
        return _read(self.master, size, timeout)

    def close(self) -> None:
        self.pty.close()


def _read(fd: int, size: int, timeout: float = 5.0) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while len(out) < size and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.05)[0]:
            out += os.read(fd, size - len(out))
    return bytes(out)


def _client(link: Path) -> int:
    fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd


def test_the_relay_passes_bytes_both_ways_and_reopens_a_device_that_comes_back(tmp_path: Path) -> None:
    device = Device(tmp_path / "device")
    relay = NoisyRelay(tmp_path / "device", tmp_path / "line", to_device=LineNoise(0.0), to_host=LineNoise(0.0))
    with relay:
        host = _client(tmp_path / "line")
        try:
            os.write(host, b"\x00\x00\xff\x02\xfe\xd4\x02\x2a\x00")
            assert device.read(9) == b"\x00\x00\xff\x02\xfe\xd4\x02\x2a\x00"
            os.write(device.master, b"answer")
            assert _read(host, 6) == b"answer"
            device.close()  # the device's process dies; the host's port stays open
            device = Device(tmp_path / "device")  # and it is started again
            deadline = time.monotonic() + 5
            while relay.reopened == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert relay.reopened == 1
            os.write(host, b"again")
            assert device.read(5) == b"again"
        finally:
            os.close(host)
    device.close()
    assert not (tmp_path / "line").exists()


def test_a_relay_to_nothing_does_not_start(tmp_path: Path) -> None:
    with pytest.raises(EmulatorError, match="no serial device"):
        NoisyRelay(tmp_path / "absent", tmp_path / "line", to_device=LineNoise(0.0), to_host=LineNoise(0.0)).open()
    assert not (tmp_path / "line").exists()
