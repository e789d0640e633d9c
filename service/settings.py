"""The one settings model: defaults < ragtune.toml < RAGTUNE_* environment < command-line flags.

Built in ``main()`` (or a test) and passed down; nothing reads settings at import time.
Nested sections use ``__`` in the environment: ``RAGTUNE_EMBED__BACKEND=torch``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ingest.settings import ChunkSettings, EmbedSettings, IndexSettings, IngestSettings

CONFIG_ENV = "RAGTUNE_CONFIG"
DEFAULT_CONFIG = Path("ragtune.toml")


class Settings(BaseSettings):
    """Everything configurable about ragtune, one section per concern."""

    model_config = SettingsConfigDict(
        env_prefix="RAGTUNE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Field(
        Path(".ragtune"), description="Data directory: index versions, docstore, caches of a run."
    )
    embed: EmbedSettings = Field(default_factory=EmbedSettings, description="Sentence encoder.")
    chunk: ChunkSettings = Field(default_factory=ChunkSettings, description="Chunking.")
    index: IndexSettings = Field(default_factory=IndexSettings, description="Vector index.")
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="Ingest workers.")

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file comes from model_config["toml_file"]; load_settings() sets it.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment and TOML file, with explicit ``overrides`` on top.

    The file is ``config``, else ``$RAGTUNE_CONFIG``, else ``./ragtune.toml`` when it exists.
    """
    toml = config or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    if (config is not None or os.environ.get(CONFIG_ENV)) and not toml.is_file():
        raise FileNotFoundError(f"config file not found: {toml}")
    values = {k: v for k, v in overrides.items() if v is not None}
    if not toml.is_file():
        return Settings(**values)

    class FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=toml)

    return FileSettings(**values)
