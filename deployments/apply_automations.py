"""Create or update the Prefect automations defined in YAML files, matched by name.

`prefect automation create --from-file` creates a duplicate every time it runs; this makes applying
the definitions idempotent, so deployments/local_stack.sh and release scripts can run it on every
start. Usage (PREFECT_API_URL pointing at the server):

    python deployments/apply_automations.py [FILE ...]   # default: deployments/automations/*.yaml
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import yaml
from prefect.client.orchestration import get_client
from prefect.events.schemas.automations import AutomationCore

DEFAULT_FOLDER = Path(__file__).resolve().parent / "automations"


def load_automations(path: Path) -> list[AutomationCore]:
    """The automations in a file, in any layout `prefect automation create --from-file` reads:
    one mapping, a list, or a mapping with an `automations:` list."""
    data: Any = yaml.safe_load(path.read_text())
    if isinstance(data, dict) and "automations" in data:
        data = data["automations"]
    items = data if isinstance(data, list) else [data]
    return [AutomationCore.model_validate(item) for item in items]


async def apply(automations: list[AutomationCore]) -> list[tuple[str, str]]:
    applied: list[tuple[str, str]] = []
    async with get_client() as client:
        for automation in automations:
            existing = await client.read_automations_by_name(automation.name)
            if existing:
                await client.update_automation(existing[0].id, automation)
                for duplicate in existing[1:]:  # left by earlier `prefect automation create` runs
                    await client.delete_automation(duplicate.id)
                applied.append((automation.name, f"updated {existing[0].id}"))
            else:
                created = await client.create_automation(automation)
                applied.append((automation.name, f"created {created}"))
    return applied


def main(argv: list[str]) -> int:
    files = [Path(arg) for arg in argv] or sorted(DEFAULT_FOLDER.glob("*.yaml"))
    automations = [automation for file in files for automation in load_automations(file)]
    for name, outcome in asyncio.run(apply(automations)):
        print(f"automation {name}: {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
