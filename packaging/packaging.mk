# packaging/packaging.mk - install, uninstall, the .deb and .rpm packages and
# their checks. Included by the top Makefile, which provides PREFIX BINDIR
# MANDIR DOCDIR SYSCONFDIR UNITDIR LIBHOOKDIR VERSION BIN BUILD and the
# install-bin/uninstall-bin targets. See packaging/README.md.

PKG_MAN5     := man/spot-agent.conf.5
PKG_MAN7     := man/spot-agent-hooks.7
PKG_MAN8     := man/spot-agent.8
PKG_UNIT     := packaging/systemd/spot-agent.service
PKG_SOCKET   := packaging/systemd/spot-agent.socket
PKG_CONF     := packaging/spot-agent.conf
PKG_HOOKREAD := packaging/spot-agent.d.README
# Documentation shipped with the package, in $(DOCDIR): the JSON Schema of
# /v1/status, state.json and the hooks' stdin; the guide to the example
# hooks (next to them); the example sandbox drop-in; the alert rules,
# dashboard and scrape config for fleet monitoring.
PKG_SCHEMA   := doc/spot-agent.schema.json
PKG_HOOKDOC  := hooks/README.md
PKG_SANDBOX  := packaging/systemd/spot-agent-sandbox.conf
PKG_MONITOR  := packaging/monitoring/README.md packaging/monitoring/spot-agent.rules.yml \
		packaging/monitoring/grafana-dashboard.json packaging/monitoring/prometheus-scrape.yml
# logind's delay for our inhibitor lock (InhibitDelayMaxSec=30): a vendor
# drop-in, so it goes where logind reads packages' drop-ins, next to UNITDIR's
# lib/systemd (logind also reads /usr/local/lib/systemd/logind.conf.d).
PKG_LOGIND   := packaging/systemd/logind.conf.d/zz-spot-agent.conf
LOGINDCONFDIR ?= $(PREFIX)/lib/systemd/logind.conf.d
# The journal catalogue of the eviction messages (journalctl -x); journald
# reads /usr/lib/systemd/catalog and /usr/local/lib/systemd/catalog, after
# `journalctl --update-catalog` (the packages trigger it).
PKG_CATALOG  := packaging/systemd/spot-agent.catalog
CATALOGDIR   ?= $(PREFIX)/lib/systemd/catalog
# What a source copy holds: enough to run `make` and `make install`.
PKG_SRC_TOP  := Makefile agent build-aux doc hooks man packaging README.md LICENSE
PKG_DEB_DIR  := $(BUILD)/deb
PKG_RPM_DIR  := $(BUILD)/rpm
PKG_TARBALL  := spot-agent-$(VERSION).tar.gz
# The package builds run a make of their own in the copy: nothing of this
# one's command line (BUILD=, BIN=, PREFIX=, CFLAGS=, -j ...), which make
# passes on in the environment, may leak into it.
PKG_CLEAN_ENV := env -i PATH="$$PATH" HOME="$$HOME" LANG=C.UTF-8

.PHONY: check-packaging check-system

