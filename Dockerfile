# parabench for docker-compose.yml: one image runs the service, the simulator and
# the load generator (`parabench serve | simulator | load`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The bundled scenarios live beside the package (scenarios/), so install in place.
COPY pyproject.toml README.md ./
COPY harness ./harness
COPY scenarios ./scenarios
RUN pip install --editable . \
    && useradd --create-home --uid 10001 parabench
USER parabench

EXPOSE 8000 8001
ENTRYPOINT ["parabench"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--no-spans"]
