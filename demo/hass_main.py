"""Run Home Assistant exactly as the `hass` command does: `python demo/hass_main.py -c CONFIG ...`.

Home Assistant 2026.2 refuses to start on Python 3.13.0 and 3.13.1 (it declares >= 3.13.2),
although it runs on them: the project's scripts install it for 3.13.2 whatever the 3.13 patch
release is (see scripts/lib/python-env.sh). On those two releases this launcher skips that one
version check, and says so; on 3.13.2 and newer it changes nothing.

Run as a script (not `-m`), so that the repository root is not on sys.path and Home Assistant
finds the integration only where the demo put it: `<config>/custom_components/joulegate`.
"""

from __future__ import annotations

import sys

from homeassistant import __main__ as hass_main
from homeassistant.const import REQUIRED_PYTHON_VER


def main() -> int:
    if sys.version_info[:3] < REQUIRED_PYTHON_VER and sys.version_info[:2] == (3, 13):
        wanted = ".".join(map(str, REQUIRED_PYTHON_VER))
        print(
            f"note: Python {sys.version.split()[0]}; Home Assistant asks for {wanted} "
            "and runs on this one: skipping its version check",
            file=sys.stderr,
            flush=True,
        )
        hass_main.validate_python = lambda: None
    sys.argv[0] = "hass"
    code: int = hass_main.main()
    return code


if __name__ == "__main__":
    sys.exit(main())
