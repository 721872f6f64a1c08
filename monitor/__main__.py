"""``python -m monitor`` is ``driftscope``."""

from monitor.cli.main import main

main()