# Example hooks: every file in hooks/ and hooks/recover.d/ when the target
# runs, except the tests and the README; executables stay executable, the
# rest (settings files the hooks read) is 0644. The glob runs in the recipe, so hooks added later
# are shipped without a change here.
install: install-bin
	install -d $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR)/examples/recover.d \
		$(DESTDIR)$(DOCDIR)/monitoring \
		$(DESTDIR)$(LIBHOOKDIR) \
		$(DESTDIR)$(SYSCONFDIR)/spot-agent $(DESTDIR)$(SYSCONFDIR)/spot-agent.d \
		$(DESTDIR)$(LOGINDCONFDIR) $(DESTDIR)$(CATALOGDIR)
	install -m 0644 $(PKG_MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 $(PKG_MAN7) $(DESTDIR)$(MANDIR)/man7/
	install -m 0644 $(PKG_MAN8) $(DESTDIR)$(MANDIR)/man8/
	sed 's|^ExecStart=/usr/bin/spot-agent|ExecStart=$(BINDIR)/spot-agent|' $(PKG_UNIT) \
		> $(DESTDIR)$(UNITDIR)/spot-agent.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/spot-agent.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/spot-agent.service.tmp $(DESTDIR)$(UNITDIR)/spot-agent.service
	install -m 0644 $(PKG_SOCKET) $(DESTDIR)$(UNITDIR)/spot-agent.socket
	install -m 0644 $(PKG_LOGIND) $(DESTDIR)$(LOGINDCONFDIR)/zz-spot-agent.conf
	install -m 0644 $(PKG_CATALOG) $(DESTDIR)$(CATALOGDIR)/spot-agent.catalog
	@# An existing config file is the administrator's: never overwritten.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/spot-agent/spot-agent.conf ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/spot-agent/spot-agent.conf"; \
	else \
		echo "install -m 0644 $(PKG_CONF) $(DESTDIR)$(SYSCONFDIR)/spot-agent/spot-agent.conf"; \
		install -m 0644 $(PKG_CONF) $(DESTDIR)$(SYSCONFDIR)/spot-agent/spot-agent.conf; \
	fi
	install -m 0644 $(PKG_HOOKREAD) $(DESTDIR)$(SYSCONFDIR)/spot-agent.d/README
	@for f in hooks/* hooks/recover.d/*; do \
		case "$${f##*/}" in test*|README*|'*') continue ;; esac; \
		[ -f "$$f" ] || continue; \
		if [ -x "$$f" ]; then m=0755; else m=0644; fi; \
		d=$(DESTDIR)$(DOCDIR)/examples/$$(dirname "$${f#hooks/}" | sed 's|^\.$$||'); \
		echo "install -m $$m $$f $$d"; \
		install -m $$m "$$f" "$$d" || exit 1; \
	done
	install -m 0644 $(PKG_HOOKDOC) $(DESTDIR)$(DOCDIR)/examples/README.md
	install -m 0644 $(PKG_SANDBOX) $(DESTDIR)$(DOCDIR)/examples/spot-agent-sandbox.conf
	install -m 0644 $(PKG_SCHEMA) $(DESTDIR)$(DOCDIR)/spot-agent.schema.json
	install -m 0644 $(PKG_MONITOR) $(DESTDIR)$(DOCDIR)/monitoring/

# The config file and the operator's hooks stay, as a package removal
# (not a purge) leaves them.
uninstall: uninstall-bin
	rm -f $(DESTDIR)$(MANDIR)/man5/spot-agent.conf.5 $(DESTDIR)$(MANDIR)/man7/spot-agent-hooks.7 \
		$(DESTDIR)$(MANDIR)/man8/spot-agent.8 \
		$(DESTDIR)$(UNITDIR)/spot-agent.service $(DESTDIR)$(UNITDIR)/spot-agent.socket \
		$(DESTDIR)$(SYSCONFDIR)/spot-agent.d/README \
		$(DESTDIR)$(LOGINDCONFDIR)/zz-spot-agent.conf $(DESTDIR)$(CATALOGDIR)/spot-agent.catalog
	rm -rf $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR)/monitoring
	rm -f $(DESTDIR)$(DOCDIR)/spot-agent.schema.json
	rmdir $(DESTDIR)$(DOCDIR) $(DESTDIR)$(LIBHOOKDIR) 2>/dev/null || true
	@# logind.conf.d and catalog are shared with other packages: removed only if empty.
	rmdir $(DESTDIR)$(LOGINDCONFDIR) $(DESTDIR)$(CATALOGDIR) 2>/dev/null || true

# A copy of the source tree (no build output, no VCS data) in $(1).
define pkg_copy_tree
	rm -rf $(1) && mkdir -p $(1)
	tar -cf - --exclude=agent/spot-agent --exclude='*.o' \
		$(foreach f,$(PKG_SRC_TOP),$(wildcard $(f))) | tar -xf - -C $(1)
endef

