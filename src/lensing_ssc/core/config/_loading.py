"""Reading and writing configuration files, and environment overrides.

Files are read by suffix: ``.yaml``/``.yml`` (PyYAML), ``.toml`` (tomllib/tomli) and
``.json``. Environment variables named ``LENSING_SSC_<SECTION>__<FIELD>`` (or
``LENSING_SSC_<FIELD>`` for top-level fields such as ``RUN_DIR``) override file values;
their text is parsed as a YAML scalar, so ``4000``, ``false`` and ``null`` mean what they
say; an empty variable (``LENSING_SSC_RUN_DIR=``) is unset, as if it were not there.
Validation itself lives on the models; what is read here is only checked for what would
break it: a document nested deeper than :data:`MAX_DEPTH` is refused, whether a file, a
mapping or a variable holds it, before anything recurses into it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lensing_ssc.core.base.exceptions import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "ENV_PREFIX",
    "MAX_DEPTH",
    "SUFFIXES",
    "check_document",
    "dump_text",
    "env_overrides",
    "merge",
    "read_file",
]

ENV_PREFIX = "LENSING_SSC_"
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}
MAX_DEPTH = 32
"""Deepest nesting of mappings and lists a config document may have. The deepest setting
is 5 levels down (``pipeline.healpix.sets.<name>.fields``); a document thousands deep is an
accident or an attack, and would exhaust Python's stack in the parsers and validators."""


def _too_deep(what: str, source: str, *, field: str | None = None) -> ConfigError:
    return ConfigError(
        f"{what} is nested deeper than {MAX_DEPTH} levels, far deeper than any setting",
        value=source,
        hint="a config nests sections and lists a few levels deep: check the file or value",
        field=field,
        source=source,
    )


def check_document(data: Any, source: str) -> None:
    """Refuse ``data`` nested deeper than :data:`MAX_DEPTH` (walked without recursion).

    Raises:
        ConfigError: naming ``source``.
    """
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children: Any = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        if depth >= MAX_DEPTH:
            raise _too_deep(f"the config in {source}", source)
        stack.extend((child, depth + 1) for child in children)


def _format_of(path: Path) -> str:
    try:
        return SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise ConfigError(
            f"cannot tell the format of config file {str(path)!r} from its suffix",
            value=path.suffix,
            hint=f"use one of {', '.join(sorted(SUFFIXES))}",
            source=str(path),
        ) from None


def read_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML, TOML or JSON file into a dict, raising :class:`ConfigError` on any problem."""
    path = Path(path)
    kind = _format_of(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {str(path)!r} does not exist",
            value=str(path),
            hint="check the path, or run `lensing-ssc config show > config.yaml` to write one",
            source=str(path),
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read config file {str(path)!r}: {exc}", value=str(path), source=str(path)
        ) from exc
    try:
        if kind == "yaml":
            data = yaml.safe_load(text)
        elif kind == "toml":
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except RecursionError:  # the parsers recurse: a deep enough document exhausts the stack
        raise _too_deep(f"config file {str(path)!r}", str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"malformed YAML in {str(path)!r}{where}: {getattr(exc, 'problem', exc)}",
            value=str(path),
            source=str(path),
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"malformed TOML in {str(path)!r}: {exc}", value=str(path), source=str(path)
        ) from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"malformed JSON in {str(path)!r} at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            value=str(path),
            source=str(path),
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of sections, not {type(data).__name__}",
            value=type(data).__name__,
            source=str(path),
        )
    check_document(data, f"config file {str(path)!r}")
    return data


def dump_text(data: Mapping[str, Any], kind: str) -> str:
    """Render ``data`` (JSON-ready) as ``yaml``, ``toml`` or ``json`` text."""
    if kind == "yaml":
        return yaml.safe_dump(dict(data), sort_keys=False)
    if kind == "json":
        return json.dumps(data, indent=2) + "\n"
    import tomli_w

    return tomli_w.dumps(_drop_none(data))


def _drop_none(data: Any) -> Any:
    """TOML has no null: unset (``None``) fields are simply left out."""
    if isinstance(data, Mapping):
        return {k: _drop_none(v) for k, v in data.items() if v is not None}
    return data


def env_overrides(
    environ: Mapping[str, str], top_level: set[str], sections: set[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Collect ``LENSING_SSC_*`` overrides.

    Returns the nested override dict and, for error messages, a map from dotted field path
    to the variable it came from. A variable naming an unknown section is reported by
    validation like any unknown key.
    """
    data: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or not raw.strip():
            continue  # not ours, or empty: an empty variable is unset
        rest = name[len(ENV_PREFIX) :].lower()
        parts = rest.split("__")
        if len(parts) == 1 and parts[0] not in top_level:
            continue  # other LENSING_SSC_* settings (not config fields) are not ours
        if len(parts) > 1 and parts[0] not in sections and parts[0] not in top_level:
            raise ConfigError(
                f"environment variable {name} names unknown config section {parts[0]!r}",
                value=parts[0],
                hint=f"sections: {', '.join(sorted(sections))}",
                field=".".join(parts),
                source=name,
            )
        try:
            value = yaml.safe_load(raw)
            check_document(value, f"environment variable {name}")
        except RecursionError:
            raise _too_deep(f"environment variable {name}", name, field=".".join(parts)) from None
        except yaml.YAMLError:
            value = raw
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # LENSING_SSC_CACHE=5 beside LENSING_SSC_CACHE__DIR
                raise ConfigError(
                    f"environment variable {name} sets a field of {'.'.join(parts[:-1])!r}, "
                    "which another variable sets as a whole",
                    value=name,
                    hint="set the section's fields one variable each, or the whole section",
                    field=".".join(parts),
                    source=name,
                )
            node = child
        node[parts[-1]] = value
        sources[".".join(parts)] = name
    return data, sources


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
