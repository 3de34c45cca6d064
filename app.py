"""Entry point: `flask --app app …` and gunicorn's `app:app`."""

from membership import create_app

app = create_app()
