import { expect, test } from "bun:test";
import { EXIT, TimeoutError, secondsPhrase } from "../../src/errors";

test("a count of seconds reads as a person writes it", () => {
  expect([1, 0.5, 2, 0].map(secondsPhrase)).toEqual(["1 second", "0.5 seconds", "2 seconds", "0 seconds"]);
  const e = new TimeoutError("x", 1, "held by PID 7 (sleep 30)");
  expect([e.exitCode, e.message]).toEqual([EXIT.TIMEOUT, "timed out after 1 second; held by PID 7 (sleep 30)"]);
});
