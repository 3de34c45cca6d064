"""Entry point: `flask --app app …` and gunicorn's `app:app`."""

from membership import create_app
from membership.config import ConfigError

try:
    app = create_app()
except ConfigError as unsafe:
    # One clear line for the operator (the variable and how to make a value), not a traceback.
    raise SystemExit(f"Classgate will not start: {unsafe}") from None
