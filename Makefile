# Every target creates .venv on first use. `make lab` opens the course, `make test` checks it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= cpu
NBVAL_CELL_TIMEOUT ?= 600

.PHONY: install lab test test-gpu-profile unit notebooks bench student strip clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements/torch-pair.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c requirements/torch-pair.txt -e ".[dev]"
	$(BIN)/python -m ipykernel install --user --name cvcourse --display-name "Python (cvcourse)"
	$(BIN)/python -m cvcourse.device --check
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab chapters/

# Unit tests, then every notebook in chapters/ executed by nbval, in the smoke profile.
test: $(STAMP)
	CVCOURSE_PROFILE=smoke MPLBACKEND=Agg $(BIN)/python -m pytest tests chapters \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=$(NBVAL_CELL_TIMEOUT) -p no:cacheprovider

# The gpu profile (what Colab picks) on this machine's CPU: every chapter with the gpu profile's models, batches and
# data paths, each budget capped at a few steps and the real datasets replaced by tiny files in their formats.
test-gpu-profile: $(STAMP)
	CVCOURSE_GPU_PROFILE_CHECK=1 MPLBACKEND=Agg $(BIN)/python -m pytest tests/test_gpu_profile.py -p no:cacheprovider -v

unit: $(STAMP)
	CVCOURSE_PROFILE=smoke $(BIN)/python -m pytest tests

notebooks: $(STAMP)
	CVCOURSE_PROFILE=smoke MPLBACKEND=Agg $(BIN)/python -m pytest chapters \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=$(NBVAL_CELL_TIMEOUT)

# Every registered headline experiment; the figures go into docs/results.md.
bench: $(STAMP)
	$(BIN)/python -m cvcourse.bench --profile $(PROFILE) --results docs/results.md

# Student copies of the notebooks (solution cells replaced by stubs) in chapters/student/, where the Colab badges
# point; a test fails when they are out of date.
student: $(STAMP)
	$(BIN)/python -m cvcourse.student chapters chapters/student

# Remove outputs and execution counts from every notebook before committing.
strip: $(STAMP)
	$(BIN)/python -m cvcourse.notebooks strip chapters

clean:
	rm -rf $(VENV) build .pytest_cache
