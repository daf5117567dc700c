"""`python -m joulegate_agent` is the same as `joulegate-agent`."""

import sys

from joulegate_agent.cli.main import main

sys.exit(main())
