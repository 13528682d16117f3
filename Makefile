# One-command entry points; see README.md.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= outputs/demo

.PHONY: setup demo test bench clean

setup:
	@bash launch/setup_env.sh

demo: setup
	$(VENV)/bin/ppg-cvae demo --out $(OUT)

# pytest exits 5 when it collected no test: that is a failure, never a pass.
test: setup
	@$(PY) -m pytest -q tests; rc=$$?; \
	if [ $$rc = 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: setup
	$(PY) bench/prep.py
	$(PY) bench/train.py

clean:
	rm -rf outputs .pytest_cache
