import sys

from inrbench.cli import main

sys.exit(main())
