import sys

from towerwatch.cli.main import main

sys.exit(main())
