"""``python -m monitor`` is ``driftscope``."""

from monitor.cli import main

main()
