"""The validator: links to cards and SAMs, the tap transaction state machine, fares, journal and blacklist."""
