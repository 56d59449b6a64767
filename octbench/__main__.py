import sys

from octbench.cli import main

sys.exit(main())
