import { expect, test } from "bun:test";
import { heldBy, holderPhrase, oneLine } from "../../src/holdertext";
import { duration, statusLine } from "../../src/statusline";

test("a holder in words: PID and command on one line, cut when long", () => {
  expect(holderPhrase({ pid: 42, command: "sleep 30" })).toBe("PID 42 (sleep 30)");
  expect(holderPhrase({ pid: 42, command: "" })).toBe("PID 42");
  expect(oneLine("a\nb\tc")).toBe("a b c");
  expect(oneLine("x".repeat(100))).toBe(`${"x".repeat(57)}...`);
});

test("held by one, two, three and more", () => {
  const h = (pid: number) => ({ pid, command: "job" });
  expect(heldBy([])).toBe("");
  expect(heldBy([h(1)])).toBe("held by PID 1 (job)");
  expect(heldBy([h(1), h(2)])).toBe("held by PID 1 (job) and PID 2 (job)");
  expect(heldBy([h(1), h(2), h(3)])).toBe("held by PID 1 (job), PID 2 (job) and PID 3 (job)");
  expect(heldBy([h(1), h(2), h(3)], true)).toBe("held by PID 1 (job), PID 2 (job), PID 3 (job) and others");
});

test("durations", () => {
  expect([0, 59.9, 60, 65, 3599, 3600, 3725, 86399, 90000].map(duration)).toEqual(["0s", "59s", "1m00s", "1m05s", "59m59s", "1h00m", "1h02m", "23h59m", "1d01h"]);
});

test("the status line: name, slot k/N, holder, how long held and waited; cut to the terminal", () => {
  const now = 1_700_000_100_000;
  const w = { name: "db", slot: 1, slots: 3, holder: "PID 42 (sleep 30)", heldSince: now / 1000 - 65, since: now - 12_000 };
  expect(statusLine(w, now, 100)).toBe("waitlock: waiting 12s for 'db' slot 1/3, held 1m05s by PID 42 (sleep 30)");
  expect(statusLine({ ...w, holder: null }, now, 100)).toBe("waitlock: waiting 12s for 'db' slot 1/3, held by a process that left no record");
  const cut = statusLine(w, now, 40);
  expect(cut.length).toBe(39);
  expect(cut.endsWith("...")).toBe(true);
});
