# Airflow image of the e-commerce ETL: `astro dev start` (laptop) and docker-compose.prod.yml (server).
#
# Astro Runtime 3.3-8 ships Apache Airflow 3.3.2, the version requirements.txt pins, so the install
# below leaves Airflow itself untouched. The Airflow 3.3 runtimes ship Python 3.12-3.14 (not 3.11,
# the version of the local .venv); the 3.12 flavour is the closest.
FROM astrocrpublic.azurecr.io/runtime:3.3-8-python-3.12

# The base image's ONBUILD steps have run at this point, in this order:
#   COPY packages.txt .   -> apt-get install of each line (as root)
#   COPY requirements.txt . -> pip install of the pinned runtime requirements
#   COPY --chown=astro:0 . .  (the build context, filtered by .dockerignore)
# so everything below sees the project in /usr/local/airflow, as the user astro.

# `include` (the project's library package) lives in AIRFLOW_HOME, which Airflow does not put on
# sys.path by itself. The ECOM_* paths are where the ETL hands files between tasks (staging) and
# writes its reports; docker-compose.prod.yml mounts named volumes on exactly these paths.
ENV PYTHONPATH=/usr/local/airflow \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    ECOM_RAW_DATA_DIR=/usr/local/airflow/data/raw \
    ECOM_STAGING_DIR=/usr/local/airflow/shared/staging \
    ECOM_REPORTS_DIR=/usr/local/airflow/shared/reports

# Created in the image (owned by astro) so that a named volume mounted on them starts with the
# right owner and mode.
RUN mkdir -p /usr/local/airflow/shared/staging /usr/local/airflow/shared/reports

# pg_dump/pg_restore for the backups (include/backup.py) must be of the warehouse server's major version or
# newer: pg_dump refuses a newer server. PG_MAJOR is that major, the one definition of it for the image:
# tests/deploy/test_deploy_pg_client.py fails when it differs from the major of the warehouse-db image in
# docker-compose.prod.yml (x-warehouse-postgres-image). Debian's own repository has one major per release, so the client comes from the
# PostgreSQL project's apt repository (PGDG). Its signing key is the one Debian's `postgresql-common` package
# ships (so the trust chain is Debian's signed archive), and the suite is this image's own Debian release.
ARG PG_MAJOR=17
# hadolint ignore=DL3066
USER root
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates postgresql-common \
    && . /etc/os-release \
    && printf 'Types: deb\nURIs: https://apt.postgresql.org/pub/repos/apt\nSuites: %s-pgdg\nComponents: main\nSigned-By: /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc\n' \
        "${VERSION_CODENAME}" > /etc/apt/sources.list.d/pgdg.sources \
    && apt-get update \
    && apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" \
    && "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_dump" --version | grep -q "(PostgreSQL) ${PG_MAJOR}\." \
    && rm -rf /var/lib/apt/lists/*
# Back to the base image's runtime user (by name: its uid is the base image's business).
# hadolint ignore=DL3066
USER astro
# privacy.pg_bin_dir for every process of the image (the backup task runs on the Celery workers).
ENV ECOM_PG_BIN_DIR=/usr/lib/postgresql/${PG_MAJOR}/bin
