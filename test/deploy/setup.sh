#!/bin/sh
# Makes test/deploy/node_modules match package-lock.json (the Kubernetes API schemas, ajv and
# js-yaml that validate-k8s.cjs uses). test_deploy.py runs it before each validation.
exec sh "$(dirname "$0")/../support/npm-ci.sh" "$(dirname "$0")"