# The .deb is built in a copy with debian/ taken from packaging/debian, so
# the tree stays clean; it lands in $(BUILD)/.
deb:
	@sh packaging/install-tools.sh deb
	@v=$$(dpkg-parsechangelog -l packaging/debian/changelog -S Version); \
	case "$$v" in $(VERSION)-*) ;; *) echo "deb: packaging/debian/changelog is at $$v, the Makefile at $(VERSION): add a changelog entry (dch -v $(VERSION)-1)"; exit 1 ;; esac
	rm -rf $(PKG_DEB_DIR)
	$(call pkg_copy_tree,$(PKG_DEB_DIR)/spot-agent-$(VERSION))
	cp -R packaging/debian $(PKG_DEB_DIR)/spot-agent-$(VERSION)/debian
	cd $(PKG_DEB_DIR)/spot-agent-$(VERSION) && \
		$(PKG_CLEAN_ENV) dpkg-buildpackage -b -us -uc > ../dpkg-buildpackage.log 2>&1 || \
		{ tail -n 40 ../dpkg-buildpackage.log; echo "deb: dpkg-buildpackage failed, log: $(PKG_DEB_DIR)/dpkg-buildpackage.log"; exit 1; }
	cp $(PKG_DEB_DIR)/spot-agent_$(VERSION)-*.deb $(BUILD)/
	@ls -1 $(BUILD)/spot-agent_$(VERSION)-*.deb

# The .rpm is built by rpmbuild from a tarball of the tree in $(BUILD)/rpm.
# On Debian: its BuildRequires are Fedora's names, which rpm cannot resolve
# there, so --nodeps (the build needs what `make` needs); and Debian's
# brp-compress is a bash script run by dash, so it is run with bash to get
# the man pages compressed as on Fedora.
PKG_ON_DEBIAN := $(wildcard /etc/debian_version)
rpm: PKG_RPM_OPTS = $(if $(PKG_ON_DEBIAN),--nodeps --define '__brp_compress bash /usr/lib/rpm/brp-compress %{?_prefix}')
rpm:
	@sh packaging/install-tools.sh rpm
	@grep -q '^Version: *$(VERSION)$$' packaging/rpm/spot-agent.spec || \
		{ echo "rpm: packaging/rpm/spot-agent.spec Version is not $(VERSION)"; exit 1; }
	rm -rf $(PKG_RPM_DIR)
	mkdir -p $(PKG_RPM_DIR)/SOURCES $(PKG_RPM_DIR)/SPECS
	$(call pkg_copy_tree,$(PKG_RPM_DIR)/tmp/spot-agent-$(VERSION))
	tar -czf $(PKG_RPM_DIR)/SOURCES/$(PKG_TARBALL) -C $(PKG_RPM_DIR)/tmp spot-agent-$(VERSION)
	rm -rf $(PKG_RPM_DIR)/tmp
	cp packaging/rpm/spot-agent.spec $(PKG_RPM_DIR)/SPECS/
	$(PKG_CLEAN_ENV) rpmbuild -ba $(PKG_RPM_OPTS) --define '_topdir $(abspath $(PKG_RPM_DIR))' \
		$(PKG_RPM_DIR)/SPECS/spot-agent.spec > $(PKG_RPM_DIR)/rpmbuild.log 2>&1 || \
		{ tail -n 40 $(PKG_RPM_DIR)/rpmbuild.log; echo "rpm: rpmbuild failed, log: $(PKG_RPM_DIR)/rpmbuild.log"; exit 1; }
	cp $(PKG_RPM_DIR)/RPMS/*/spot-agent-$(VERSION)-*.rpm $(BUILD)/
	@ls -1 $(BUILD)/spot-agent-$(VERSION)-*.rpm

# Lints the man pages, verifies the units and the cloud-config, checks the
# `make install` file list and builds and lints both packages.
check-packaging:
	@MAKE="$(MAKE)" BUILD="$(BUILD)" VERSION="$(VERSION)" sh test/system/check-packaging.sh

check-extra:: check-packaging

# Boots the .deb in a systemd-nspawn container against the metadata
# simulator (root, debootstrap, systemd-container). SPOT_SKIP_SYSTEM=1 turns
# "cannot run here" into a skip.
check-system: deb
	@BUILD="$(BUILD)" VERSION="$(VERSION)" bash test/system/run.sh
