// Preloaded before every test file (bunfig.toml), so that the hook runs after every test
// (and what the run shared, once, after the last one).
import { afterAll, afterEach } from "bun:test";
import { cleanUp, cleanUpRun } from "./cleanup";

afterEach(cleanUp);
afterAll(cleanUpRun);
