"""Patches applied to moto before the server starts.

Every module in this package must expose ``install()``; ``dm_emulator`` loads
all of them in name order.  ``install()`` must be idempotent.
"""

import importlib
import pkgutil


def plugin_names() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    )


def install_all() -> list[str]:
    names = plugin_names()
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        install = getattr(module, "install", None)
        if not callable(install):
            raise RuntimeError(f"plugin {name} has no install() function")
        install()
    return names
