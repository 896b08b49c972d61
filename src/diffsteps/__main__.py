import sys

from .warm import main

sys.exit(main(sys.argv[1:]))
