# Privacy operations (README "Privacy"). The address goes through the environment, never argv of the script.
.PHONY: privacy-request privacy-process backup restore-check restore privacy-reapply bench-privacy

# Exported by make itself: no shell quoting of the address (o'brien@example.com is valid), and no echo of it.
privacy-request: export ECOM_PRIVACY_EMAIL = $(EMAIL)
privacy-request: venv ## queue a GDPR request: make privacy-request EMAIL=a@b.c ACTION=erase|export (prints the request id)
	@test -n "$$ECOM_PRIVACY_EMAIL" || { echo "usage: make privacy-request EMAIL=<address> ACTION=erase|export" >&2; exit 2; }
	@$(BIN)/python -m scripts.privacy_request request --action '$(or $(ACTION),erase)'

privacy-process: venv ## process pending privacy requests now (REQUEST=<id> for one)
	$(BIN)/python -m scripts.privacy_request process $(if $(REQUEST),--request-id '$(REQUEST)')

backup: venv ## encrypted pg_dump of the warehouse into privacy.backup_dir, rotated, then restore-checked
	$(BIN)/python -m scripts.privacy_request backup

restore-check: venv ## restore the newest backup (or FILE=...) into a scratch database and compare digests
	$(BIN)/python -m scripts.privacy_request restore-check $(if $(FILE),--file '$(FILE)')

restore: venv ## restore FILE=... over the warehouse (CONFIRM=yes), then re-apply every erasure
	$(BIN)/python -m scripts.privacy_request restore --file '$(FILE)' $(if $(filter yes,$(CONFIRM)),--yes)

privacy-reapply: venv ## re-apply every erasure to the warehouse (after any restore)
	$(BIN)/python -m scripts.privacy_request reapply

bench-privacy: venv ## one GDPR erasure in a warehouse of N orders (default 1000000): seconds per step (docs/benchmarks.md)
	$(BIN)/python -m scripts.bench_privacy --orders $${N:-1000000} $(if $(EXPLAIN),--explain)
