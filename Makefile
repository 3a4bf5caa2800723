# The standard install workflow, wrapping the npm scripts:
#   make && sudo make install            (PREFIX=/usr/local, DESTDIR for staging)
#   make check                           (the whole test suite)
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man/man1
BASHDIR = $(PREFIX)/share/bash-completion/completions
ZSHDIR = $(PREFIX)/share/zsh/site-functions
FISHDIR = $(PREFIX)/share/fish/vendor_completions.d
TMPFILESDIR = $(PREFIX)/lib/tmpfiles.d
# The shared default lock directory: "waitlock" in the first of these that exists (the
# order waitlock itself searches), made root's and 01777 here, and again at every boot by
# systemd-tmpfiles. Make it while no waitlock lock is held: until then locks live in the
# base directory itself.
LOCKDIR ?= $(firstword $(wildcard /run/lock /var/lock /tmp))/waitlock
INSTALL ?= install

SOURCES = $(wildcard src/*.ts src/modes/*.ts ffi/*.ts) package.json

all: dist/waitlock

node_modules/.bin/bun: package.json
	npm install --no-audit --no-fund
	touch $@

dist/waitlock: node_modules/.bin/bun $(SOURCES)
	npm run build

install: dist/waitlock
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(BASHDIR) $(DESTDIR)$(ZSHDIR) $(DESTDIR)$(FISHDIR)
	$(INSTALL) -m 755 dist/waitlock $(DESTDIR)$(BINDIR)/waitlock
	$(INSTALL) -m 644 man/waitlock.1 $(DESTDIR)$(MANDIR)/waitlock.1
	$(INSTALL) -m 644 dist/completions/waitlock.bash $(DESTDIR)$(BASHDIR)/waitlock
	$(INSTALL) -m 644 dist/completions/_waitlock $(DESTDIR)$(ZSHDIR)/_waitlock
	$(INSTALL) -m 644 dist/completions/waitlock.fish $(DESTDIR)$(FISHDIR)/waitlock.fish
	$(INSTALL) -d $(DESTDIR)$(TMPFILESDIR)
	printf 'd %s 1777 root root -\n' '$(LOCKDIR)' > $(DESTDIR)$(TMPFILESDIR)/waitlock.conf
	chmod 644 $(DESTDIR)$(TMPFILESDIR)/waitlock.conf
	$(INSTALL) -d -m 1777 $(DESTDIR)$(LOCKDIR)

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/waitlock $(DESTDIR)$(MANDIR)/waitlock.1 $(DESTDIR)$(BASHDIR)/waitlock \
	      $(DESTDIR)$(ZSHDIR)/_waitlock $(DESTDIR)$(FISHDIR)/waitlock.fish $(DESTDIR)$(TMPFILESDIR)/waitlock.conf
	-rmdir $(DESTDIR)$(LOCKDIR) 2>/dev/null

check: node_modules/.bin/bun
	npm test

clean:
	rm -rf dist

.PHONY: all install uninstall check clean
