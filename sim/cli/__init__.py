"""``ykt``: the command line. Each command group lives in a module of this package and registers itself on import."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from protocols.errors import YktError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="yikatong")
def cli() -> None:
    """yikatong: bus fare validator core and simulator for T-Union (JT/T 978) transport cards.

    Every command takes --help. Byte strings are written in hex; spaces and colons between digits are ignored.
    """


def load_commands() -> click.Group:
    """Import every module of this package; each adds its commands to :data:`cli` with ``@cli.command``/``@cli.group``.

    Command modules import their heavy dependencies inside the command functions so that ``ykt --help`` stays fast.
    """
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return cli


def run(argv: list[str] | None = None) -> int:
    """Run ``ykt`` with ``argv``; the project's errors become one line on stderr and exit code 2, never a traceback."""
    load_commands()
    try:
        result = cli.main(args=argv, prog_name="ykt", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except YktError as exc:
        click.echo(f"ykt: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())
