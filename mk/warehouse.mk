# The warehouse one command away (scripts/warehouse.py): the embedded PostgreSQL starts when needed.
.PHONY: psql db-url reset-warehouse warehouse-stop
export ARGS  # psql arguments reach the script unparsed by make or the recipe shell (any quotes work)

psql: venv ## interactive psql 18 on the warehouse (ARGS="-c 'select 1'" runs one command)
	@$(BIN)/python -m scripts.warehouse psql

db-url: venv ## print the warehouse URL with its password (for a GUI client; the server keeps running)
	@$(BIN)/python -m scripts.warehouse url

reset-warehouse: venv ## empty data, quarantine, ledger and file registry; keep privacy_* tables and the Airflow home
	@$(BIN)/python -m scripts.warehouse reset

warehouse-stop: venv ## stop the embedded PostgreSQL that psql/db-url started
	@$(BIN)/python -m scripts.warehouse stop

.PHONY: schema-doc
schema-doc: venv ## regenerate docs/schema.md from a freshly migrated scratch database
	@$(BIN)/python -m scripts.schema_doc
