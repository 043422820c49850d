#!/bin/sh
# Trims a debootstrap'ed Debian root (argument: its directory) down to what a tenant runtime uses. Part of
# the base image's cache key: editing this file rebuilds the base.
set -eu
root="$1"
cd "$root"
# Package manager state and caches: the image's root is read-only at run time, apt cannot run there.
rm -rf var/cache/apt/* var/cache/debconf/*-old var/lib/apt/lists/* var/log/* usr/lib/apt usr/share/bug
rm -f usr/bin/apt usr/bin/apt-* usr/lib/x86_64-linux-gnu/libapt-*
find var/lib/dpkg/info -type f ! -name '*.list' -delete
# Documentation, manuals, translations.
rm -rf usr/share/doc/* usr/share/man/* usr/share/info/* usr/share/locale/* usr/share/lintian usr/share/common-licenses
# Full perl (git's Debian package depends on it for a few rarely used scripts: send-email, svn, instaweb);
# perl-base (/usr/bin/perl with its core modules) stays.
rm -rf usr/share/perl usr/lib/x86_64-linux-gnu/perl usr/lib/x86_64-linux-gnu/libperl.so*
# glibc's iconv modules (UTF-8 needs none of them), git's GUI/web leftovers, python's tests and caches.
rm -rf usr/lib/x86_64-linux-gnu/gconv usr/share/gitweb usr/share/git-gui usr/share/gitk
rm -rf usr/lib/python3.*/test usr/lib/python3.*/idlelib usr/lib/python3.*/ensurepip \
  usr/lib/python3.*/lib2to3/tests usr/lib/python3.*/pydoc_data usr/lib/python3.*/tkinter \
  usr/lib/python3.*/turtledemo usr/lib/python3.*/unittest/test
find usr/lib/python3* -name __pycache__ -prune -exec rm -rf {} +
# git's daemon/shell/mail/scalar helpers and its perl scripts (they need the full perl removed above).
rm -f usr/bin/scalar usr/bin/git-shell usr/lib/git-core/git-shell usr/lib/git-core/scalar \
  usr/lib/git-core/git-daemon usr/lib/git-core/git-imap-send usr/lib/git-core/git-http-push \
  usr/lib/git-core/git-send-email usr/lib/git-core/git-svn usr/lib/git-core/git-archimport \
  usr/lib/git-core/git-cvs* usr/lib/git-core/git-instaweb usr/lib/git-core/git-p4 usr/lib/git-core/git-request-pull
# Devices are provided by the container engine.
rm -rf dev/* proc/* sys/* run/* tmp/*
