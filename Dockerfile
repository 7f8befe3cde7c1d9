# The image of the Docker work pools (docs/docker.md): each flow run is a container of it, started
# by a Prefect docker worker with the limits of its pool's base job template
# (`registre deploy --docker`). Build: docker build -t registre-flows:latest .
FROM python:3.11-slim-bookworm

# Debian's Chromium, with the libraries it depends on; Playwright drives it, since
# tasks/registry/browser.py falls back to /usr/bin/chromium when Playwright's own browser is not
# installed. Not pinned: Debian ships Chromium's security fixes as new versions, and an old pin
# stops building once the archive drops it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-liberation \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The deployments' pull step points here (deployments/docker.py IMAGE_WORKDIR); each host's
# settings file is mounted as ./.env, never copied in (.dockerignore).
WORKDIR /opt/registre-flows
COPY pyproject.toml prefect.yaml ./
COPY flows/ flows/
COPY tasks/ tasks/
COPY deployments/ deployments/
COPY sandbox/ sandbox/
COPY supabase/ supabase/
# Editable: the code runs from here, where deployments/ finds prefect.yaml and supabase/ (a
# plain install would put it in site-packages, away from them).
RUN pip install --no-cache-dir --editable . \
    && groupadd --gid 10001 registre \
    && useradd --create-home --uid 10001 --gid 10001 registre

# Runs need no write access to the code: Prefect's files go to $HOME/.prefect, evidence to /tmp.
USER 10001:10001
CMD ["registre", "--help"]
