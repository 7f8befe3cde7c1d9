"""`python -m deployments.cli`, the same as `registre`."""

from deployments.cli import app

app()
