"""``ykt``: the command line. Each command group lives in a module of its own and registers itself here."""

from __future__ import annotations

import sys

import click

from protocols.errors import YktError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="yikatong")
def cli() -> None:
    """yikatong: bus fare validator core and simulator for T-Union (JT/T 978) transport cards.

    Every command takes --help. Byte strings are written in hex; spaces and colons between digits are ignored.
    """


def main() -> None:
    """Entry point: the project's errors become one line on stderr and exit code 2, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except YktError as exc:
        click.echo(f"ykt: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
