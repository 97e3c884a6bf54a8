# The incremental scenario of the load benchmark (docs/benchmarks.md "Incremental loads (landing zone)"); `make bench` runs it too.
.PHONY: bench-incremental

bench-incremental: venv ## DAYS daily files loaded, then one new day: new day vs alone vs reload (DAYS=30 ORDERS_PER_DAY=100000)
	$(BIN)/python -m scripts.bench_incremental --days $${DAYS:-30} --orders-per-day $${ORDERS_PER_DAY:-100000} \
		$${SESSIONS_PER_DAY:+--sessions-per-day $$SESSIONS_PER_DAY}
