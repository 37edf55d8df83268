"""`python -m bot.config --write`: regenerate `.env.example` and the README's settings table."""

import sys

from .docs import main

sys.exit(main())
