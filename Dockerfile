# syntax=docker/dockerfile:1
# The statekeeper server image. `make image` builds it with buildah from the local base image
# `statekeeper-base:bookworm` (scripts/make_base_image.sh: a debootstrapped Debian bookworm with
# python3 and python3-venv) and from wheels built beforehand into build/wheels, so the build
# itself needs no network.

# Build stage: a virtualenv with statekeeper and its dependencies, installed from local wheels.
FROM statekeeper-base:bookworm AS build
COPY build/wheels /wheels
RUN python3 -m venv /opt/statekeeper \
 && /opt/statekeeper/bin/pip install --no-index --find-links /wheels --no-cache-dir statekeeper \
 && find /opt/statekeeper -name '__pycache__' -prune -exec rm -rf {} +

# Runtime stage: the virtualenv only, run as a non-root user, data in a volume.
FROM statekeeper-base:bookworm
COPY --from=build /opt/statekeeper /opt/statekeeper
RUN groupadd --system --gid 10001 statekeeper \
 && useradd --system --uid 10001 --gid statekeeper --home-dir /var/lib/statekeeper \
      --shell /usr/sbin/nologin statekeeper \
 && mkdir -p /var/lib/statekeeper \
 && chown statekeeper:statekeeper /var/lib/statekeeper
ENV PATH=/opt/statekeeper/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    STATEKEEPER_HOST=0.0.0.0 \
    STATEKEEPER_PORT=50051 \
    STATEKEEPER_METRICS_PORT=9090 \
    STATEKEEPER_BACKEND=file \
    STATEKEEPER_DATA_DIR=/var/lib/statekeeper \
    STATEKEEPER_LOG_FORMAT=json \
    STATEKEEPER_ADDRESS=127.0.0.1:50051
USER 10001:10001
WORKDIR /var/lib/statekeeper
VOLUME /var/lib/statekeeper
EXPOSE 50051 9090
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/opt/statekeeper/bin/statekeeper", "health", "--timeout", "3"]
ENTRYPOINT ["/opt/statekeeper/bin/statekeeper"]
CMD ["serve"]
