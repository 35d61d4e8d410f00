#!/usr/bin/env bash
# Release tasks, for a Procfile line `release: scripts/release-tasks.sh`.
#
# The common recipe ran the migrations only on the app with RUN_MIGRATIONS=true and skipped them
# everywhere else:
#
#   if [ "${RUN_MIGRATIONS:-false}" = "true" ]; then npm run migrate; else echo "Skipping migrations"; fi
#
# That stops the crash when two apps migrate at once, but the skipping app boots its new code before
# the schema is migrated, and the recipe breaks when the apps deploy in another order. Rebuilt on
# release-orchestrator, the whole if/else is one line, and RUN_MIGRATIONS still decides:
#
#   RUN_MIGRATIONS=true    leader: runs the migrations, unless they already succeeded for this release
#   RUN_MIGRATIONS=false   follower: runs nothing, waits for the leader's outcome and exits with it
#                          (RELEASE_FOLLOWER_MODE=skip: exits 0 at once, as the old recipe did)
#   unset                  auto: the first app to take the lock runs them, the others wait for it
#
# In your own app the line reads `npx release-orchestrator run -- bundle exec rake db:migrate` (or
# your migrate command after the --).
#
# With several steps, the script itself can go: a release-tasks.yml at the app's root and the Procfile
# line `release: npx release-orchestrator run` (no command) run them in order, each with its scope
# (docs/reference.md#release-tasks-file). This script's steps as that file:
#
# tasks-file:start
#   tasks:
#     - name: migrate            # once per release across every app; RUN_MIGRATIONS decides as above
#       run: npm run migrate
#     - name: warm-cache         # once per release for each app (its dynos share it)
#       run: npm run cache:warm
#       scope: app
#     - name: smoke              # in every process, every time, after the migrations succeeded
#       run: [node, scripts/smoke.js]
#       scope: every
# tasks-file:end
set -euo pipefail
cd "$(dirname "$0")/.."

# Tasks that every app may run, before the migrations, go here.

node dist/cli.js run -- npm run migrate

# Tasks that need the migrated schema go here; they run on every app, after the leader succeeded.
