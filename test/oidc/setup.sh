#!/bin/sh
# Makes test/oidc/node_modules match package-lock.json (oidc-provider and jose, which
# provider.js runs on). test_oidc.py and deploy/run-local.sh (`make run`) run it first.
exec sh "$(dirname "$0")/../support/npm-ci.sh" "$(dirname "$0")"
