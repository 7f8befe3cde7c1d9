# The image of the Docker work pools (docs/docker.md): each flow run is a container of it, started
# by a Prefect docker worker with the limits of its pool's base job template
# (`registre deploy --docker`). Build: `registre image build` (deployments/image.py: a tag from
# the inputs' content, reused when they have not changed), or docker build -t NAME .
# BASE: any Debian bookworm with Python 3.11; `registre image build --local-base` makes one here,
# for machines that cannot reach Docker Hub.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE} AS runtime

# Debian's Chromium, with the libraries it depends on; Playwright drives it, since
# tasks/registry/browser.py falls back to /usr/bin/chromium when Playwright's own browser is not
# installed; libatomic1 for Playwright's own Node.js driver, which does not start without it. Not
# pinned: Debian ships Chromium's security fixes as new versions, and an old pin
# stops building once the archive drops it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-liberation libatomic1 \
    && rm -rf /var/lib/apt/lists/*

# The project lives in its own virtualenv: the same on Debian's Python and on python:3.11-slim.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The deployments' pull step points here (deployments/docker.py IMAGE_WORKDIR); each host's
# settings file is mounted as ./.env, never copied in (.dockerignore).
WORKDIR /opt/registre-flows

FROM runtime AS install
# ca-bundle.pem: pip's certificate bundle, when the building machine's pip needs its own
# (`registre image build` adds it); in this stage only, so it stays out of the image. The glob
# lets the copy go without it (pyproject.toml is there so that it always has a source).
COPY pyproject.toml ca-bundle.pe[m] /tmp/install/
COPY pyproject.toml prefect.yaml ./
COPY flows/ flows/
COPY tasks/ tasks/
COPY deployments/ deployments/
COPY sandbox/ sandbox/
COPY supabase/ supabase/
# Editable: the code runs from here, where deployments/ finds prefect.yaml and supabase/ (a
# plain install would put it in site-packages, away from them).
RUN if [ -f /tmp/install/ca-bundle.pem ]; then export PIP_CERT=/tmp/install/ca-bundle.pem; fi \
    && python3 -m venv /opt/venv \
    && pip install --no-cache-dir --editable .

FROM runtime
COPY --from=install /opt/venv /opt/venv
COPY --from=install /opt/registre-flows /opt/registre-flows
RUN groupadd --gid 10001 registre \
    && useradd --create-home --uid 10001 --gid 10001 registre

# Runs need no write access to the code: Prefect's files go to $HOME/.prefect, evidence to /tmp.
USER 10001:10001
CMD ["registre", "--help"]
