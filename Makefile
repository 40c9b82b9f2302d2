# Two commands set up everything: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask --app wsgi
STAMP  := $(VENV)/.installed

.PHONY: run test venv lint bench clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

## make run: migrate, load the knowledge base, start bot + fake LINE + simulator (the devserver creates
## the first admin and shows its password in its banner); Ctrl-C stops everything
run: $(STAMP)
	$(FLASK) db upgrade
	$(FLASK) faq load
	$(BIN)/python -m bot.devserver

## make test: the whole suite (SQLite by default; TEST_DATABASE_URL=postgresql+psycopg://... for PostgreSQL)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/webhook
	$(BIN)/python bench/faq

clean:
	rm -rf $(VENV) instance/*.sqlite3*
