import { expect, test } from "bun:test";
import { MAX_NAME, validateName } from "../../src/names";

test("names: letters, digits, dot, dash, underscore; 1-240 characters; not . or ..", () => {
  for (const ok of ["a", "A-Z_0.9", "...", ".hidden", "-dash", "x".repeat(MAX_NAME)]) expect(validateName(ok)).toBe(ok);
  for (const bad of ["", ".", "..", "a/b", "a b", "ä", "a\nb", "x".repeat(MAX_NAME + 1), "a*"]) expect(() => validateName(bad)).toThrow();
  expect(MAX_NAME).toBe(240);
});

test("a refused name is shown on one line: control characters escaped", () => {
  let message = "";
  try {
    validateName("bad\nname\u001b[31m");
  } catch (e) {
    message = (e as Error).message;
  }
  expect(message).toBe("'bad\\nname\\u001b[31m' may contain only letters, digits, '.', '_' and '-'");
});
