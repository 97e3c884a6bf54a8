# Configuration: validate config.yaml (or $ECOM_CONFIG) without running anything.
.PHONY: check-config

check-config: venv ## validate config.yaml (or $$ECOM_CONFIG): prints "config OK" or the one-line error
	@$(BIN)/python -m include.config_loader
