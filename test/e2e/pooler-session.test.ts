// One owner through a pooler, in one mode: see test/support/pooler-rounds.ts (each mode is its own
// file so the modes run side by side; they mostly wait on commands, polls and leases).

import { describePoolerMode, MODES, usePoolerMode } from "../support/pooler-rounds.js";

describePoolerMode(MODES.session, usePoolerMode(MODES.session));
