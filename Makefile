# clipsearch: the commands a newcomer needs. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

MODEL  ?= openai/clip-vit-base-patch32
OUT    ?= models/clip-vit-b32
DATA   ?= data/flickr8k
INDEX  ?= $(DATA)/index
TUI_INDEX ?= $(if $(wildcard $(INDEX)/current $(INDEX)/index.json),$(INDEX),data/demo/index)

.PHONY: help setup export index eval demo tui test lint bench clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' Makefile | sed 's/:.*## /\t/'

setup: $(STAMP)  ## create .venv with runtime, export, tui, openvino, serve, dist and dev extras (idempotent)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[export,tui,openvino,serve,dist,dev]"
	# Byte-compile the editable sources as a regular install would (PYTHONDONTWRITEBYTECODE
	# otherwise makes every one-shot command compile them again: ~30 ms of `clipsearch search`).
	$(PY) -m compileall -q clipsearch_onnx tui web >/dev/null
	touch $(STAMP)

export: setup  ## export CLIP to ONNX (fp32 + int8): make export MODEL=hub-id-or-dir OUT=dir [CALIBRATION=photos-dir]
	$(PY) -m export --model $(MODEL) --out $(OUT) $(if $(CALIBRATION),--calibration $(CALIBRATION))

index: setup  ## index Flickr8k (downloads it first if missing) with the exported model
	test -d $(DATA)/Images || $(VENV)/bin/clipsearch dataset flickr8k --dest $(DATA)
	$(VENV)/bin/clipsearch index $(DATA)/Images --captions $(DATA)/captions.txt --model $(OUT) --index $(INDEX)

eval: setup  ## Flickr8k recall@K on the 1k test split, fp32 and int8
	$(VENV)/bin/clipsearch eval --dataset $(DATA) --model $(OUT) --precision fp32,int8

demo: setup  ## the whole pipeline offline on a small trained model and generated data
	$(PY) -m demo

tui: setup  ## open the terminal UI (INDEX=dir; default: Flickr8k's index, else the demo's)
	$(VENV)/bin/clipsearch tui --index $(TUI_INDEX)

test: lint  ## the linters, then every test (what CI runs)
	$(PY) -m pytest -q

lint: setup  ## ruff check, ruff format --check, mypy (core, tui, web: see pyproject.toml)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: setup  ## measure speed and memory, write BENCHMARKS.md
	$(PY) -m bench

clean:  ## remove generated models, data and caches (keeps .venv)
	rm -rf models data .pytest_cache
