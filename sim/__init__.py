"""The workbench: simulated cards, PSAMs and readers, fixtures, replay, emulated hardware, benchmarks and the CLI."""
