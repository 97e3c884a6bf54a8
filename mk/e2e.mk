# End-to-end on the real Airflow components (issue 6): api-server, scheduler, dag-processor, triggerer on
# LocalExecutor, then on CeleryExecutor with redis-server and two workers, then the UI in headless Chromium.
# Included by the Makefile (`-include mk/*.mk`). See docs/e2e.md.

E2E_APT_PACKAGES := redis-server chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: e2e e2e-deps

e2e-deps: ## install Debian's redis-server and chromium when missing (apt-get update once, then install)
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "e2e: installing$$missing"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

e2e: venv e2e-deps ## real Airflow end to end: REST API on LocalExecutor and Celery (2 workers), UI screenshots to docs/images
	ECOM_RUN_E2E=1 $(BIN)/python -m pytest tests/e2e -m e2e -s -p no:cacheprovider
