# Mutation testing (issue 14): mutmut changes the pure modules one small bug at a time and runs their
# fast tests against each; not part of `make test` (slow). Config: [tool.mutmut] in pyproject.toml.
.PHONY: mutate

MUTATE_MIN ?= 90
MUTATE_JOBS ?= 2

mutate: venv ## mutation testing of the pure modules (≈ 20 min on 2 cores): prints the score per module and the surviving mutants
	@rm -rf mutants
	PYTHONPATH=$(CURDIR) $(BIN)/mutmut run --max-children $(MUTATE_JOBS) > .mutmut-run.log 2>&1 || { tail -50 .mutmut-run.log; exit 1; }
	@PYTHONPATH=$(CURDIR) $(BIN)/mutmut results --all true | $(BIN)/python -m scripts.mutation_score tests/mutation/equivalent.txt --out-of-scope tests/mutation/out_of_scope.txt --min $(MUTATE_MIN)
