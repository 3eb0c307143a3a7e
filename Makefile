# Quick start: `make demo` (napari with the plugin; headless without a display) and `make test` (the suite).
# Both create .venv with Python 3.11 when it is missing and install the plugin into it.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?= -q

.PHONY: demo test install clean

install: $(INSTALLED)

# torch first and pinned: pip then takes the CPU build instead of pulling a CUDA build of several GB
$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install "torch==2.13.0"
	$(BIN)/python -m pip install -e ".[test]"
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/python -m napari_invimg.demo

# GUI tests need a display with OpenGL: Xvfb when there is no display (tests/conftest.py also starts one)
test: $(INSTALLED)
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
		echo "$(BIN)/python -m pytest $(PYTEST_ARGS)"; $(BIN)/python -m pytest $(PYTEST_ARGS); \
	elif command -v xvfb-run >/dev/null 2>&1; then \
		echo "xvfb-run -a $(BIN)/python -m pytest $(PYTEST_ARGS)"; \
		xvfb-run -a -s "-screen 0 1280x1024x24" $(BIN)/python -m pytest $(PYTEST_ARGS); \
	else \
		echo "QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS)"; \
		QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest $(PYTEST_ARGS); \
	fi

clean:
	rm -rf $(VENV) demo_output build dist src/*.egg-info
