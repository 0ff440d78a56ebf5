"""Wire codecs and purse cryptography: pure functions over bytes, no I/O, no clocks, no globals."""
