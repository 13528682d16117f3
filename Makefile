# One-command entry points; see README.md.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= outputs/demo

.PHONY: setup demo real test test-unit test-full bench bench-full gpu-build-check clean

setup:
	@bash launch/setup_env.sh

demo: setup
	$(VENV)/bin/ppg-cvae demo --out $(OUT)

# The real-recordings run of docs/REAL_DATA.md: REAL_PPG is a folder of recordings with an INDEX.json.
REAL_PPG ?= ../shared/data/real-ppg
REAL_OUT ?= outputs/real
real: setup
	$(PY) -m data_prep.real_ppg_labels $(REAL_PPG)/INDEX.json $(REAL_OUT)/labels.csv
	$(VENV)/bin/ppg-cvae prep --config configs/real.yaml --out $(REAL_OUT)/data --source $(REAL_PPG) --labels $(REAL_OUT)/labels.csv
	$(VENV)/bin/ppg-cvae launch --np 2 -- train --config configs/real.yaml --data $(REAL_OUT)/data --run-dir $(REAL_OUT)/run --resume
	$(VENV)/bin/ppg-cvae generate --model $(REAL_OUT)/run --ages 25:75:5 --n-per-age 60 --out $(REAL_OUT)/synthetic.npz
	$(VENV)/bin/ppg-cvae evaluate --synthetic $(REAL_OUT)/synthetic.npz --data $(REAL_OUT)/data --out $(REAL_OUT)/report \
	  --model $(REAL_OUT)/run

# pytest exits 5 when it collected no test: that is a failure, never a pass. `make test` runs tests/unit (pure logic,
# in-process, `make test-unit` alone) and tests/e2e (the CLI, multi-rank Horovod, Slurm) but leaves out the tests
# marked slow (long end-to-end runs); `make test-full` runs every test. Both run TEST_WORKERS test files side by side
# (pytest-xdist; much of a multi-process test is waiting), each file's tests in one worker.
TEST_WORKERS ?= 2
PYTEST = @$(PY) -m pytest -q $(1); rc=$$?; \
	if [ $$rc = 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc
test: setup
	$(call PYTEST,tests -m "not slow" -n $(TEST_WORKERS) --dist loadfile)
test-unit: setup
	$(call PYTEST,tests/unit)
test-full: setup
	$(call PYTEST,tests -n $(TEST_WORKERS) --dist loadfile)

# Benchmarks (docs/PERFORMANCE.md has each row with its command); BENCH_DIR is scratch space on the disk to measure.
BENCH_DIR ?= /tmp/ppg-cvae-bench
bench: setup
	mkdir -p $(BENCH_DIR)
	$(PY) bench/prep.py --dir $(BENCH_DIR)
	$(PY) bench/train.py
	$(PY) bench/input_pipeline.py --dir $(BENCH_DIR)
	$(PY) bench/judges.py
	$(PY) bench/large_batch.py --batches 64,1024 --dir $(BENCH_DIR)

# The whole pipeline at the reference study's scale on this machine (~20 minutes on 2 cores), then the large-batch
# sweep to 8,192 at each batch's budget (about 10 hours on 2 cores; started again with the same BENCH_DIR, it
# continues where it stopped).
bench-full: setup
	$(PY) bench/full_scale.py --dir $(BENCH_DIR)
	$(PY) bench/large_batch.py --dir $(BENCH_DIR)

# The GPU build recipe (`make setup` on a CUDA host) in a scratch venv on any machine: TensorFlow with its CUDA 12
# wheels, Horovod built with NCCL against the wheels' NCCL; ends by checking hvd.nccl_built(). Not part of `make test`.
GPU_CHECK_VENV ?= /tmp/ppg-cvae-gpu-build-check
gpu-build-check:
	rm -rf $(GPU_CHECK_VENV)
	start=$$(date +%s); VENV=$(GPU_CHECK_VENV) PPG_CVAE_GPU=1 PPG_CVAE_ANY_CUDA=$${PPG_CVAE_ANY_CUDA:-1} bash launch/setup_env.sh \
	  && $(GPU_CHECK_VENV)/bin/python -c "import horovod, horovod.tensorflow as h; v = h.nccl_built(); assert v, 'no NCCL'; print('gpu-build-check: Horovod', horovod.__version__, 'NCCL', v, 'CUDA', h.cuda_built(), 'Gloo', h.gloo_built(), 'MPI', h.mpi_built())" \
	  && echo "gpu-build-check: $$(( $$(date +%s) - start )) s, $$(du -sh $(GPU_CHECK_VENV) | cut -f1) in $(GPU_CHECK_VENV)"

clean:
	rm -rf outputs .pytest_cache
