import { test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { startPostgres } from "./servers/postgres";
test("manual pg", async () => {
  const s = await startPostgres();
  writeFileSync("/tmp/pgman/url", s.url());
  writeFileSync("/tmp/pgman/run", "");
  while (existsSync("/tmp/pgman/run")) await Bun.sleep(200);
}, 3_600_000);
