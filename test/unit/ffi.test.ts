// ffi/libc.ts spells out bun:ffi's type codes and, on Linux, calls Bun's native FFI layer
// (Bun.FFI) directly; both are Bun internals that an upgrade of Bun could change.
import { expect, test } from "bun:test";
import { FFIType } from "bun:ffi";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { linux, needs } from "../needs";

test("the type codes in ffi/libc.ts are bun:ffi's", () => {
  const source = readFileSync(join(import.meta.dir, "../../ffi/libc.ts"), "utf8");
  const codes = /const T = \{([^}]+)\}/.exec(source)![1]!;
  const table = Object.fromEntries(codes.split(",").map((kv) => kv.split(":").map((x) => x.trim())));
  expect(Object.keys(table).length).toBe(8);
  for (const [name, code] of Object.entries(table)) expect({ name, code: Number(code) }).toEqual({ name, code: FFIType[name === "none" ? "void" : (name as keyof typeof FFIType)] as number });
});

needs(linux())("this Bun has the native FFI layer the Linux path calls", () => {
  const native = (Bun as unknown as { FFI?: Record<string, unknown> }).FFI;
  expect(typeof native?.dlopen).toBe("function");
  expect(typeof native?.ptr).toBe("function");
  expect(typeof (native?.read as Record<string, unknown>)?.i32).toBe("function");
});
