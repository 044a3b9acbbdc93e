"""Where the site configuration lives and how it is read.

Order: the `--config` option, then $WORKSTATION_CONFIG, then `site.toml` in the
platform's per-user config directory, then the system-wide one written by the
installer. No file at all means defaults and no PACS nodes.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from platformdirs import site_config_dir, user_config_dir

from workstation.core.site import ConfigError, SiteConfig
from workstation.services.site_check import check_site_data

ENV_VAR = "WORKSTATION_CONFIG"
FILE_NAME = "site.toml"


def config_path(option: str | os.PathLike | None = None) -> Path | None:
    """The configuration file in force, or None when there is none."""
    if option:
        return Path(option)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    for folder in (user_config_dir("workstation", appauthor=False), site_config_dir("workstation", appauthor=False)):
        candidate = Path(folder) / FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def load_site_config(option: str | os.PathLike | None = None) -> SiteConfig:
    """Read and validate; raises ConfigError (with the file named) for any problem."""
    path = config_path(option)
    if path is None:
        return SiteConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "configuration file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    try:
        return check_site_data(data)  # routing rules, alert thresholds, worklist and [deid] too
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.key}", exc.reason) from None
