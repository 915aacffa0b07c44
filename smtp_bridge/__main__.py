"""python -m smtp_bridge: run the SMTP bridge (see smtp_bridge.server.main)."""

import sys

from smtp_bridge.server import main

if __name__ == "__main__":
    sys.exit(main())
