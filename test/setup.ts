// Preloaded before every test file (bunfig.toml), so that the hook runs after every test.
import { afterEach } from "bun:test";
import { cleanUp } from "./cleanup";

afterEach(cleanUp);
