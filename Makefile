# provision: the two quickstart commands are `make demo` and `make test` (run as root on Debian 12).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The versions CI tests with; every pip install of the project here goes through them.
CONSTRAINTS := .ci/constraints.txt
SPEC ?= inventories/lab-workgroup.yml
# Throwaway lab passwords, made once (0600) and kept so re-applies change nothing.
DEMO_ENV ?= /var/lib/provision/lab/demo.env
# Debian packages the controller needs: the venv, SSH, and the lab (nspawn, mmdebstrap, the
# local apt repository). The real clients the tests check with run inside the lab's hosts;
# libfaketime lets a test skew one lab host's clock (containers share the kernel's clock);
# acl (getfacl, setfacl) cross-checks the ACLs the playbooks' own module writes.
# attr (getfattr, setfattr) checks the extended attributes (NT ACLs) a backup keeps.
# gpg and libdpkg-perl are what mmdebstrap recommends to pick and check the archive keyring.
# python3-samba and samba-dsdb-modules let the service-account module's tests talk LDAP
# through Samba's own client, as it does on a mail server; postgresql gives the database
# module's tests the binaries for a throwaway cluster of their own (Debian's own cluster is unused).
# ruby checks the Vagrantfiles provision writes (ruby -c, and evaluated against a stub).
HOST_PACKAGES := python3-venv python3-dev gcc git openssh-client mmdebstrap gpg libdpkg-perl \
	systemd-container apt-utils iproute2 iputils-ping util-linux mount libfaketime acl \
	python3-samba samba-dsdb-modules postgresql ruby attr

.PHONY: help deps venv demo demo-plan test test-unit test-scale lint bench clean lab-down man constraints

help:
	@echo "make demo      set up and run the workgroup demo on the built-in lab (root)"
	@echo "make test      set up and run every test but the scale test (lab tests need root and systemd-nspawn)"
	@echo "make test-scale  the lab scale test (the lab domain plus 24 workstations)"
	@echo "make lint      ruff, mypy, yamllint, ansible-lint"
	@echo "make bench     print the benchmark figures"
	@echo "make man       regenerate provision/man/provision.1 from the command help"
	@echo "make constraints  re-pin $(CONSTRAINTS) to the venv's versions (after upgrading it on purpose)"

deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(HOST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  fi; \
	else echo "not root or no apt-get: skipping system packages ($(HOST_PACKAGES))"; fi

$(BIN)/provision: pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c $(CONSTRAINTS) -e '.[dev]'
	@touch $@

venv: $(BIN)/provision

demo-plan: venv
	for f in inventories/*.yml; do $(BIN)/provision validate $$f && $(BIN)/provision plan $$f && $(BIN)/provision advise $$f || exit 1; done

$(DEMO_ENV): | venv
	mkdir -p $(dir $@)
	umask 077; $(BIN)/python -c 'import secrets; [print(f"{v}=Lab-{secrets.token_hex(8)}-Pw1") for v in ("LAB_ALICE_PW", "LAB_BOB_PW", "LAB_CAROL_PW", "LAB_ADMIN_PW")]' > $@

demo: deps venv $(DEMO_ENV)
	@start=$$(date +%s); set -e; set -a; . $(DEMO_ENV); set +a; \
	$(BIN)/provision validate $(SPEC); \
	$(BIN)/provision lab up $(SPEC); \
	$(BIN)/provision apply $(SPEC); \
	$(BIN)/provision verify $(SPEC); \
	echo "demo: $(SPEC) applied and verified in $$(( $$(date +%s) - start )) s"; \
	mode=$$($(BIN)/provision plan $(SPEC) --format json | $(BIN)/python -c 'import json, sys; print(json.load(sys.stdin)["mode"])'); \
	if [ "$$mode" = domain ]; then \
	  echo "try:       $(BIN)/provision lab ssh ws1 getent passwd alice   (a domain user, resolved through sssd)"; \
	  echo "           $(BIN)/provision lab ssh ws1 smbclient -L //fs1 -U alice"; \
	  echo "           $(BIN)/provision policy test $(SPEC) bob fs1   (who may log in where, from the spec)"; \
	else \
	  echo "try:       $(BIN)/provision lab ssh peer1 smbclient -L //peer2 -U alice"; \
	fi; \
	echo "passwords: $(DEMO_ENV)"; \
	echo "tear down: make lab-down   (or $(BIN)/provision lab down --destroy)"

# The lab tests one at a time (one lab per machine), with the slowest listed; beside them, at the
# lowest CPU priority, the unit tests on every core (they fill the time the lab spends waiting;
# their own temporary folder, their output printed after). Both always run; the target fails when
# either failed. The scale test (lab, marked slow: 24 more hosts) runs with `make test-scale`.
UNIT_TMP := /tmp/provision-unit-tests
test: deps venv
	@lab=0; unit=0; rm -rf $(UNIT_TMP); mkdir -p $(UNIT_TMP); \
	nice -n 19 $(BIN)/python -m pytest -q -m "not lab" -n $$(nproc) -p no:cacheprovider \
	  --basetemp=$(UNIT_TMP)/tmp > $(UNIT_TMP)/output 2>&1 & units=$$!; \
	$(BIN)/python -m pytest -q -m "lab and not slow" --durations=15 || lab=$$?; \
	wait $$units || unit=$$?; \
	echo "== unit tests"; cat $(UNIT_TMP)/output; \
	echo "test: lab tests exit $$lab, unit tests exit $$unit"; \
	[ $$lab -eq 0 ] && [ $$unit -eq 0 ]

test-scale: deps venv
	$(BIN)/python -m pytest -q -m "lab and slow"

test-unit: venv
	$(BIN)/python -m pytest -q -m "not lab"

lint: venv
	$(BIN)/ruff check provision tests bench playbooks
	$(BIN)/ruff format --check provision playbooks/library playbooks/module_utils playbooks/filter_plugins playbooks/lookup_plugins playbooks/action_plugins playbooks/roles/domain_member/files
	$(BIN)/mypy
	$(BIN)/mypy playbooks/action_plugins
	cd playbooks && ../$(BIN)/yamllint . && ../$(BIN)/ansible-lint --profile production

bench: venv
	$(BIN)/python bench/validate.py
	@echo "as root, with the lab: $(BIN)/python bench/lab.py, bench/engine.py, bench/apply.py SPEC [--cold], bench/migrate.py [--peers 50] [--file-server], bench/smb_clients.py (needs samba-testsuite)"

# The man page is generated from the Click help and committed (tests/test_manpage.py compares).
man: venv
	$(BIN)/python -m provision.manpage -o provision/man/provision.1

# Keeps the header comment; pins every package of the venv but the project, pip and setuptools.
constraints: venv
	{ awk '/^#/ {print; next} {exit}' $(CONSTRAINTS); \
	  $(BIN)/pip freeze --exclude-editable | grep -viE '^(pip|setuptools|wheel)=='; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

lab-down: venv
	$(BIN)/provision lab down --destroy

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
