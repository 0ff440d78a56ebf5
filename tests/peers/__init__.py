"""Tests against real third-party peers (pcscd with vpcd): marked ``peers``, skipped (failed in CI) without them."""
