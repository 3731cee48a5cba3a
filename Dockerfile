# syntax=docker/dockerfile:1
# Build stage: a wheel of statekeeper and its dependencies.
FROM statekeeper-base:bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY clients/python clients/python
COPY service service
RUN python3 -m venv /opt/statekeeper && /opt/statekeeper/bin/pip install --no-cache-dir .

# Runtime stage: the virtualenv only, run as a non-root user.
FROM statekeeper-base:bookworm
COPY --from=build /opt/statekeeper /opt/statekeeper
RUN useradd --system --home /var/lib/statekeeper statekeeper \
 && mkdir -p /var/lib/statekeeper && chown statekeeper /var/lib/statekeeper
USER statekeeper
VOLUME /var/lib/statekeeper
EXPOSE 50051
ENTRYPOINT ["/opt/statekeeper/bin/statekeeper", "serve", "--host", "0.0.0.0", "--data-dir", "/var/lib/statekeeper"]
