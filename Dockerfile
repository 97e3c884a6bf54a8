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
