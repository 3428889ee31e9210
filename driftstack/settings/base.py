"""The one way a function reads its configuration: pydantic-settings models over the environment.

- every value is parsed by pydantic (booleans: true/false/1/0/yes/no/on/off; numbers; JSON for
  dicts), an empty variable counts as unset;
- an error names the environment variable (``SettingsError: DRIFT_MIN_SAMPLES='many': ...``);
- a threshold group (``DRIFT_*``, ``DECISION_*``, ``CANARY_*``) refuses variables with its prefix
  that name no field (a typo must not silently keep the default), and so do event overrides;
- ``Model.from_env(mapping)`` reads a given mapping instead of ``os.environ`` (tests).
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, ClassVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("driftstack_settings_environ", default=None)


class SettingsError(ValueError):
    """The environment (or an override) does not configure the function; the message names the variables."""


def env(key: str, default: Any = ..., **kwargs: Any) -> Any:
    """A field read from the environment variable ``key`` (a constant of driftstack.contract.names)."""
    return Field(default, validation_alias=key, **kwargs)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (``os.environ`` by default)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class EnvSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", frozen=True, env_ignore_empty=True, validate_default=True,
                                      validate_by_name=True, validate_by_alias=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   **_unused: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        # explicit values first, then the environment (no .env or secrets files in a Lambda)
        return init_settings, _MappingEnvSource(settings_cls, _ENVIRON.get() or os.environ)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None):
        """The settings from ``environ`` (default ``os.environ``); threshold groups are read from it too."""
        environ = os.environ if environ is None else environ
        groups = {name: f.annotation.from_env(environ) for name, f in cls.model_fields.items()
                  if isinstance(f.annotation, type) and issubclass(f.annotation, EnvSettings)}
        token = _ENVIRON.set(environ)
        try:
            return cls(**groups)
        except ValidationError as exc:
            raise SettingsError(_describe(cls, exc, environ)) from None
        finally:
            _ENVIRON.reset(token)

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable a field (or alias) is read from."""
        info = cls.model_fields.get(field)
        if info is None:
            return field
        alias = info.validation_alias
        return alias if isinstance(alias, str) else (cls.model_config.get("env_prefix") or "") + field.upper()


def _describe(cls: type[EnvSettings], exc: ValidationError, environ: Mapping[str, str] | None) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        name = cls.env_name(loc[0]) if environ is not None else ".".join(loc)
        value = environ.get(name) if environ is not None else err.get("input")
        shown = f"{name}={value!r}" if value not in (None, "") and err["type"] != "missing" else name
        parts.append(f"{shown}: {err['msg']}")
    return f"{cls.__name__}: " + "; ".join(parts)


class Thresholds(EnvSettings):
    """A domain dataclass's fields read from ``<PREFIX><FIELD>`` (see :func:`thresholds`)."""

    domain: ClassVar[type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None):
        environ = os.environ if environ is None else environ
        prefix = cls.model_config["env_prefix"]
        known = {cls.env_name(f) for f in cls.model_fields}
        unknown = sorted(k for k, v in environ.items() if k.startswith(prefix) and k not in known and v != "")
        if unknown:
            raise SettingsError(f"{cls.__name__}: unknown variable(s) {', '.join(unknown)}; "
                                f"expected some of {', '.join(sorted(known))}")
        settings = super().from_env(environ)
        try:  # the dataclass's own checks (e.g. window_minutes > 0), at cold start rather than at first use
            settings.build()
        except ValueError as exc:
            raise SettingsError(f"{cls.__name__} ({prefix}*): {exc}") from None
        return settings

    def build(self, overrides: Mapping[str, Any] | None = None):
        """The domain object, with ``overrides`` (e.g. from an event) applied and validated like the environment."""
        values = self.model_dump()
        if overrides:
            try:
                values = type(self).model_validate({**values, **overrides}).model_dump()
            except ValidationError as exc:
                raise SettingsError(_describe(type(self), exc, None)) from None
        return self.domain(**values)


def thresholds(domain: type, prefix: str) -> type[Thresholds]:
    """A settings model with the fields, types and defaults of the domain dataclass ``domain``: the
    dataclass stays the one definition of its thresholds (and keeps its own validation)."""
    hints = typing.get_type_hints(domain)
    fields = {f.name: f for f in dataclasses.fields(domain)}
    namespace = {"__module__": __name__, "__annotations__": {name: hints[name] for name in fields}, "domain": domain,
                 "model_config": SettingsConfigDict(env_prefix=prefix),
                 **{name: f.default for name, f in fields.items()}}
    return type(f"{domain.__name__}Settings", (Thresholds,), namespace)
