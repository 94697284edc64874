import sys

from glmix_viz.cli import main

sys.exit(main())
