"""Loading the application layer (flows/, by file path) from the project folder, so the engine
never imports the organisation's code by name."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from airlock.errors import ConfigError


def load_project_object(project_dir: Path, entrypoint: str) -> Any:
    """``flows/run_request.py:run_request`` → the object, imported as ``flows.run_request``."""
    path, _, name = entrypoint.partition(":")
    file = (project_dir / path).resolve()
    if not file.is_file():
        raise ConfigError(f"{file} not found: run Airlock from the project folder or set AIRLOCK_PROJECT_DIR")
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    module_name = ".".join(Path(path).with_suffix("").parts)
    module = importlib.import_module(module_name)
    try:
        return getattr(module, name)
    except AttributeError as error:
        raise ConfigError(f"{entrypoint}: {module_name} has no {name!r}") from error
