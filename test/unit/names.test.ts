import { expect, test } from "bun:test";
import { validateName } from "../../src/names";

test("names: letters, digits, dot, dash, underscore; 1-255 characters; not . or ..", () => {
  for (const ok of ["a", "A-Z_0.9", "...", ".hidden", "-dash", "x".repeat(255)]) expect(validateName(ok)).toBe(ok);
  for (const bad of ["", ".", "..", "a/b", "a b", "ä", "a\nb", "x".repeat(256), "a*"]) expect(() => validateName(bad)).toThrow();
});
