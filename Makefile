# The two commands of the README: `make demo` and `make test`. Each creates .venv when it
# is missing and installs what it needs, so both work on a fresh Debian machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_ARGS ?=

.PHONY: demo test test-clock lint typecheck unit venv mosquitto faketime build-deps bench clean

venv: $(STAMP)

# evdev (the HID scanner driver) has no wheels: pip compiles it, which needs a C compiler,
# the Python headers and the kernel's input headers. Installed with apt-get when absent and
# we are allowed to (root); otherwise say what to do.
build-deps:
	@if command -v gcc >/dev/null 2>&1 && [ -f /usr/include/linux/input.h ] && \
		$(PYTHON) -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc python3-dev linux-libc-dev >/dev/null; \
	else echo "building evdev needs gcc, python3-dev and linux-libc-dev: run 'sudo apt-get install gcc python3-dev linux-libc-dev'"; exit 1; fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory build-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# What the tests use from Debian: the broker they start on a free loopback port, and the
# X keyboard data the HID scanner's key maps are checked against. Installed with apt-get
# when absent and we are allowed to (root); otherwise say what to do. Under CI=true a test
# whose part is missing fails instead of skipping.
# Chromium (and a CJK font, for the Chinese screens) drives the screens' browser tests;
# Pango lays out the reports' PDFs (WeasyPrint, gateway/numbers/reports).
TEST_DEBS := mosquitto xkb-data x11proto-dev chromium fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0
mosquitto:
	@if { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } && \
		[ -d /usr/share/X11/xkb/symbols ] && [ -f /usr/include/X11/keysymdef.h ] && \
		command -v chromium >/dev/null 2>&1 && [ -d /usr/share/fonts/opentype/noto ] && \
		ls /usr/lib/*/libpangoft2-1.0.so.0 >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_DEBS) >/dev/null; \
	else echo "missing for the tests: run 'sudo apt-get install $(TEST_DEBS)'"; exit 1; fi

# PostgreSQL from Debian, for the office's store tests (tests/office start it themselves in
# a temporary folder on a free port; no service is set up). Installed with apt-get when
# absent and we are allowed to (root); otherwise say what to do.
postgresql:
	@if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "missing for the tests: run 'sudo apt-get install postgresql'"; exit 1; fi

.PHONY: postgresql

# The site: the office with two lines (`linegate demo` each), a broker and a simulated shop
# (sitedemo/). `make line-demo` runs one line on its own, with its simulated hub.
demo: venv demo-broker
	$(BIN)/python -m sitedemo $(DEMO_ARGS)

line-demo: venv
	$(BIN)/linegate demo $(DEMO_ARGS)

# The site demo's broker: Mosquitto, installed with apt-get when absent and we are root.
demo-broker:
	@if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null; \
	else echo "the site demo needs Mosquitto: run 'sudo apt-get install mosquitto'"; exit 1; fi

.PHONY: line-demo demo-broker

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

unit: venv mosquitto postgresql
	$(BIN)/linegate check-config station_configs/reference-line
	$(BIN)/linegate check-config station_configs/examples
	$(BIN)/pytest

test: lint typecheck unit

# libfaketime, for test-clock. Installed with apt-get when absent and we are allowed to (root).
faketime:
	@if command -v faketime >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null; \
	else echo "faketime is missing: run 'sudo apt-get install faketime'"; exit 1; fi

# The tests under faked clocks: a Sunday night in UTC and in Shanghai, a year ahead (about
# half an hour; not part of `make test`). CLOCKS="'2027-12-07 03:00:00' ..." picks the instants.
CLOCKS ?=
test-clock: venv mosquitto faketime
	BIN=$(BIN) tests/clock_check.sh $(CLOCKS)

# The figures of BENCHMARKS.md (about half an hour; not part of `make test`).
bench: venv mosquitto
	$(BIN)/python benchmarks/bench_line.py scans --compare-planner --rounds 3
	$(BIN)/python benchmarks/bench_line.py scans --compare-planner --rounds 3 --cpu-quota 1.2
	$(BIN)/python benchmarks/bench_line.py intake --orders 100000
	$(BIN)/python benchmarks/bench_line.py intake --orders 100000 --backlog
	$(BIN)/python benchmarks/bench_line.py intake --orders 100000 --per-message 100
	$(BIN)/python benchmarks/bench_line.py intake --orders 100000 --in-process
	$(BIN)/python benchmarks/bench_devices.py --scans 300
	$(BIN)/python benchmarks/bench_hostile_http.py bodies --mb 10,200
	$(BIN)/python benchmarks/bench_hostile_http.py slowloris --connections 300
	$(BIN)/python benchmarks/bench_gate.py
	$(BIN)/python benchmarks/bench_solver.py jsp --instances ft06,ft10 --runs 5 --time-limit 10
	$(BIN)/python benchmarks/bench_solver.py jsp --instances la01-la20 --time-limit 10
	$(BIN)/python benchmarks/bench_solver.py jsp --instances ta01-ta10 --time-limit 30
	$(BIN)/python benchmarks/bench_solver.py wt --time-limit 5
	$(BIN)/python benchmarks/bench_plan.py --scenario surge
	$(BIN)/python benchmarks/bench_plan.py --scenario normal
	$(BIN)/python benchmarks/bench_gateway_plan.py
	$(BIN)/python benchmarks/bench_outbox.py --backlog 1000000
	$(BIN)/python benchmarks/bench_outbox.py --backlog 1000000 --live-rate 50 --live-seconds 10
	$(BIN)/python benchmarks/bench_outbox.py --backlog 1000000 --transport http --per-message 500
	$(BIN)/python benchmarks/bench_outbox.py --backlog 1000000 --transport http --per-message 500 --live-rate 50 --live-seconds 10
	$(BIN)/python -m tests.faults.kill_cycles --kills 200 --seed 2026
	$(BIN)/python benchmarks/bench_wear.py --runs 3 --fsyncs --idle-s 300

# The operators' messages (gateway/i18n): extract them from the code and the web pages'
# templates (babel.cfg) and bring the Chinese catalog up to date; then translate what is
# new or marked fuzzy in the .po (tests/i18n/test_catalog.py names what is missing).
.PHONY: messages
messages: venv
	mkdir -p build
	$(BIN)/pybabel extract -F babel.cfg --no-default-keywords -k t --add-location=file \
		--project=linegate --copyright-holder=linegate -o build/linegate.pot gateway
	$(BIN)/pybabel update -i build/linegate.pot -d gateway/i18n/locale -D linegate -l zh_CN \
		--ignore-obsolete --ignore-pot-creation-date --width=100

# The README's pictures of the screens: the browser tests' own screenshots (tests/screens
# saves them in build/screenshots), copied after a run of those tests.
SHOTS := build/screenshots
readme-screens: venv mosquitto
	$(BIN)/pytest -q tests/screens -k "demo or machine_fault or two_unit or chinese"
	cp $(SHOTS)/demo-terminal-01-live.png docs/screens/terminal.png
	cp $(SHOTS)/demo-board-01-live.png docs/screens/board.png
	cp $(SHOTS)/test_a_machine_fault_turns_its_tile_red_within_a_second_and_-1-02-fault.png docs/screens/board-fault.png
	cp $(SHOTS)/test_packing_a_two_unit_order_with_a_weight_out_of_tolerance-2-01-lookup.png docs/screens/lookup.png
	cp $(SHOTS)/test_the_terminal_in_chinese_explains_a_refusal_in_chinese-1-01-zh-refusal.png docs/screens/terminal-zh.png

.PHONY: readme-screens

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

# The office's messages (office/i18n): the same, for its own catalog.
.PHONY: office-messages
office-messages: venv
	mkdir -p build
	$(BIN)/pybabel extract -F office/babel.cfg --no-default-keywords -k t --add-location=file \
		--project=linegate-office --copyright-holder=linegate -o build/office.pot office
	$(BIN)/pybabel update -i build/office.pot -d office/i18n/locale -D office -l zh_CN \
		--ignore-obsolete --ignore-pot-creation-date --width=100
