"""Drivers for real readers: each implements :class:`terminal.link.Link` and imports its hardware library lazily."""
