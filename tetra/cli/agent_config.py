"""The agent's flags from files, as Tetragon takes them: ``--config-dir`` (one file per flag, named
after it, holding its value: a mounted ConfigMap) and ``--config-file`` (a YAML mapping of flag
names to values).

A value from a file becomes the flag's default (click's ``default_map``), so a flag given on the
command line wins, then the directory, then the file, then the built-in default. Values are read
as the text a flag would take (the YAML file's scalars too: ``0600`` stays ``0600``, not an
octal number), and checked at once against the flag's type, so a bad one is refused naming its
file (and line) before anything loads. A name that is not a flag of the command is an error,
not a silent no-op: a misspelt ``export-filname`` must not run an agent that exports nothing.
"""

from dataclasses import dataclass
from pathlib import Path

import click
import yaml

_SOURCES = "tetra.config_sources"  # ctx.meta key: {"file": values, "dir": values} read so far
_SELF = frozenset({"config-dir", "config-file", "help"})  # not settable from a file


@dataclass(frozen=True)
class FileValue:
    """One flag's value and where it was read (for errors)."""

    value: str | tuple[str, ...]
    where: str  # "path" (a file of --config-dir) or "path:line:column" (--config-file)


def read_config_dir(path: Path) -> dict[str, FileValue]:
    """Every regular file of ``path`` is a flag: its name the flag's, its content (stripped) the value.

    Dot entries are skipped: a mounted ConfigMap keeps its data in ``..data`` and timestamped
    ``..2024_...`` directories beside the per-key symlinks, which are followed.
    """
    if not path.is_dir():
        raise click.BadParameter(f"{path}: not a directory")
    values: dict[str, FileValue] = {}
    for entry in sorted(path.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        try:
            text = entry.read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise click.BadParameter(f"{entry}: {err}") from None
        values[entry.name] = FileValue(text.strip(), str(entry))
    return values


def read_config_file(path: Path) -> dict[str, FileValue]:
    """A YAML mapping of flag names to scalars (or lists, for repeatable flags), kept as text."""
    try:
        root = yaml.compose(path.read_text())
    except OSError as err:
        raise click.BadParameter(f"{path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise click.BadParameter(f"{path}: not YAML: {err}") from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise click.BadParameter(f"{_where(path, root)}: expected a mapping of flag names to values")
    values: dict[str, FileValue] = {}
    for key, node in root.value:
        where = _where(path, key)
        if not isinstance(key, yaml.ScalarNode):
            raise click.BadParameter(f"{where}: a key must be a flag name")
        if key.value in values:
            raise click.BadParameter(f"{where}: {key.value} is set twice")
        values[key.value] = FileValue(_text(node, path), where)
    return values


def _text(node: yaml.Node, path: Path) -> str | tuple[str, ...]:
    if isinstance(node, yaml.ScalarNode):
        return "" if node.tag == "tag:yaml.org,2002:null" else str(node.value)
    if isinstance(node, yaml.SequenceNode) and all(isinstance(item, yaml.ScalarNode) for item in node.value):
        return tuple(str(item.value) for item in node.value)
    raise click.BadParameter(f"{_where(path, node)}: expected a value or a list of values")


def _where(path: Path, node: yaml.Node) -> str:
    return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def load_config_dir(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Eager callback of ``--config-dir``."""
    if value:
        _merge(ctx, param, "dir", read_config_dir(Path(value)))
    return value


def load_config_file(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Eager callback of ``--config-file``."""
    if value:
        _merge(ctx, param, "file", read_config_file(Path(value)))
    return value


def _merge(ctx: click.Context, param: click.Parameter, kind: str, values: dict[str, FileValue]) -> None:
    """Check ``values`` against the command's flags and lay the files' values, the directory's
    over the file's, under the command line (eager options run first, in the order given: the
    merge is redone from both sources each time, so that order does not matter)."""
    flags = _flags(ctx.command)
    defaults: dict[str, object] = {}
    for name, found in values.items():
        option = flags.get(name)
        if option is None or name in _SELF:
            raise click.BadParameter(f"{found.where}: {name!r} is not a flag of `tetra agent`", ctx, param)
        try:
            value = _for_option(option, found.value)
            option.type_cast_value(ctx, value)
        except click.BadParameter as err:
            raise click.BadParameter(f"{found.where}: --{name}: {err.message}", ctx, param) from None
        defaults[option.name or name] = value
    sources: dict[str, dict[str, object]] = ctx.meta.setdefault(_SOURCES, {})
    sources[kind] = defaults
    ctx.default_map = {**(ctx.default_map or {}), **sources.get("file", {}), **sources.get("dir", {})}


def _for_option(option: click.Option, value: str | tuple[str, ...]) -> object:
    """A repeatable flag takes a list (one value from a file is a list of one); others one value."""
    if option.multiple:
        return value if isinstance(value, tuple) else (value,)
    if isinstance(value, tuple):
        raise click.BadParameter("takes one value, not a list")
    return value


def _flags(command: click.Command) -> dict[str, click.Option]:
    """The command's options by long name without its dashes (``process-cache-size``)."""
    return {opt[2:]: p for p in command.params if isinstance(p, click.Option)
            for opt in p.opts if opt.startswith("--")}
